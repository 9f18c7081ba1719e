"""Bearer tokens: from the environment or generated once with mode 600; compared by digest."""

from __future__ import annotations

import hashlib
import stat

import pytest

from fintune.errors import UsageError
from fintune.service import auth


def test_token_check_accepts_only_the_token():
    check = auth.TokenCheck("s3cret-token-0123456789")
    assert check.matches("s3cret-token-0123456789")
    assert not check.matches("s3cret-token-012345678")
    assert not check.matches("")
    assert not check.matches(None)


def test_digest_is_sha256():
    assert auth.digest("abc") == hashlib.sha256(b"abc").digest()


def test_generated_once_with_mode_600_then_reused(tmp_path, monkeypatch):
    monkeypatch.delenv(auth.TOKEN_ENV, raising=False)
    monkeypatch.setenv("FINTUNE_HOME", str(tmp_path))
    assert auth.configured_token() is None
    token = auth.load_or_create_token()
    path = tmp_path / auth.TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 32
    assert auth.load_or_create_token() == token
    assert auth.configured_token() == token


def test_environment_wins_and_short_tokens_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("FINTUNE_HOME", str(tmp_path))
    monkeypatch.setenv(auth.TOKEN_ENV, "x" * 16)
    assert auth.load_or_create_token() == "x" * 16
    assert not (tmp_path / auth.TOKEN_FILE).exists()
    monkeypatch.setenv(auth.TOKEN_ENV, "short")
    with pytest.raises(UsageError, match="shorter than 16"):
        auth.load_or_create_token()


def test_token_file_readable_by_others_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(auth.TOKEN_ENV, raising=False)
    path = tmp_path / auth.TOKEN_FILE
    path.write_text("t" * 32)
    path.chmod(0o644)
    with pytest.raises(UsageError, match="chmod 600"):
        auth.load_or_create_token(tmp_path)
