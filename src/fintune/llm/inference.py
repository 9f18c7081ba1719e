"""A model ready to answer prompts, with the prompt settings its adapter was trained with.

`llm eval`, `llm generate`, `llm chat` and `ask` all start here, so an adapter is always prompted with
its training system prompt and length, and a base model with the recipe's defaults (the same ones a
tuned model of the default recipe has: base and tuned compare on equal terms).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fintune.config.saved import read_llm_run
from fintune.config.schema import LLMRunConfig
from fintune.data.errors import DataError, RecordError
from fintune.errors import UsageError
from fintune.llm.prompts import Example
from fintune.models.resolve import is_adapter


@dataclass(frozen=True)
class InferenceSettings:
    run: LLMRunConfig  # the adapter's recorded run, else the defaults
    system_prompt: str | None  # "" or None: no system turn of ours
    max_length: int  # prompt + answer tokens; prompts lose their middle to fit


def head_of(adapter: str | Path | None) -> str:
    """'classify' or 'regress' for an adapter trained with a head (it predicts, writes no text), else 'generate'."""
    if not adapter or not is_adapter(adapter):
        return "generate"
    return inference_settings(adapter).run.head


def inference_settings(
    adapter: str | Path | None = None, system_prompt: str | None = None, max_length: int | None = None
) -> InferenceSettings:
    """The adapter's training prompt settings (or the defaults), under the caller's explicit choices."""
    run = (read_llm_run(adapter) if adapter else None) or LLMRunConfig()
    return InferenceSettings(
        run=run,
        system_prompt=run.system_prompt if system_prompt is None else system_prompt,
        max_length=max_length or run.max_seq_length,
    )


def load_for_inference(
    model: str | None = None,
    adapter: str | Path | None = None,
    system_prompt: str | None = None,
    max_length: int | None = None,
) -> tuple[Any, Any, InferenceSettings]:
    """Model (the adapter's base unless `model` is given), tokenizer and the prompt settings."""
    from fintune.llm.model import load_causal_lm

    settings = inference_settings(adapter, system_prompt, max_length)
    lm, tokenizer = load_causal_lm(model or (None if adapter else settings.run.base_model), adapter=adapter)
    return lm, tokenizer, settings


def context_length(model: Any) -> int:
    """Tokens the model reads at most: the budget of prompts longer than any training example (RAG)."""
    return int(model.config.max_position_embeddings)


def prompt_examples(
    prompt: str | None = None, file: str | Path | None = None, task: str | None = None
) -> list[Example]:
    """What `llm generate` answers: one prompt, a task's records, a JSONL of {prompt} or plain lines."""
    if bool(prompt) == bool(file):
        raise UsageError("give one prompt or --file")
    if prompt:
        return [Example(prompt, "")]
    path = Path(str(file))
    if task:
        from fintune.llm.data import task_examples

        return task_examples(task, path, "train").examples
    if path.suffix == ".jsonl":
        return _jsonl_prompts(path)
    return [Example(line, "") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _jsonl_prompts(path: Path) -> list[Example]:
    from fintune.data.readers import read_jsonl

    items: list[Example] = []
    errors: list[RecordError] = []
    for item in read_jsonl(path):
        if isinstance(item, RecordError):
            errors.append(item)
        elif isinstance(item.value, dict) and isinstance(item.value.get("prompt"), str):
            items.append(Example(item.value["prompt"], ""))
        else:
            errors.append(RecordError(path, item.line, "prompt", "expected an object with a 'prompt' string"))
    if errors:
        raise DataError(errors)
    return items
