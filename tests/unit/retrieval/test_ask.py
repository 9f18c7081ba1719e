"""RAG mechanics: prompt, citations, attribution, refusal, and the score guard that skips the LLM."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from fintune.retrieval.ask import NOT_FOUND, Answerer, attribute, cited_ids, rag_prompt, says_not_found
from fintune.retrieval.index import index_corpus
from fintune.retrieval.search import open_collection
from fintune.retrieval.stores.base import Hit

PASSAGES = [
    Hit("d1", 0.8, "Total net sales were $383.3 billion in 2023, down 3% from 2022."),
    Hit("d2", 0.7, "The Company repurchased $77.6 billion of its common stock."),
]


def test_the_prompt_carries_every_passage_with_its_id_and_the_question():
    prompt = rag_prompt("What were net sales?", PASSAGES)
    assert "[d1] Total net sales" in prompt and "[d2] The Company" in prompt
    assert prompt.endswith("Question: What were net sales?\nAnswer:") and NOT_FOUND in prompt


def test_only_retrieved_ids_count_as_citations():
    assert cited_ids("Net sales were $383.3 billion [d1] and see [d9, d2].", PASSAGES) == ["d1", "d2"]
    assert cited_ids("No brackets here", PASSAGES) == []


def test_attribution_names_the_passage_holding_the_answer_words():
    assert attribute("$383.3 billion in 2023", PASSAGES) == ["d1"]
    assert attribute("It rained in Paris", PASSAGES) == []


def test_refusals_are_recognised():
    assert says_not_found("The passages do not contain the answer.")
    assert not says_not_found("Net sales were $383.3 billion.")


def test_a_question_no_passage_is_about_is_answered_without_the_llm(store, corpus, tiny_embeddings):
    index_corpus(store, "docs", corpus, model=tiny_embeddings.model_name, embeddings=tiny_embeddings)
    answerer = Answerer(open_collection(store, "docs"), llm="no-such-model", min_score=1.01)
    answer = answerer.ask("Who won the 1998 world cup?")
    assert answer.answer == NOT_FOUND and not answer.found and len(answer.passages) == 4
    assert "below 1.01" in answer.notes[0] and answerer._model is None  # the LLM was never loaded


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    import torch

    from tests.unit.llm.conftest import make_tiny_llm

    torch.manual_seed(0)
    return make_tiny_llm(tmp_path_factory.mktemp("llm"))


QUESTION = "How much revenue did Company7 report?"


def test_the_llm_answers_from_the_passages(store, corpus, tiny_embeddings, tiny_llm):
    index_corpus(store, "docs", corpus, model=tiny_embeddings.model_name, embeddings=tiny_embeddings)
    answerer = Answerer(open_collection(store, "docs"), llm=str(tiny_llm), min_score=-1.0, max_new_tokens=8)
    answer = answerer.ask(QUESTION)
    assert len(answer.passages) == 4 and answer.as_dict()["passages"][0]["id"] == answer.passages[0].id
    assert answer.found and answerer._model is not None  # the LLM was loaded and did not refuse
    # its word-level vocabulary has no brackets, so it cites no id: sources can only be attributed
    assert answer.attributed and "the model cited no passage id" in answer.notes[-1]


@pytest.fixture
def scripted(store, corpus, tiny_embeddings, tiny_llm, monkeypatch):
    """An answerer whose LLM writes the given text; returns it and the ids retrieval will hand it."""
    from fintune.llm import generate

    index_corpus(store, "docs", corpus, model=tiny_embeddings.model_name, embeddings=tiny_embeddings)
    searcher = open_collection(store, "docs")
    retrieved = searcher.search([QUESTION], 4)[0]
    written = []

    def answer_with(text):
        written.append(text)
        return Answerer(searcher, llm=str(tiny_llm), min_score=-1.0, max_new_tokens=8).ask(QUESTION)

    def fake_generate(model, tokenizer, prompts, max_new_tokens=32, batch_size=16, progress=True, banned=None):
        assert len(prompts) == 1
        return SimpleNamespace(answers=[written[-1]])

    monkeypatch.setattr(generate, "generate_batched", fake_generate)
    return answer_with, retrieved


def test_citations_are_the_retrieved_ids_the_answer_names_in_order(scripted):
    answer_with, retrieved = scripted
    first, second = sorted([retrieved[0].id, retrieved[1].id])  # the later id is cited first: order kept
    answer = answer_with(f"Revenue was 8 billion dollars [{second}], see also [d999, {first}] and [{second}].")
    assert answer.found and answer.citations == [second, first]  # d999 was not retrieved: dropped
    assert not answer.attributed and answer.notes == []
    assert answer.as_dict()["citations"] == [second, first] and answer.as_dict()["citations_attributed"] is False


def test_an_answer_citing_only_unretrieved_ids_is_attributed_by_its_words(scripted):
    answer_with, retrieved = scripted
    names = {h.id: re.search(r"Company\d+", h.text)[0].lower() for h in retrieved}
    # a retrieved passage whose company name is in no other one (Company1 is inside Company12)
    source = next(h for h in retrieved if not any(names[h.id] in o.text.lower() for o in retrieved if o != h))
    company = names[source.id]
    answer = answer_with(f"{company} revenue grew [d999]")  # 2 of 3 words in the source, 1 in the others
    assert answer.citations == [source.id] and answer.attributed
    assert answer.notes == ["the model cited no passage id; sources found by word overlap"]
    unsupported = answer_with("Nobody knows [d999].")
    assert unsupported.found and unsupported.citations == [] and unsupported.attributed
    assert unsupported.notes == ["the model cited no passage id; no passage contains the answer's words"]


def test_a_refusal_is_not_found_and_cites_nothing(scripted):
    answer_with, retrieved = scripted
    answer = answer_with(f"The passages do not contain the answer. [{retrieved[0].id}]")
    assert not answer.found and answer.answer == NOT_FOUND and answer.citations == []


def test_continuation_probability_is_the_product_of_each_next_token_probability(tiny_llm):
    import torch
    from transformers import AutoModelForCausalLM

    from fintune.llm.generate import continuation_probability

    model = AutoModelForCausalLM.from_pretrained(tiny_llm).eval()
    prompt, continuation = [1, 5, 9, 12], [7, 3, 2]
    expected = 1.0
    for i, token in enumerate(continuation):  # one forward pass per prefix, independently of the tested code
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([prompt + continuation[:i]])).logits[0, -1]
        expected *= float(torch.softmax(logits.float(), -1)[token])
    assert continuation_probability(model, prompt, continuation) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("threshold", [0.0, 1.01])
def test_the_llm_refuses_only_when_the_whole_refusal_is_likely_enough(
    store, corpus, tiny_embeddings, tiny_llm, monkeypatch, threshold
):
    """At or above the threshold: refused without generating. Below it: greedy decoding may not open the refusal."""
    from fintune.llm import generate
    from fintune.retrieval.ask import refusal_ids

    index_corpus(store, "docs", corpus, model=tiny_embeddings.model_name, embeddings=tiny_embeddings)
    calls = []

    def fake_generate(model, tokenizer, prompts, max_new_tokens=32, batch_size=16, progress=True, banned=None):
        calls.append((tokenizer, banned))
        return SimpleNamespace(answers=["Revenue was 8 billion dollars."])

    monkeypatch.setattr(generate, "generate_batched", fake_generate)
    answerer = Answerer(
        open_collection(store, "docs"), llm=str(tiny_llm), min_score=-1.0, refusal_probability=threshold
    )
    answer = answerer.ask(QUESTION)
    if threshold == 0.0:
        assert not answer.found and answer.answer == NOT_FOUND and calls == []
        assert "probability of the refusal" in answer.notes[-1]
    else:
        assert answer.found and len(calls) == 1
        tokenizer, banned = calls[0]
        assert banned == [refusal_ids(tokenizer)[:2]] and len(refusal_ids(tokenizer)) > 2
        assert refusal_ids(tokenizer)[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")  # the turn's end, no more


def test_without_a_refusal_cut_the_llm_answers_and_its_refusal_is_never_scored(
    store, corpus, tiny_embeddings, tiny_llm, monkeypatch
):
    """Behind a reranker's gate (refusal_probability None) the LLM answers: no refusal probability is
    computed (a forward pass saved), and greedy decoding still may not open the refusal."""
    from fintune.llm import generate

    index_corpus(store, "docs", corpus, model=tiny_embeddings.model_name, embeddings=tiny_embeddings)
    banned_seen = []

    def fake_generate(model, tokenizer, prompts, max_new_tokens=32, batch_size=16, progress=True, banned=None):
        banned_seen.append(banned)
        return SimpleNamespace(answers=["Revenue was 8 billion dollars."])

    def no_probability(*args, **kwargs):
        raise AssertionError("the refusal's probability was computed")

    monkeypatch.setattr(generate, "generate_batched", fake_generate)
    monkeypatch.setattr(generate, "continuation_probability", no_probability)
    answerer = Answerer(open_collection(store, "docs"), llm=str(tiny_llm), min_score=-1.0, refusal_probability=None)
    answer = answerer.ask(QUESTION)
    assert answer.found and len(banned_seen) == 1 and banned_seen[0]


def test_the_llm_refusal_cut_defaults_to_none_behind_a_reranker_and_an_explicit_one_wins():
    from fintune.retrieval.ask import REFUSAL_PROBABILITY, llm_refusal_probability

    gate = object()
    assert llm_refusal_probability(None, None) == REFUSAL_PROBABILITY
    assert llm_refusal_probability(None, gate) is None  # type: ignore[arg-type]
    assert llm_refusal_probability(0.3, gate) == 0.3  # type: ignore[arg-type]
