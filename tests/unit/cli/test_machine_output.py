"""Machine-readable output: a command's whole standard output parses; logs and progress bars go to standard error.

The commands run as real subprocesses, so what a user's pipe receives is checked whole: warnings that
libraries print while being imported (bitsandbytes, pulled in by sentence-transformers through PEFT) and
transformers' weight-loading bars, not only what fintune itself prints.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fintune.retrieval.corpus import read_corpus
from fintune.retrieval.index import index_corpus
from fintune.retrieval.stores.embedded import EmbeddedStore
from tests.conftest import write_jsonl
from tests.helpers import parse_jsonl, run_cli
from tests.unit.llm.conftest import make_tiny_llm
from tests.unit.retrieval.conftest import corpus_rows


@pytest.fixture(scope="module")
def store(tiny_bert_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("machine_output")
    corpus = read_corpus(write_jsonl(folder / "corpus.jsonl", corpus_rows(12)))
    embedded = EmbeddedStore(folder / "store")
    try:
        index_corpus(embedded, "docs", corpus, model=str(tiny_bert_dir), progress=False)
    finally:
        embedded.close()
    return folder / "store"


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory) -> Path:
    return make_tiny_llm(tmp_path_factory.mktemp("tiny_llm_cli"))


def test_search_json_is_the_whole_stdout(store):
    done = run_cli("search", "--store", store, "--collection", "docs", "revenue of Company3", "-k", "3", "--json")
    result = json.loads(done.stdout)
    assert result["query"] == "revenue of Company3" and len(result["results"]) == 3
    assert "Loading weights" not in done.stderr  # transformers' bar on every model load: silenced by default


def test_batch_search_writes_jsonl_and_only_jsonl_even_with_debug_noise(store, tmp_path):
    queries = write_jsonl(tmp_path / "q.jsonl", [{"_id": "q1", "text": "Company1 revenue"}, {"_id": "q2", "text": "x"}])
    done = run_cli("search", "--store", store, "--collection", "docs", "--queries", queries, "-k", "2", "--json",
                   log_level="DEBUG")  # fmt: skip
    rows = parse_jsonl(done.stdout)
    assert [r["query_id"] for r in rows] == ["q1", "q2"] and all(len(r["results"]) == 2 for r in rows)
    assert "Loading weights" in done.stderr  # shown for DEBUG, and on standard error


def test_llm_generate_file_writes_jsonl_and_only_jsonl(tiny_llm, tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "profit rose"}, {"prompt": "sales fell"}])
    done = run_cli("llm", "generate", "--model", tiny_llm, "--file", prompts, "--max-new-tokens", "3")
    assert [r["prompt"] for r in parse_jsonl(done.stdout)] == ["profit rose", "sales fell"]
    assert "generating" in done.stderr  # fintune's own progress bar: shown, on standard error


def test_ask_json_is_the_whole_stdout(store, tiny_llm):
    done = run_cli("ask", "--store", store, "--collection", "docs", "revenue of Company3", "--llm", tiny_llm,
                   "--min-score", "-1", "--json")  # fmt: skip
    answer = json.loads(done.stdout)
    assert answer["question"] == "revenue of Company3" and len(answer["passages"]) == 4


def test_models_path_prints_only_the_folder():
    done = run_cli("models", "path", "minilm")
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and Path(lines[0]).is_dir()
