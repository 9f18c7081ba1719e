"""The machine-readable commands on the real default models: standard output parses whole, as JSON or JSONL.

The issue's own command (`search --queries BEIR_DIR --json > hits.jsonl`) and the LLM commands, run as
subprocesses so that everything the real models' libraries print on import and load is in the check.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fintune.retrieval.corpus import read_corpus
from fintune.retrieval.index import index_corpus
from fintune.retrieval.stores.embedded import EmbeddedStore
from tests.helpers import parse_jsonl, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm_store(beir_slice, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli_output") / "store"
    store = EmbeddedStore(folder)
    try:
        index_corpus(store, "tenk", read_corpus(beir_slice, skip_invalid=True), model="minilm", progress=False)
    finally:
        store.close()
    return folder


def test_batch_search_of_a_beir_folder_is_jsonl_only(minilm_store, beir_slice):
    done = run_cli("search", "--store", minilm_store, "--collection", "tenk", "--queries", beir_slice,
                   "--split", "dev", "-k", "10", "--json")  # fmt: skip
    rows = parse_jsonl(done.stdout)
    assert len(rows) == 40 and all(len(r["results"]) == 10 for r in rows)


def test_llm_generate_of_a_prompt_file_is_jsonl_only(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is EBITDA?\nWhat does a 10-K filing contain?\n")
    done = run_cli("llm", "generate", "--file", prompts, "--max-new-tokens", "8")
    assert [r["prompt"] for r in parse_jsonl(done.stdout)] == ["What is EBITDA?", "What does a 10-K filing contain?"]


def test_ask_json_is_the_whole_stdout(minilm_store):
    done = run_cli("ask", "--store", minilm_store, "--collection", "tenk", "What were Apple's net sales?", "--json")
    answer = json.loads(done.stdout)
    assert answer["question"] == "What were Apple's net sales?" and {"answer", "citations"} <= set(answer)
