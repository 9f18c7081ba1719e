"""Shared run-config flags: `--config FILE --run NAME [key=value ...]`, with explicit flags on top."""

from __future__ import annotations

import argparse
from typing import Any

from fintune.config.files import load_run, parse_overrides
from fintune.config.schema import RunBase


def add_run_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML or JSON file of named runs")
    parser.add_argument("--run", help="the run to use from --config")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override any run setting")


def run_config_from_args(args: argparse.Namespace, flags: dict[str, Any], pipeline: str) -> RunBase:
    """Defaults < run config < key=value overrides < explicit flags."""
    overrides = parse_overrides(args.overrides)
    overrides.update({k: v for k, v in flags.items() if v is not None})
    return load_run(args.config, args.run, overrides, pipeline=pipeline)
