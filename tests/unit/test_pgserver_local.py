"""The embedded PostgreSQL's file handling without a server: reachability, the binary cache, refusals."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from fintune import pgserver_local as pl
from tests import pg_local


@pytest.fixture
def open_dir():
    """A folder others can enter (pytest's own temporary folders are private to their user)."""
    folder = Path(tempfile.mkdtemp(prefix="fintune-pgtest-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _fake_install(site: Path) -> Path:
    """pgserver's layout in site-packages: pgserver/pginstall/{bin,lib,share,include} and pgserver.libs."""
    install = site / "pgserver" / "pginstall"
    for part, name, mode in [
        ("bin", "initdb", 0o700),
        ("lib", "vector.so", 0o700),
        ("share", "vector.control", 0o600),
        ("include", "pg.h", 0o600),
    ]:
        (install / part).mkdir(parents=True)
        (install / part / name).write_text(name)
        (install / part / name).chmod(mode)
    (site / "pgserver.libs").mkdir()
    (site / "pgserver.libs" / "libpq.so.5").write_text("libpq")
    return install


def test_blocked_at_names_the_first_folder_others_cannot_enter(open_dir):
    locked = open_dir / "locked"
    (locked / "inner").mkdir(parents=True)
    locked.chmod(0o700)
    assert pl.blocked_at(locked / "inner" / "not-yet") == (pl.blocked_at(open_dir) or locked)
    locked.chmod(0o755)
    assert pl.blocked_at(locked / "inner") == pl.blocked_at(open_dir)


def test_cached_install_is_a_runnable_copy_made_once(open_dir):
    install = _fake_install(open_dir / "root-only" / "site")
    (open_dir / "root-only").chmod(0o700)
    cache = open_dir / "cache"
    copied = pl.cached_install(install, cache, "pgserver-9.9")
    assert copied == cache / "pgserver-9.9" / "pgserver" / "pginstall"
    assert sorted(p.name for p in copied.iterdir()) == ["bin", "lib", "share"]  # no headers
    assert (cache / "pgserver-9.9" / "pgserver.libs" / "libpq.so.5").is_file()  # where $ORIGIN/../../../ points
    assert stat.S_IMODE((copied / "bin" / "initdb").stat().st_mode) == 0o755
    assert stat.S_IMODE((copied / "share" / "vector.control").stat().st_mode) == 0o644
    assert stat.S_IMODE((cache / "pgserver-9.9").stat().st_mode) == 0o755
    (install / "bin" / "initdb").write_text("changed")
    assert pl.cached_install(install, cache, "pgserver-9.9") == copied
    assert (copied / "bin" / "initdb").read_text() == "initdb"  # cached: not copied again
    assert [p.name for p in cache.iterdir()] == ["pgserver-9.9"]  # no partial copy left behind


def test_cache_others_can_write_to_is_refused(open_dir):
    install = _fake_install(open_dir / "site")
    cache = open_dir / "shared-cache"
    cache.mkdir()
    cache.chmod(0o777)
    with pytest.raises(pl.PgServerError, match="writable by others"):
        pl.cached_install(install, cache, "pgserver-9.9")


def test_binaries_in_place_when_the_server_user_can_reach_them(monkeypatch, open_dir):
    install = _fake_install(open_dir / "site")
    monkeypatch.setattr(pl, "pgserver_install", lambda: install)
    nobody = pl.RunAs("nobody", 65534, 65534)
    assert pl.server_binaries(None, open_dir / "cache") == install / "bin"
    if pl.blocked_at(open_dir) is None:
        assert pl.server_binaries(nobody, open_dir / "cache") == install / "bin"
        assert not (open_dir / "cache").exists()


def test_folder_under_a_root_only_folder_is_refused_in_one_line(open_dir):
    locked = open_dir / "home"
    locked.mkdir(mode=0o700)
    nobody = pl.RunAs("nobody", 65534, 65534)
    with pytest.raises(pl.PgServerError) as caught:
        pl._prepare_folder(locked / "pg", nobody)
    message = str(caught.value)
    assert "\n" not in message and "'nobody', who cannot enter" in message and "(mode 700)" in message
    assert not (locked / "pg").exists()  # refused before creating anything


def test_foreign_folder_is_refused_not_wiped(open_dir, capsys):
    (open_dir / "notes.txt").write_text("mine")
    assert pg_local.main(["start", str(open_dir)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a fintune PostgreSQL folder" in err
    assert (open_dir / "notes.txt").read_text() == "mine"
    assert pg_local.main(["restart", str(open_dir)]) == 2


def test_new_folder_gets_a_private_state_with_a_password(open_dir):
    folder = open_dir / "pg"
    state = pl._prepare_folder(folder, None)
    assert len(state["password"]) == 32
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / pl.STATE).stat().st_mode) == 0o600
    assert pl._prepare_folder(folder, None) == state  # the second start keeps the password
    assert os.listdir(folder) == [pl.STATE]
