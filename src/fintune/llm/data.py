"""Instruction examples for training and evaluation: from a registry task or a generic alpaca/chat/completion file."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any, TypeVar

from fintune.config.schema import LLMRunConfig
from fintune.data.beir import is_beir_folder, load_beir, splits_of
from fintune.data.loading import load_records
from fintune.data.readers import Row, read_jsonl
from fintune.data.tasks import FinancialTask, as_sentiment_record, get_task
from fintune.errors import UsageError
from fintune.llm.prompts import Example, build_examples

log = logging.getLogger(__name__)

GENERIC_FORMATS = ("alpaca", "chat", "completion")
QA_10K_INSTRUCTION = "Answer the question using only the passage from a 10-K filing."
QA_10K_PASSAGE_CHARS = 2000  # passages are short; this only guards against a pathological one
HOLDOUT_FRACTION = 0.05  # validation slice of data without a dev split (a user's file, a train-only task)


@dataclass
class ExampleSet:
    name: str  # task name, or the file's stem for a generic file
    family: str  # scoring family: classification, qa, numeric, generation
    examples: list[Example]
    records: int  # records read (a headline or NER record yields several examples)
    source: str


@dataclass
class TrainingSets:
    train: dict[str, ExampleSet]  # per task ("data" for a generic file), validation slices removed
    validation: dict[str, list[Example]]  # per task
    notes: list[str]


T = TypeVar("T")


def llm_family(task: FinancialTask) -> str:
    # The 10-K retrieval set doubles as extractive QA for the LLM pipeline (question + judged passage -> answer).
    return "qa" if task.name == "financial_qa_10k" else task.family


def task_examples(
    task: FinancialTask | str, path: str | Path | None = None, split: str = "train", skip_invalid: bool = False
) -> ExampleSet:
    task = get_task(task) if isinstance(task, str) else task
    if task.name == "financial_qa_10k":
        return _qa_10k_examples(task, Path(path) if path else task.path(split), split)
    if task.name == "rag_10k":  # prompts as `fintune ask` builds them, from a real index (fintune.rag.task)
        from fintune.rag.task import rag_task_examples

        examples, records, origin = rag_task_examples(task, Path(path) if path else task.path(split), split)
        return ExampleSet(task.name, "qa", examples, records, origin)
    if task.layout == "parts":
        part = file_part(task, Path(path)) if path else None
        if part and part not in task.parts:
            raise UsageError(f"{path}: records of {part}; task '{task.name}' reads {', '.join(task.parts)}")
        if not path or part:
            return _parts_examples(task, split, skip_invalid, {part: Path(path)} if part and path else None)
    source = Path(path) if path else task.path(split)
    rows = load_records(source, task=task, skip_invalid=skip_invalid).rows
    examples = [e for r in rows for e in build_examples(task, r)]
    return ExampleSet(task.name, llm_family(task), examples, len(rows), str(source))


def file_part(task: FinancialTask, path: Path) -> str | None:
    """Which part's schema a file given for a multi-source task follows (a held-out fpb, tfns or FiQA file),
    or None for a file in the task's own fields ({text, label, source})."""
    first = next((item.value for item in read_jsonl(path) if isinstance(item, Row)), None)
    if not isinstance(first, dict) or "source" in first:
        return None
    if "score" in first:
        return "fiqa_sa_score"
    labels = {str(item.value.get("label")) for item in read_jsonl(path) if isinstance(item, Row)}
    if labels & {"bearish", "bullish"}:
        return "tfns"
    return "fpb" if labels <= set(task.labels or ()) else None


def _parts_examples(
    task: FinancialTask, split: str, skip_invalid: bool, files: dict[str, Path] | None = None
) -> ExampleSet:
    """A task built from other tasks' data: each part's records (checked against the part's own schema,
    so errors name the part's file and line) mapped onto the task's fields, each example tagged with its part.
    `files`: {part: file} instead of every part's `split`."""
    per_part: list[list[Example]] = []
    records, sources = 0, []
    for name in files or task.parts:
        part = get_task(name)
        source = files[name] if files else part.path(split)
        rows = load_records(source, task=part, skip_invalid=skip_invalid).rows
        per_part.append([e for r in rows for e in build_examples(task, as_sentiment_record(name, r))])
        records += len(rows)
        sources.append(str(source))
    # Interleaved, so a validation limit or `llm eval --limit` still scores every source.
    examples = [e for group in zip_longest(*per_part) for e in group if e is not None]
    return ExampleSet(task.name, llm_family(task), examples, records, " + ".join(sources))


def _qa_10k_examples(task: FinancialTask, folder: Path, split: str) -> ExampleSet:
    data = load_beir(folder, split)
    examples = []
    for qid, judged in data.qrels.items():
        query = data.queries[qid]
        answer = str(data.query_fields.get(qid, {}).get("answer") or "").strip()
        if not answer:
            continue
        passage = data.doc_text(next(iter(judged)))[:QA_10K_PASSAGE_CHARS]
        prompt = f"Instruction: {QA_10K_INSTRUCTION}\nPassage: {passage}\nQuestion: {query}\nAnswer:"
        examples.append(Example(prompt, answer))
    skipped = len(data.qrels) - len(examples)
    if skipped:
        log.warning("%s: %d of %d queries skipped: no answer text", folder, skipped, len(data.qrels))
    return ExampleSet(task.name, "qa", examples, len(data.qrels), f"{folder} ({split})")


