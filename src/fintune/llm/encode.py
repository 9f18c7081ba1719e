"""Token ids for training and inference from one prompt renderer, so both see the same context.

The answer is never truncated: a prompt that does not fit loses tokens from its middle, keeping the
instruction at the start and the answer cue (the chat template's assistant header) at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from fintune.errors import UsageError
from fintune.llm.prompts import Example, render_chat, render_prompt

# Tokens kept from the end of a truncated prompt: the chat template's turn markers and the "Answer:" cue.
PROMPT_TAIL_TOKENS = 24


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    completion_mask: list[int]  # 1 on the answer tokens (and the end-of-turn token): the only ones with a loss
    truncated: bool


def answer_suffix(tokenizer: PreTrainedTokenizerBase) -> str:
    """What closes an assistant turn: the chat template's end-of-turn text (e.g. '<|im_end|>\\n'), else EOS."""
    if tokenizer.chat_template:
        probe = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "PROBE"}]
        rendered = render_chat(tokenizer, probe)
        tail = rendered.split("PROBE", 1)[1]
        if tail:
            return tail
    return tokenizer.eos_token or ""


def truncate_prompt(ids: list[int], budget: int) -> tuple[list[int], bool]:
    """`ids` cut to `budget` tokens by dropping from the middle (keeps the head and the answer cue)."""
    if len(ids) <= budget:
        return ids, False
    tail = min(PROMPT_TAIL_TOKENS, budget // 2)
    return ids[: budget - tail] + ids[len(ids) - tail :], True


def encode_prompt(
    tokenizer: PreTrainedTokenizerBase, example: Example, system_prompt: str | None, max_length: int
) -> tuple[list[int], bool]:
    text = render_prompt(tokenizer, example.prompt, system_prompt, example.history)
    return truncate_prompt(tokenizer(text, add_special_tokens=False)["input_ids"], max_length)


def encode_example(
    tokenizer: PreTrainedTokenizerBase, example: Example, system_prompt: str | None, max_length: int
) -> Encoded:
    """Prompt + answer + end-of-turn. Raises if the answer alone leaves no room for a prompt."""
    answer = tokenizer(example.target + answer_suffix(tokenizer), add_special_tokens=False)["input_ids"]
    budget = max_length - len(answer)
    if budget < 2 * PROMPT_TAIL_TOKENS:
        raise UsageError(
            f"answer of {len(answer)} tokens leaves {budget} for the prompt within max_seq_length {max_length}"
        )
    prompt, truncated = encode_prompt(tokenizer, example, system_prompt, budget)
    return Encoded(prompt + answer, [0] * len(prompt) + [1] * len(answer), truncated)
