"""Bearer tokens: from FINTUNE_API_TOKEN, else generated once into $FINTUNE_HOME (mode 600).

The server keeps only the token's SHA-256 and compares digests in constant time, so neither the
comparison's timing nor a memory dump of the process gives the token away."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from fintune.errors import UsageError
from fintune.paths import fintune_home

log = logging.getLogger(__name__)

TOKEN_ENV = "FINTUNE_API_TOKEN"
TOKEN_FILE = "service-token"


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def token_file(home: Path | None = None) -> Path:
    return (home or fintune_home()) / TOKEN_FILE


def configured_token() -> str | None:
    """The token set by environment or already written to $FINTUNE_HOME, if any (nothing is created)."""
    env = os.environ.get(TOKEN_ENV)
    if env:
        return env
    path = token_file()
    return path.read_text().strip() if path.is_file() else None


def load_or_create_token(home: Path | None = None) -> str:
    """FINTUNE_API_TOKEN, else the token file, else a new token written there with mode 600."""
    env = os.environ.get(TOKEN_ENV)
    if env:
        if len(env) < 16:
            raise UsageError(f"{TOKEN_ENV} is shorter than 16 characters: use a longer, random token")
        return env
    path = token_file(home)
    if path.is_file():
        if path.stat().st_mode & 0o077:
            raise UsageError(f"{path}: token file readable by other users; `chmod 600 {path}`")
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    # O_EXCL: two servers starting at once cannot both write (and hand out) different tokens
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    log.info("generated an API token in %s (send it as 'Authorization: Bearer <token>')", path)
    return token


class TokenCheck:
    """Holds the token's digest; `matches` compares a presented token's digest in constant time."""

    def __init__(self, token: str):
        self._digest = digest(token)

    def matches(self, presented: str | None) -> bool:
        if not presented:
            return False
        return hmac.compare_digest(digest(presented), self._digest)
