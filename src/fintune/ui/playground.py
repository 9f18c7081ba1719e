"""Playground tab: one task prompt answered by the base model and each adapter, side by side.

Prompts, generation lengths and answer parsing are `fintune llm eval`'s own, so a label shown here is the
label the evaluation would score for the same model and example.
"""

from __future__ import annotations

import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd

from fintune.errors import UsageError
from fintune.llm.predict import as_example

if TYPE_CHECKING:  # the LLM modules import transformers: seconds the page's start must not wait for
    from fintune.llm.heads import HeadSpec
    from fintune.llm.prompts import Example

PLAYGROUND_TASKS = ("fpb", "tfns", "headline", "ner", "xbrl_term", "formula", "ectsum", "financial_qa_10k")
EXAMPLES_SHOWN = 50  # dropdown entries per task: enough to browse, small enough to render at once
COLUMNS = ["model", "answer", "parsed", "gold", "correct", "latency_ms"]

_models: dict[tuple[str, str], tuple[Any, Any, Any, HeadSpec | None]] = {}
_lock = threading.Lock()  # one load or generation at a time: two would only compete for the same cores


@lru_cache(maxsize=len(PLAYGROUND_TASKS))
def task_examples(task: str) -> tuple[Example, ...]:
    """What `llm eval` scores for the task: its dev split, or the held-out slice of a train-only task."""
    from fintune.config.schema import LLMRunConfig
    from fintune.llm.data import evaluation_examples

    run = LLMRunConfig()
    return tuple(evaluation_examples(task, None, run.seed, run.eval_limit).examples)


def example_choices(task: str) -> list[tuple[str, int]]:
    """(label, index) pairs for the example dropdown: the prompt's input, shortened."""
    examples = task_examples(task)[:EXAMPLES_SHOWN]
    return [(f"{i}: {_input_part(e.prompt)[:90]}", i) for i, e in enumerate(examples)]


def pick_example(task: str, index: int | None) -> tuple[str, str]:
    """The example's prompt and gold answer."""
    if index is None or index == "":
        return "", ""
    examples = task_examples(task)
    if not 0 <= int(index) < len(examples):
        raise UsageError(f"task '{task}' has {len(examples)} examples; no example {index}")
    example = examples[int(index)]
    return example.prompt, example.target


def _input_part(prompt: str) -> str:
    for cue in ("\nInput: ", "\nQuestion: ", "\nTranscript: "):
        if cue in prompt:
            return prompt.split(cue, 1)[1].split("\nAnswer:", 1)[0]
    return prompt


def _load(base: str, adapter: str) -> tuple[Any, Any, Any, HeadSpec | None]:
    """Model, tokenizer and prompt settings (a head adapter: and its head), loaded on first use and kept."""
    key = (base, adapter)
    if key not in _models:
        from fintune.llm.inference import head_of, inference_settings, load_for_inference

        if head_of(adapter) != "generate":
            from fintune.llm.heads import load_head_model

            model, tokenizer, spec = load_head_model(adapter, base_model=base or None)
            _models[key] = (model, tokenizer, inference_settings(adapter), spec)
        else:
            _models[key] = (*load_for_inference(base or None, adapter or None), None)
    return _models[key]


def answer_one(task: str, example: Example, base: str, adapter: str) -> dict[str, Any]:
    """One model's answer, parsed as `llm eval` parses it, with its generation (or head's) time. A head
    adapter answers with its head's label or number, as `llm eval` scores it."""
    from fintune.data.tasks import get_task
    from fintune.llm.data import llm_family
    from fintune.llm.encode import encode_prompt
    from fintune.llm.evaluate import MAX_NEW_TOKENS
    from fintune.llm.generate import generate_batched
    from fintune.llm.heads import predict_head
    from fintune.llm.predict import check_head_serves

    family = llm_family(get_task(task))
    with _lock:
        model, tokenizer, settings, spec = _load(base, adapter)
        start = time.perf_counter()
        if spec is not None:
            check_head_serves(spec, task)
            text = predict_head(model, tokenizer, spec, [example], settings.system_prompt, settings.max_length)[0]
        else:
            budget = settings.max_length - MAX_NEW_TOKENS[family]
            ids, _ = encode_prompt(tokenizer, example, settings.system_prompt, budget)
            text = generate_batched(model, tokenizer, [ids], MAX_NEW_TOKENS[family], 1, progress=False).answers[0]
        latency_ms = 1000 * (time.perf_counter() - start)
    parsed = parse_answer(family, text, example.labels)
    return {"answer": text, "parsed": parsed, "latency_ms": round(latency_ms, 1)}


