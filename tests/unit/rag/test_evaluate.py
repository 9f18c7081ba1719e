"""The evaluation run on stubs: one retrieval per question, every answerer on the same passages, the report."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from fintune.data.errors import DataError
from fintune.errors import UsageError
from fintune.rag.evaluate import (
    RagSettings,
    check_adapter_base,
    check_collection,
    evaluate_rag,
    extractive_answerer,
    llm_answerers,
    read_questions,
    report,
)
from fintune.retrieval.ask import NOT_FOUND, Answer
from fintune.retrieval.catalog import StoreError


def test_beir_questions_carry_gold_answers_and_judged_passages(beir):
    questions, source = read_questions(beir, "train")
    assert [q.qid for q in questions] == [f"q{i}" for i in range(5)] and source.endswith("(train)")
    assert questions[1].answer == "Company1 reported 2 billion dollars." and questions[1].judged == ("d1",)
    assert questions[4].answer is None
    with pytest.raises(UsageError, match="--split"):
        read_questions(beir)  # no dev split to default to


def test_a_bad_jsonl_question_is_named_by_line_and_field(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"_id": "a", "text": "ok?", "relevant": "d1"}) + "\n" + json.dumps({"_id": "b"}) + "\n")
    with pytest.raises(DataError, match=r"q.jsonl:2: text"):
        read_questions(path)


def test_every_answerer_sees_the_same_passages_and_the_report_names_the_verdict(beir, searcher):
    questions, source = read_questions(beir, "train")
    seen: dict[str, list[list[str]]] = {"extractive": [], "base": []}

    def refuse(question, hits):
        seen["base"].append([h.id for h in hits])
        return Answer(question, NOT_FOUND, False, [], False, hits)

    def extract(question, hits):
        seen["extractive"].append([h.id for h in hits])
        return extractive_answerer()["extractive"](question, hits)

    settings = RagSettings(k=2, refusal_share=0.4, bertscore_encoder=None)
    run = evaluate_rag(searcher, questions, {"extractive": extract, "base": refuse}, settings, progress=False)
    assert seen["extractive"] == seen["base"] and len(searcher.calls) == 6  # warm-up + one per question
    assert len(run.predictions) == 10 and {r["answerer"] for r in run.predictions} == {"extractive", "base"}
    metrics = report(run, settings, source)
    assert metrics["answerer"] == "base" and set(metrics["baselines"]) == {"extractive", "base"}
    assert metrics["answered"] == 0.0 and metrics["unanswerable"] == metrics["baselines"]["extractive"]["unanswerable"]
    assert metrics["beats_extractive"] is False and "not worth the wait" in metrics["verdict"]
    assert metrics["baselines"]["extractive"]["token_f1"] > 0


def test_the_report_counts_the_answers_whose_citation_the_answerer_replaced(beir, searcher):
    questions, source = read_questions(beir, "train")

    def recite_odd(question, hits):  # cites the first passage; "replaced" on every other question
        recited = int(re.search(r"Company(\d+)", question)[1]) % 2 == 1
        return Answer(question, "an answer [x]", True, [hits[0].id], False, hits, [], recited)

    settings = RagSettings(k=2, refusal_share=0.0, bertscore_encoder=None)
    run = evaluate_rag(searcher, questions, {"extractive": extract_only, "base": recite_odd}, settings, progress=False)
    metrics = report(run, settings, source)
    expected = sum(int(re.search(r"Company(\d+)", q.text)[1]) % 2 == 1 for q in questions)
    assert 0 < expected < len(questions) and metrics["citations_recited"] == expected
    assert metrics["baselines"]["extractive"]["citations_recited"] == 0
    rows = [r for r in run.predictions if r["answerer"] == "base"]
    assert sum(r["citations_recited"] for r in rows) == expected


def extract_only(question, hits):
    return extractive_answerer()["extractive"](question, hits)


@pytest.mark.parametrize(
    ("given", "gated", "expected"), [("auto", True, None), ("auto", False, 0.5), (0.3, True, 0.3), (None, False, None)]
)
def test_the_llm_answerers_refuse_by_themselves_only_outside_the_evaluations_gate(monkeypatch, given, gated, expected):
    """The evaluation gates every answerer itself (see evaluate_rag), so its LLM answerers carry no reranker:
    whether they may refuse follows the settings' reranker, as `ask`'s answerer follows its own."""
    from fintune.retrieval.ask import REFUSAL_PROBABILITY, Answerer

    monkeypatch.setattr(Answerer, "_load", lambda self: None)  # no model: only the answerers' settings matter
    settings = RagSettings(refusal_probability=given, reranker=object() if gated else None)  # type: ignore[arg-type]
    answerers = llm_answerers(SimpleNamespace(), "smollm2", None, settings)  # type: ignore[arg-type]
    assert set(answerers) == {"base"} and REFUSAL_PROBABILITY == 0.5
    assert answerers["base"].__self__.refusal_probability == expected  # type: ignore[attr-defined]
    assert answerers["base"].__self__.reranker is None  # type: ignore[attr-defined]


def test_an_adapter_of_another_base_is_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "smollm2"}))
    with pytest.raises(UsageError, match="trained on base model 'smollm2'"):
        check_adapter_base(str(tmp_path), "qwen")
    check_adapter_base(str(tmp_path), None)  # no --llm: the adapter's own base


def fake_searcher(count: int, stored: set[str]):
    store = SimpleNamespace(
        count=lambda name: count,
        display="folder",
        hashes=lambda name, ids: {i: "h" for i in ids if i in stored},
    )
    return SimpleNamespace(store=store, info=SimpleNamespace(name="docs_v1", logical="docs"))


def test_an_empty_collection_or_one_of_another_corpus_is_refused(beir):
    questions, source = read_questions(beir, "train")
    with pytest.raises(StoreError, match="'docs' in folder is empty"):
        check_collection(fake_searcher(0, set()), questions, source)
    with pytest.raises(StoreError, match="none of the 5 passages judged"):
        check_collection(fake_searcher(9, {"x1"}), questions, source)
    check_collection(fake_searcher(9, {"d1"}), questions, source)  # some present: a warning, not an error
