import pytest

from fintune.data.tasks import get_task
from fintune.llm.prompts import HEADLINE_QUESTIONS, build_example, build_examples, chat_messages, entities


def test_sentiment_prompt_lists_the_task_labels():
    example = build_example(get_task("fpb"), {"id": "a", "text": "Profit rose 5 %", "label": "positive"})
    assert "{negative/neutral/positive}" in example.prompt
    assert example.prompt.endswith("Input: Profit rose 5 %\nAnswer:")
    assert example.target == "positive"
    tfns = build_example(get_task("tfns"), {"text": "$AAPL up", "label": "bullish"})
    assert "{bearish/bullish/neutral}" in tfns.prompt and "tweet" in tfns.prompt


def test_finlora_context_is_the_whole_prompt():
    record = {"context": "Explain X. Answer:", "target": "It is X."}
    example = build_example(get_task("xbrl_term"), record)
    assert (example.prompt, example.target) == ("Explain X. Answer:", "It is X.")


def test_tasks_without_a_prompt_say_so():
    with pytest.raises(ValueError, match="no prompt builder"):
        build_example(get_task("financial_qa_10k"), {"text": "t"})


def test_headline_flags_become_yes_no_questions():
    record = {
        "headline": "gold slips as dollar firms",
        "price_direction_up": 0,
        "price_direction_constant": 0,
        "price_direction_down": 1,
        "asset_comparison": 1,
        "past_information": 1,
        "future_information": 0,
        "price_sentiment": "negative",
    }
    examples = build_examples(get_task("headline"), record)
    assert [e.target for e in examples] == ["No", "No", "Yes", "Yes", "Yes", "No"]
    assert all(e.labels == ("Yes", "No") and "gold slips as dollar firms" in e.prompt for e in examples)
    assert "price going down" in examples[2].prompt


def test_ner_tags_become_entity_type_questions():
    tokens = ["Acme", "Bank", "lends", "to", "John", "Smith", "in", "Boston", "under", "LIBOR"]
    tags = ["I-ORG", "I-ORG", "O", "O", "I-PER", "I-PER", "O", "I-LOC", "O", "I-MISC"]
    assert entities(tokens, tags) == [("Acme Bank", "organization"), ("John Smith", "person"), ("Boston", "location")]
    examples = build_examples(get_task("ner"), {"tokens": tokens, "ner_tags": tags})
    assert [e.target for e in examples] == ["organization", "person", "location"]
    assert "'John Smith'" in examples[1].prompt and "{person/organization/location}" in examples[1].prompt


def test_multi_prompt_tasks_refuse_the_single_prompt_builder():
    record = {"headline": "gold flat", **dict.fromkeys(HEADLINE_QUESTIONS, 0)}
    with pytest.raises(ValueError, match="use build_examples"):
        build_example(get_task("headline"), record)


def test_system_prompt_comes_first():
    messages = chat_messages("q", "You are a Professional financial assistant.")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert chat_messages("q") == [{"role": "user", "content": "q"}]
