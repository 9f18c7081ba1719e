"""`fintune ui`: the Gradio web UI (loopback by default; another address needs --auth)."""

from __future__ import annotations

import argparse
import ipaddress

from fintune.errors import UsageError

LOOPBACK_NAMES = ("localhost",)


def add_parser(sub: argparse._SubParsersAction) -> None:
    ui = sub.add_parser("ui", help="web UI: playground, search and ask, train with live curves, evaluate")
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=7860)
    ui.add_argument("--server", help="fintune task service URL: adds the Deployments tab")
    ui.add_argument("--auth", metavar="USER:PASSWORD", help="required to bind an address other than loopback")
    ui.set_defaults(func=cmd_ui)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any interface


def parse_auth(host: str, auth: str | None) -> tuple[str, str] | None:
    """(user, password), or None on loopback without --auth; refuses an exposed page without a password."""
    if auth is None:
        if not is_loopback(host):
            raise UsageError(
                f"--host {host} exposes the UI (training, files, models) beyond this machine: "
                "give --auth USER:PASSWORD, or bind 127.0.0.1"
            )
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise UsageError("--auth: expected USER:PASSWORD (both non-empty)")
    return user, password


def cmd_ui(args: argparse.Namespace) -> int:
    credentials = parse_auth(args.host, args.auth)
    from fintune.ui.app import build_app

    demo = build_app(args.server)
    # show_error: a user error (a missing folder, a bad filter) reaches the page as its one-line message
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        auth=credentials,
        show_error=True,
        inbrowser=False,
        share=False,
    )
    return 0
