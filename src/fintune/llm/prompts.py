"""One prompt builder for training, evaluation and inference: what the model sees is the same in all three."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

from fintune.data.tasks import FinancialTask

# FinLoRA's sentiment instruction; the label list comes from the task so prompt and scoring agree.
SENTIMENT_INSTRUCTION = "What is the sentiment of this {kind}? Please choose an answer from {{{labels}}}."
TEXT_KINDS = {"fpb": "news", "tfns": "tweet"}


@dataclass(frozen=True)
class Example:
    prompt: str  # the user turn
    target: str  # the answer to learn or to score against


def build_example(task: FinancialTask, record: dict[str, Any]) -> Example:
    if task.name in TEXT_KINDS:
        instruction = SENTIMENT_INSTRUCTION.format(kind=TEXT_KINDS[task.name], labels="/".join(task.labels or ()))
        return Example(f"Instruction: {instruction}\nInput: {record['text']}\nAnswer:", str(record["label"]))
    if "context" in record and "target" in record:  # FinLoRA {context, target}: the prompt is complete
        return Example(record["context"], str(record["target"]))
    raise ValueError(
        f"task '{task.name}' has no prompt builder yet; tasks with prompts: fpb, tfns, xbrl_term, formula, financebench"
    )


def chat_messages(prompt: str, system_prompt: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*messages, {"role": "user", "content": prompt}]


def render_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, system_prompt: str | None = None) -> str:
    """The prompt as the model's chat template renders it, ending where the assistant's answer begins."""
    messages = chat_messages(prompt, system_prompt)
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n".join(m["content"] for m in messages) + "\n"
