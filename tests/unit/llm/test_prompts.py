import pytest

from fintune.data.tasks import get_task
from fintune.llm.prompts import build_example, chat_messages


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
        build_example(get_task("ectsum"), {"transcript": "t", "summary": "s"})


def test_system_prompt_comes_first():
    messages = chat_messages("q", "You are a Professional financial assistant.")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert chat_messages("q") == [{"role": "user", "content": "q"}]
