"""User errors print one line and exit 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import fintune.cli.data
from fintune.cli.main import is_user_error, main
from fintune.config.files import ConfigError
from fintune.data.errors import DataError
from fintune.errors import FintuneError, InputNotFoundError, OutputExistsError, UsageError
from fintune.llm.model import AdapterMismatchError
from fintune.models.resolve import ModelNotFoundError
from fintune.retrieval.catalog import StoreError
from tests.unit.logging_state import saved_logging_state


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_a_user_error_is_one_line_on_stderr_and_exit_2(tmp_path):
    missing = tmp_path / "missing.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "fintune", "data", "inspect", str(missing)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"error: {missing}: no such file"]


def test_an_unexpected_exception_keeps_its_traceback():
    done = _python(
        """
        import sys
        import fintune.cli.data

        def broken(args):
            raise ValueError("boom inside a library")

        fintune.cli.data.cmd_tasks = broken
        from fintune.cli.main import main
        sys.exit(main(["data", "tasks"]))
        """
    )
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.rstrip().endswith("ValueError: boom inside a library")
    assert "error:" not in done.stderr


@pytest.mark.parametrize("exc", [ValueError("bad"), RuntimeError("bad"), KeyError("k"), FileNotFoundError("no path")])
def test_library_errors_propagate_from_main(monkeypatch, exc):
    def broken(args):
        raise exc

    monkeypatch.setattr(fintune.cli.data, "cmd_tasks", broken)
    with saved_logging_state(), pytest.raises(type(exc)):
        main(["data", "tasks"])


@pytest.mark.parametrize(
    "exc",
    [
        UsageError("give a query"),
        InputNotFoundError("x.jsonl: no such file"),
        OutputExistsError("runs/a already exists"),
        FileNotFoundError(2, "No such file or directory", "prompts.txt"),  # the OS refusing a named path
    ],
)
def test_user_errors_exit_2_with_the_message(monkeypatch, capsys, exc):
    def refused(args):
        raise exc

    monkeypatch.setattr(fintune.cli.data, "cmd_tasks", refused)
    with saved_logging_state():
        assert main(["data", "tasks"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {exc}\n" and captured.out == ""


def test_debug_shows_the_traceback_of_a_user_error_too(tmp_path):
    with saved_logging_state(), pytest.raises(InputNotFoundError):
        main(["--log-level", "DEBUG", "data", "inspect", str(tmp_path / "missing.jsonl")])


def test_markup_in_a_message_is_printed_as_text(monkeypatch, capsys):
    def refused(args):
        raise UsageError("expected [bold]list[str][/bold]")

    monkeypatch.setattr(fintune.cli.data, "cmd_tasks", refused)
    with saved_logging_state():
        assert main(["data", "tasks"]) == 2
    assert capsys.readouterr().err == "error: expected [bold]list[str][/bold]\n"


def test_every_user_error_type_is_a_fintune_error_and_keeps_its_builtin_base():
    for cls, builtin in [
        (DataError, ValueError),
        (ConfigError, ValueError),
        (UsageError, ValueError),
        (AdapterMismatchError, ValueError),
        (ModelNotFoundError, RuntimeError),
        (StoreError, RuntimeError),
        (InputNotFoundError, FileNotFoundError),
        (OutputExistsError, FileExistsError),
    ]:
        assert issubclass(cls, FintuneError) and issubclass(cls, builtin), cls
    assert not is_user_error(ValueError("x")) and not is_user_error(FileNotFoundError("no path named"))
    assert is_user_error(DataError([]))
