"""The extractive baseline on a handmade passage: the best sentence, cited; a refusal when off-topic."""

from __future__ import annotations

from fintune.rag.extractive import content_words, extractive_answer, sentences
from fintune.retrieval.ask import NOT_FOUND
from fintune.retrieval.stores.base import Hit

PASSAGES = [
    Hit("d1", 0.9, "Apple designs phones. Total net sales were $383.3 billion in 2023. The U.S. market grew."),
    Hit("d2", 0.8, "Net income was $97.0 billion in 2023."),
]


def test_sentences_split_at_full_stops_but_not_inside_numbers():
    assert sentences(PASSAGES[0].text)[1] == "Total net sales were $383.3 billion in 2023."
    assert content_words("What were total net sales in 2023?") == {"total", "net", "sales", "2023"}


def test_the_sentence_with_most_question_words_is_the_answer_and_is_cited():
    answer = extractive_answer("What were total net sales in 2023?", PASSAGES)
    assert answer.found and answer.citations == ["d1"] and not answer.attributed
    assert answer.answer == "Total net sales were $383.3 billion in 2023. [d1]"


def test_a_question_the_passages_do_not_address_is_refused():
    answer = extractive_answer("Who is the chief executive of Microsoft?", PASSAGES)
    assert not answer.found and answer.answer == NOT_FOUND and answer.citations == []
    # 2 of 4 content words (net, 2023) is exactly the threshold: answered; 1 of 4 is not
    assert extractive_answer("What was net profit margin 2023?", PASSAGES, min_overlap=0.5).found
    assert not extractive_answer("What was net profit margin 2019?", PASSAGES, min_overlap=0.5).found
