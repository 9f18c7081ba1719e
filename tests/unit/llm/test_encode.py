"""Answer-only labels, the end-of-turn token learned although it is also the pad token, middle truncation."""

import pytest

from fintune.llm.encode import PROMPT_TAIL_TOKENS, answer_suffix, encode_example, truncate_prompt
from fintune.llm.prompts import Example


def test_labels_cover_the_answer_and_end_of_turn_only(tiny_tokenizer):
    example = Example("Instruction: What is the sentiment of this news? Input: profit rose Answer:", "positive")
    enc = encode_example(tiny_tokenizer, example, "You are a Professional financial assistant.", 128)
    answer = [t for t, m in zip(enc.input_ids, enc.completion_mask, strict=True) if m]
    prompt = [t for t, m in zip(enc.input_ids, enc.completion_mask, strict=True) if not m]
    assert tiny_tokenizer.convert_ids_to_tokens(answer) == ["positive", "<|im_end|>"]
    # the end-of-turn id is the pad id here: it is in the labels all the same
    assert answer[-1] == tiny_tokenizer.pad_token_id
    assert tiny_tokenizer.decode(prompt).endswith("<|im_start|> assistant")
    assert enc.completion_mask == sorted(enc.completion_mask)  # prompt first, then the answer
    assert not enc.truncated


def test_answer_suffix_is_the_templates_turn_end(tiny_tokenizer):
    assert answer_suffix(tiny_tokenizer) == "<|im_end|>\n"


def test_long_prompt_loses_its_middle_never_the_answer(tiny_tokenizer):
    words = " ".join(["profit"] * 300)
    example = Example(f"Instruction: {words} Answer:", "neutral")
    enc = encode_example(tiny_tokenizer, example, None, 100)
    assert enc.truncated and len(enc.input_ids) == 100
    tokens = tiny_tokenizer.convert_ids_to_tokens(enc.input_ids)
    assert tokens[:3] == ["<|im_start|>", "user", "Instruction:"]  # the head stays
    assert tokens[-3:] == ["assistant", "neutral", "<|im_end|>"]  # the whole answer stays
    assert "Answer:" in tokens[-PROMPT_TAIL_TOKENS - 2 :]  # the answer cue stays


def test_answer_that_fills_the_context_is_refused(tiny_tokenizer):
    with pytest.raises(ValueError, match="leaves"):
        encode_example(tiny_tokenizer, Example("Input:", " ".join(["gold"] * 90)), None, 100)


def test_truncate_prompt_keeps_head_and_tail():
    ids, cut = truncate_prompt(list(range(100)), 60)
    assert cut and len(ids) == 60
    head = 60 - PROMPT_TAIL_TOKENS
    assert ids[:head] == list(range(head)) and ids[head:] == list(range(100 - PROMPT_TAIL_TOKENS, 100))
    assert truncate_prompt([1, 2, 3], 40) == ([1, 2, 3], False)
