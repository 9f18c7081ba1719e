"""setup_logging: everything on standard error; other libraries' warnings and bars only for DEBUG."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
import transformers.utils.logging as transformers_logging

from fintune.data.beir import load_beir
from fintune.log import first_reports, setup_logging
from fintune.retrieval.corpus import read_corpus
from tests.conftest import write_jsonl
from tests.unit.logging_state import saved_logging_state


@pytest.fixture(autouse=True)
def _restore_logging():
    with saved_logging_state():
        yield


def _emit_one_of_each() -> None:
    logging.getLogger("fintune.data").warning("own warning")
    logging.getLogger("fintune.data").debug("own detail")
    logging.getLogger("bitsandbytes.backends.cpu.ops").warning("bnb noise")
    logging.getLogger().warning("root noise")  # onnxruntime's quantiser logs to the root logger
    logging.getLogger("urllib3").debug("http noise")
    logging.getLogger("somelib").error("somelib failed")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated noise", FutureWarning, stacklevel=1)


def test_default_level_shows_own_warnings_and_library_errors_on_stderr_only(capsys):
    setup_logging("INFO")
    _emit_one_of_each()
    out, err = capsys.readouterr()
    assert out == ""
    assert "own warning" in err and "somelib failed" in err
    assert "noise" not in err and "own detail" not in err
    assert not transformers_logging.is_progress_bar_enabled()


def test_debug_shows_library_warnings_but_not_their_debug_floods(capsys):
    setup_logging("DEBUG")
    _emit_one_of_each()
    out, err = capsys.readouterr()
    assert out == ""
    assert all(s in err for s in ("own detail", "bnb noise", "root noise", "deprecated noise", "somelib failed"))
    assert "http noise" not in err
    assert transformers_logging.is_progress_bar_enabled()


def test_debug_after_default_turns_the_library_switches_back_on(capsys):
    setup_logging("INFO")
    setup_logging("DEBUG")
    assert transformers_logging.is_progress_bar_enabled()
    assert logging.getLogger("transformers").level == logging.WARNING


def test_first_reports_passes_each_item_once_per_process():
    first = object(), object()
    assert first_reports([first[0], first[0], first[1]]) == [first[0], first[1]]
    assert first_reports([first[1]]) == []


def test_a_bad_record_is_warned_once_however_often_its_file_is_read(tmp_path, caplog):
    corpus = [{"_id": "d1", "text": "revenue rose"}, {"_id": "d2", "text": ""}]
    write_jsonl(tmp_path / "corpus.jsonl", corpus)
    write_jsonl(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "revenue"}, {"_id": "q2", "text": "  "}])
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td1\t1\n")
    (tmp_path / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    with caplog.at_level(logging.WARNING, logger="fintune"):
        load_beir(tmp_path, "train")  # the empty passage and the empty train query
        load_beir(tmp_path, "dev")  # the same passage again: nothing new
        read_corpus(tmp_path, skip_invalid=True)  # the same passage through the corpus reader
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "skipped 2 invalid record(s)" in warned[0], json.dumps(warned)
