"""`fintune ui` binds loopback by default and refuses an exposed address without a password."""

from __future__ import annotations

import pytest

from fintune.cli.main import main
from fintune.cli.ui import is_loopback, parse_auth
from fintune.errors import UsageError


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_addresses_need_no_password(host: str) -> None:
    assert is_loopback(host)
    assert parse_auth(host, None) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.org", "::"])
def test_an_exposed_address_without_auth_is_refused(host: str) -> None:
    with pytest.raises(UsageError, match="--auth USER:PASSWORD"):
        parse_auth(host, None)


def test_auth_is_split_at_the_first_colon_and_must_have_both_parts() -> None:
    assert parse_auth("0.0.0.0", "ana:s3:cret") == ("ana", "s3:cret")
    for bad in ("ana", "ana:", ":pw"):
        with pytest.raises(UsageError, match="USER:PASSWORD"):
            parse_auth("0.0.0.0", bad)


def test_the_command_refuses_in_one_line_before_starting_anything(capsys) -> None:
    assert main(["ui", "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "--host 0.0.0.0" in err and "--auth" in err
