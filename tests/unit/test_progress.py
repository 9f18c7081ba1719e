"""Trainer progress lines go to stderr, never into standard output."""

from __future__ import annotations

from types import SimpleNamespace

from transformers.trainer_callback import PrinterCallback, ProgressCallback

from fintune.progress import StderrPrinterCallback, StderrProgressCallback, progress_on_stderr


def test_metric_lines_are_written_to_stderr(capsys) -> None:
    callback = StderrProgressCallback()
    state = SimpleNamespace(is_world_process_zero=True, max_steps=3)
    callback.on_train_begin(None, state, None)
    callback.on_log(None, state, None, logs={"loss": 0.123456, "total_flos": 9.0, "epoch": 1})
    callback.on_train_end(None, state, None)
    out, err = capsys.readouterr()
    assert out == ""
    assert "'loss': '0.1235'" in err and "total_flos" not in err


class _Handler:
    def __init__(self, callbacks: list) -> None:
        self.callbacks = callbacks


class _Trainer:
    """The two Trainer methods `progress_on_stderr` uses, over a plain list."""

    def __init__(self, callbacks: list) -> None:
        self.callback_handler = _Handler(callbacks)

    def remove_callback(self, kind: type) -> None:
        self.callback_handler.callbacks = [c for c in self.callback_handler.callbacks if type(c) is not kind]

    def add_callback(self, kind: type) -> None:
        self.callback_handler.callbacks.append(kind())


def test_the_stock_progress_callback_is_replaced_and_no_bar_is_added_when_progress_is_off() -> None:
    trainer = _Trainer([ProgressCallback()])
    progress_on_stderr(trainer)  # type: ignore[arg-type]
    assert [type(c) for c in trainer.callback_handler.callbacks] == [StderrProgressCallback]
    quiet = _Trainer([])
    progress_on_stderr(quiet)  # type: ignore[arg-type]
    assert quiet.callback_handler.callbacks == []


def test_without_a_terminal_the_log_printer_writes_to_stderr(capsys) -> None:
    trainer = _Trainer([PrinterCallback()])
    progress_on_stderr(trainer)  # type: ignore[arg-type]
    (printer,) = trainer.callback_handler.callbacks
    assert type(printer) is StderrPrinterCallback
    printer.on_log(None, SimpleNamespace(is_world_process_zero=True), None, logs={"loss": 0.5, "total_flos": 1.0})
    out, err = capsys.readouterr()
    assert out == "" and "'loss': 0.5" in err and "total_flos" not in err
