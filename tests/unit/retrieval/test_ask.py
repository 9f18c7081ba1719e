"""RAG mechanics: prompt, citations, attribution, refusal, and the score guard that skips the LLM."""

from __future__ import annotations

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


def test_the_llm_answers_from_the_passages(store, corpus, tiny_embeddings, tmp_path):
    from tests.unit.llm.conftest import make_tiny_llm

    llm = make_tiny_llm(tmp_path / "llm")
    index_corpus(store, "docs", corpus, model=tiny_embeddings.model_name, embeddings=tiny_embeddings)
    answerer = Answerer(open_collection(store, "docs"), llm=str(llm), min_score=-1.0, max_new_tokens=8)
    answer = answerer.ask("How much revenue did Company7 report?")
    assert len(answer.passages) == 4 and answer.as_dict()["passages"][0]["id"] == answer.passages[0].id
    assert set(answer.citations) <= {h.id for h in answer.passages}