def parse_answer(family: str, answer: str, labels: tuple[str, ...]) -> str:
    """The label or number the metrics would read from `answer`, as the table shows it."""
    from fintune.llm.predict import parse_answer as parsed

    value = parsed(family, answer, labels)
    if family == "classification" and labels:
        return str(value) if value is not None else "(no label)"
    if family in ("numeric", "regression"):
        return "(no number)" if value is None else f"{value:g}"
    return ""


def is_correct(parsed: str, gold: str, family: str) -> str:
    """✓/✗ where the task has one right label or number; blank for free text and unknown gold."""
    if not gold or family not in ("classification", "numeric"):
        return ""
    if family == "numeric":
        from fintune.metrics.numeric import first_number

        expected = first_number(gold)
        ok = expected is not None and parsed not in ("", "(no number)") and abs(float(parsed) - expected) < 0.005
        return "✓" if ok else "✗"
    return "✓" if parsed.lower() == gold.strip().lower() else "✗"


def compare(task: str, text: str, gold: str, adapters: str, base: str = "") -> pd.DataFrame:
    """Base model and each adapter (one folder per line) on the same prompt: one row each."""
    from fintune.data.tasks import get_task
    from fintune.llm.data import llm_family

    example = _matching_example(task, text) or as_example(task, text)
    family = llm_family(get_task(task))
    gold = gold.strip() or example.target
    rows = []
    for adapter in ["", *_adapter_list(adapters)]:
        result = answer_one(task, example, base, adapter)
        name = adapter or f"base ({base or 'default'})"
        rows.append({"model": name, **result, "gold": gold, "correct": is_correct(result["parsed"], gold, family)})
    return pd.DataFrame(rows, columns=COLUMNS)


def _matching_example(task: str, text: str) -> Example | None:
    """The dev example whose prompt was picked (keeps its own label set, e.g. Yes/No for a headline)."""
    text = text.strip()
    return next((e for e in task_examples(task) if e.prompt == text), None) if text.startswith("Instruction") else None


def batch(task: str, records: str | None, adapters: str, base: str = "", limit: int = 0) -> str:
    """Predictions of the base model and each adapter for a file of the task's records (JSONL, CSV, ...):
    a JSONL file of {id, model, prompt, answer, parsed, gold}, one line per example and model."""
    import json
    import tempfile

    from fintune.llm.data import task_examples as file_examples

    if not records:
        raise UsageError("upload a file of the task's records")
    examples = file_examples(task, records, "dev").examples[: int(limit) or None]
    out = Path(tempfile.mkdtemp(prefix="fintune-ui-batch-")) / f"{task}-predictions.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for adapter in ["", *_adapter_list(adapters)]:
            for i, example in enumerate(examples):
                result = answer_one(task, example, base, adapter)
                row = {"id": i, "model": adapter or "base", "prompt": example.prompt, "gold": example.target}
                f.write(json.dumps(row | result, ensure_ascii=False) + "\n")
    return str(out)


def _adapter_list(adapters: str) -> list[str]:
    return [a.strip() for a in adapters.replace(",", "\n").splitlines() if a.strip()]


def build_tab(demo: gr.Blocks) -> None:
    """The Playground tab's components and events (inside `demo`); examples load with the page, not the server."""
    with gr.Row():
        task = gr.Dropdown(list(PLAYGROUND_TASKS), value="fpb", label="task")
        # allow_custom_value: the choices arrive per page, so the server's copy of them starts empty
        example = gr.Dropdown([], label="example from the dev split (or the held-out slice)", allow_custom_value=True)
        base = gr.Textbox(label="base model (empty: the recipe's default, smollm2)", value="")
    adapters = gr.Textbox(label="adapter folders, one per line", lines=2)
    text = gr.Textbox(label="input: a prompt, or plain text for fpb/tfns/ectsum", lines=4)
    gold = gr.Textbox(label="gold answer (filled from the example)")
    run = gr.Button("Answer", variant="primary")
    table = gr.Dataframe(headers=COLUMNS, label="answers side by side", wrap=True)
    with gr.Accordion("Batch: a file of the task's records -> predictions JSONL", open=False):
        with gr.Row():
            records = gr.File(label="records (JSONL, CSV, Parquet)", type="filepath")
            limit = gr.Number(0, precision=0, label="first N records (0: all)")
            run_batch = gr.Button("Predict file")
        predictions = gr.File(label="predictions")

    def load_choices(name: str) -> Any:
        return gr.update(choices=example_choices(name), value=None)

    task.change(load_choices, task, example, api_name="examples")
    demo.load(load_choices, task, example)
    example.change(pick_example, [task, example], [text, gold], api_name="pick_example")
    run.click(compare, [task, text, gold, adapters, base], table, api_name="compare")
    run_batch.click(batch, [task, records, adapters, base, limit], predictions, api_name="batch")
