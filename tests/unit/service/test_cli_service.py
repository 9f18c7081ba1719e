"""`fintune serve` refuses to listen beyond this machine without a token."""

from __future__ import annotations

import pytest

from fintune.cli.main import main
from fintune.cli.service import is_loopback
from fintune.service import auth


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                               ("127.0.0.2", True), ("0.0.0.0", False), ("10.1.2.3", False),
                                               ("example.org", False)])  # fmt: skip
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_serve_on_all_interfaces_needs_a_token(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(auth.TOKEN_ENV, raising=False)
    monkeypatch.setenv("FINTUNE_HOME", str(tmp_path))
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "set FINTUNE_API_TOKEN first" in capsys.readouterr().err
    assert not (tmp_path / auth.TOKEN_FILE).exists()


def test_worker_needs_a_database(monkeypatch, capsys):
    monkeypatch.delenv("FINTUNE_DATABASE_URL", raising=False)
    assert main(["worker"]) == 2
    assert "--database URL" in capsys.readouterr().err