def file_examples(path: str | Path, fmt: str | None = None, skip_invalid: bool = False) -> ExampleSet:
    """Examples from an alpaca, chat or completion file (the format is detected when not given)."""
    records = load_records(path, fmt=fmt, skip_invalid=skip_invalid)
    if records.schema not in GENERIC_FORMATS:
        raise UsageError(
            f"{path}: records are '{records.schema}', not an instruction format ({', '.join(GENERIC_FORMATS)}); "
            "pass --task for a registry task's data"
        )
    examples = [_generic_example(records.schema, r) for r in records.rows]
    return ExampleSet(Path(path).stem, "qa", examples, len(records.rows), str(path))


def _generic_example(schema: str, row: dict[str, Any]) -> Example:
    if schema == "alpaca":
        text = row.get("input") or ""
        prompt = f"{row['instruction']}\n{text}".strip() if text else row["instruction"]
        return Example(prompt, row["output"])
    if schema == "completion":
        prompt = row.get("context", row.get("prompt"))
        if prompt is None:  # cannot happen: loading checked the completion format's context|prompt text
            raise UsageError("completion record has neither context nor prompt")
        return Example(prompt, str(row.get("target", row.get("completion"))))
    messages = row["messages"]
    last_answer = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    users = [i for i, m in enumerate(messages[:last_answer]) if m["role"] == "user"]
    if not users:
        raise UsageError("chat record has no user turn before its last assistant turn")
    history = tuple(dict(m) for m in messages[: users[-1]])
    return Example(messages[users[-1]]["content"], messages[last_answer]["content"], history=history)


def evaluation_examples(task: FinancialTask | str, path: str | Path | None, seed: int, limit: int | None) -> ExampleSet:
    """What `llm eval` scores: the dev split, or for a train-only task the slice training held out.

    The held-out slice is drawn exactly as training draws it (same seed and size), so a tuned model
    is never scored on examples it was trained on.
    """
    task = get_task(task) if isinstance(task, str) else task
    if path or "dev" in task.splits:
        return task_examples(task, path, "dev")
    full = task_examples(task, None, "train")
    _, held = holdout(full.examples, HOLDOUT_FRACTION, limit, seed)
    return ExampleSet(full.name, full.family, held, len(held), f"{full.source} (held-out {len(held)}, seed {seed})")


def sample_examples(examples: list[T], limit: int | None, seed: int) -> list[T]:
    """`limit` examples drawn at random (seeded), kept in file order; all of them without a limit.

    Never the first `limit`: shared dev files are often sorted by label (FPB's first 100 dev records
    hold 2 negatives, TFNS's first 16 are 15 bearish), so a head is a biased sample.
    """
    if not limit or limit >= len(examples):
        return list(examples)
    chosen = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in chosen]


def holdout(
    examples: list[Example], fraction: float, limit: int | None, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split off a validation slice for tasks that ship only a train split."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    size = max(1, int(len(examples) * fraction))
    if limit:
        size = min(size, limit)
    held = set(order[:size])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in order[:size]]


def training_sets(cfg: LLMRunConfig, skip_invalid: bool = False) -> TrainingSets:
    """Each task's training examples and the examples its validation loss is measured on.

    Validation comes from the data being trained on: a named eval file, else the task's dev split when
    training on the task's own data, else a seeded held-out slice of the training examples (a user's
    file, a train-only task), never the dev split of a dataset the user's data may not resemble."""
    weights = cfg.task_weights
    train: dict[str, ExampleSet] = {}
    validation: dict[str, list[Example]] = {}
    if not weights:
        if not cfg.dataset_path:
            raise UsageError("give a task (task / tasks) or a data file (dataset_path)")
        train["data"] = file_examples(cfg.dataset_path, skip_invalid=skip_invalid)
        if cfg.eval_path:
            validation["data"] = file_examples(cfg.eval_path).examples
    for name in weights:
        task = get_task(name)
        data, eval_path = (cfg.dataset_path, cfg.eval_path) if len(weights) == 1 else (None, None)
        train[name] = task_examples(task, data, "train", skip_invalid)
        chosen = task_validation(task, data, eval_path)
        if chosen is not None:
            validation[name] = chosen.examples
    notes = []
    for name, ex_set in train.items():
        if name not in validation:
            ex_set.examples, validation[name] = holdout(ex_set.examples, HOLDOUT_FRACTION, cfg.eval_limit, cfg.seed)
            notes.append(
                f"{name}: validation is a held-out {len(validation[name])} of the training examples (seed {cfg.seed})"
            )
    return TrainingSets(train, validation, notes)


def task_validation(task: FinancialTask, data: str | Path | None, eval_path: str | Path | None) -> ExampleSet | None:
    """A task run's validation set, or None when it is to be held out of the training data."""
    if eval_path:
        return task_examples(task, eval_path, "dev")
    if data is None or is_registry_split(task, data):
        return task_examples(task, None, "dev") if "dev" in task.splits else None
    if task.layout == "beir" and is_beir_folder(Path(data)) and "dev" in splits_of(Path(data)):
        return task_examples(task, data, "dev")  # the user's own BEIR folder has a dev split
    return None


def is_registry_split(task: FinancialTask, path: str | Path) -> bool:
    """`path` is the task's own shared train data (FinLoRA's configs name it explicitly)."""
    if task.layout == "parts":
        return False
    return Path(path).resolve() == task.path("train").resolve()
