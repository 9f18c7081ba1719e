"""RAG mechanics: prompt, citations, attribution, refusal, and the score guard that skips the LLM."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from fintune.retrieval.ask import (
    NOT_FOUND,
    Answerer,
    attribute,
    check_citation,
    cited_ids,
    rag_prompt,
    says_not_found,
    support,
)
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


def test_support_is_the_share_of_the_answers_words_each_passage_holds_marks_left_out():
    shares = support("Total net sales were $383.3 billion [d2].", PASSAGES)  # total net sales were $383.3 billion
    assert shares == {"d1": 1.0, "d2": pytest.approx(1 / 6)}  # d2 holds "billion" only; "d2" is no word
    assert support("[d1]", PASSAGES) == {"d1": 0.0, "d2": 0.0}


def test_a_citation_that_does_not_hold_the_answer_is_replaced_by_the_passage_that_does():
    text, cited, note = check_citation("Total net sales were $383.3 billion [d2][d2].", ["d2"], PASSAGES)
    assert text == "Total net sales were $383.3 billion [d1]." and cited == ["d1"]
    assert note == "cited d2 held 17% of the answer's words, d1 100%: cited d1 instead"
    text, cited, _ = check_citation("Net sales were $383.3 billion [d2, d9], see [d9].", ["d2"], PASSAGES)
    assert text == "Net sales were $383.3 billion [d1], see [d9]." and cited == ["d1"]  # d9 was not shown
    shown = [*PASSAGES, Hit("d3", 0.6, "Net sales were $383.3 billion.")]
    text, cited, note = check_citation("Total net sales were $383.3 billion [d3].", ["d3"], shown)
    assert cited == ["d1"] and note and note.startswith("cited d3 held 83%")  # d3 holds 5 of 6 words, d1 all 6
    assert check_citation("Net sales were $383.3 billion [d3].", ["d3"], shown)[1] == ["d3"]  # a tie: kept


@pytest.mark.parametrize(
    ("answer", "cited"),
    [
        ("Total net sales were $383.3 billion [d1].", ["d1"]),  # cited right
        ("$77.6 billion in 2023 [d2].", ["d2"]),  # d1 holds no more of the words (2 of 3) than d2
        ("Total net sales [d1] were $77.6 billion.", ["d1"]),  # cited d1 holds the most: 5 of 6 words, d2 2
        ("It rained in Paris [d2].", ["d2"]),  # no passage holds the answer: nothing to cite instead
        ("Total net sales were $383.3 billion [d2, d1].", ["d2", "d1"]),  # one of them holds it
    ],
)
def test_a_citation_is_kept_when_it_holds_the_answer_or_no_other_passage_does(answer, cited):
    assert check_citation(answer, cited, PASSAGES) == (answer, cited, None)


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


@pytest.mark.parametrize("check", [True, False])
def test_the_answerer_replaces_a_citation_the_answer_does_not_come_from_unless_told_not_to(
    tiny_llm, monkeypatch, check
):
    from fintune.llm import generate

    written = "Total net sales were $383.3 billion [d2]."
    monkeypatch.setattr(generate, "generate_batched", lambda *a, **k: SimpleNamespace(answers=[written]))
    answerer = Answerer(None, llm=str(tiny_llm), min_score=-1.0, refusal_probability=None, check_citations=check)
    answer = answerer.answer_hits("What were net sales?", PASSAGES)
    assert answer.found and not answer.attributed and answer.recited is check
    if check:
        assert answer.citations == ["d1"] and answer.answer.endswith("billion [d1].")
        assert answer.notes[-1].endswith("cited d1 instead") and answer.as_dict()["citations_recited"] is True
    else:
        assert answer.citations == ["d2"] and answer.answer == written and answer.notes == []


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
    computed (a forward pass saved), and greedy decoding may not open a refusal in any wording."""
    from fintune.llm import generate
    from fintune.retrieval.ask import REFUSAL_OPENINGS, refusal_ids, refusal_openings

    index_corpus(store, "docs", corpus, model=tiny_embeddings.model_name, embeddings=tiny_embeddings)
    banned_seen = []

    def fake_generate(model, tokenizer, prompts, max_new_tokens=32, batch_size=16, progress=True, banned=None):
        banned_seen.append((tokenizer, banned))
        return SimpleNamespace(answers=["Revenue was 8 billion dollars."])

    def no_probability(*args, **kwargs):
        raise AssertionError("the refusal's probability was computed")

    monkeypatch.setattr(generate, "generate_batched", fake_generate)
    monkeypatch.setattr(generate, "continuation_probability", no_probability)
    answerer = Answerer(open_collection(store, "docs"), llm=str(tiny_llm), min_score=-1.0, refusal_probability=None)
    answer = answerer.ask(QUESTION)
    assert answer.found and len(banned_seen) == 1
    tokenizer, banned = banned_seen[0]
    assert banned == refusal_openings(tokenizer)
    assert refusal_ids(tokenizer)[:2] in banned  # the trained refusal's opening too
    assert len(banned) == len(REFUSAL_OPENINGS)  # each opening whole (the tiny vocabulary decodes them as <unk>)
    assert "The passage" in REFUSAL_OPENINGS  # the singular the adapter wrote though its targets never do


def test_an_answerer_refuses_by_itself_only_without_a_gate_unless_told(tmp_path):
    from fintune.retrieval.ask import REFUSAL_PROBABILITY

    gate = object()
    assert Answerer(None).refusal_probability == REFUSAL_PROBABILITY
    assert Answerer(None, reranker=gate).refusal_probability is None  # type: ignore[arg-type]
    assert Answerer(None, reranker=gate, refusal_probability=0.3).refusal_probability == 0.3  # type: ignore[arg-type]
    assert Answerer(None, refusal_probability=None).refusal_probability is None


def test_the_llm_refusal_cut_defaults_to_none_behind_a_reranker_and_an_explicit_one_wins():
    from fintune.retrieval.ask import REFUSAL_PROBABILITY, llm_refusal_probability

    gate = object()
    assert llm_refusal_probability(None, None) == REFUSAL_PROBABILITY
    assert llm_refusal_probability(None, gate) is None  # type: ignore[arg-type]
    assert llm_refusal_probability(0.3, gate) == 0.3  # type: ignore[arg-type]


def test_the_cli_checks_citations_unless_told_not_to(monkeypatch, capsys):
    from fintune.cli.main import build_parser
    from fintune.retrieval import ask, search, stores
    from fintune.retrieval.ask import Answer

    seen = []

    class Recording:
        def __init__(self, searcher, **kwargs):
            seen.append(kwargs["check_citations"])

        def ask(self, question, filter=None):
            return Answer(question, "an answer", True, [], False, [])

    monkeypatch.setattr(ask, "Answerer", Recording)
    monkeypatch.setattr(stores, "open_store", lambda url: SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(search, "open_collection", lambda store, name: None)
    for extra in ([], ["--no-citation-check"]):
        args = build_parser().parse_args(["ask", "--collection", "c", "Revenue?", "--json", *extra])
        assert args.func(args) == 0
    assert seen == [True, False]
    rag = build_parser().parse_args(["rag", "eval", "--collection", "c", "--queries", "q", "--no-citation-check"])
    assert rag.no_citation_check  # rag eval passes it as RagSettings.check_citations
