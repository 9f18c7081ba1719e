"""A task's answer for raw input text: the task's own prompt builder in, `llm eval`'s parsing out.

The web UI's playground and the serving API's `/v1/predict` both answer through here, so a label they
show is the label the evaluation would score for the same model and input. An adapter trained with a
classification or regression head answers through its head (`predict_with_head`), as `llm eval` scores it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fintune.errors import UsageError

if TYPE_CHECKING:  # transformers: loaded by the callers that generate
    from fintune.llm.heads import HeadSpec
    from fintune.llm.prompts import Example

# Typed text of these tasks is the input field of a record; the task's builder turns it into the prompt.
TEXT_RECORD = {"fpb": "text", "tfns": "text", "ectsum": "transcript"}


def task_labels(task: str) -> tuple[str, ...]:
    from fintune.data.tasks import get_task
    from fintune.llm.prompts import ENTITY_TYPES, YES_NO

    if task == "headline":
        return YES_NO
    if task == "ner":
        return tuple(ENTITY_TYPES.values())
    return get_task(task).labels or ()


def as_example(task: str, text: str) -> Example:
    """The prompt for typed text: a full prompt (an example's, edited) as is; plain text of a sentiment or
    summary task goes through the task's prompt builder, so it reads like a training prompt."""
    from fintune.data.tasks import get_task
    from fintune.llm.prompts import Example, build_examples

    text = text.strip()
    if not text:
        raise UsageError("the input text is empty")
    spec = get_task(task)
    if task in TEXT_RECORD and not text.startswith(("Instruction:", "Summarize")):
        record = {TEXT_RECORD[task]: text, "label": (spec.labels or ("",))[0], "summary": ""}
        return build_examples(spec, record)[0]
    return Example(text, "", task_labels(task))


def parse_answer(family: str, answer: str, labels: tuple[str, ...]) -> str | float | None:
    """The label (classification) or number (numeric, regression) the metrics would read from `answer`;
    None when the answer holds none; free-text tasks: None (the answer itself is the prediction)."""
    from fintune.metrics.classification import first_label
    from fintune.metrics.numeric import first_number

    if family == "classification" and labels:
        return first_label(answer, labels) or None  # "" when no label is in the answer
    if family in ("numeric", "regression"):
        return first_number(answer)
    return None


def max_new_tokens(task: str) -> int:
    """The generation length `llm eval` gives the task's family."""
    from fintune.data.tasks import get_task
    from fintune.llm.data import llm_family
    from fintune.llm.evaluate import MAX_NEW_TOKENS

    return int(MAX_NEW_TOKENS[llm_family(get_task(task))])


def family_of(task: str) -> str:
    from fintune.data.tasks import get_task
    from fintune.llm.data import llm_family

    return str(llm_family(get_task(task)))


def predict(model: Any, tokenizer: Any, settings: Any, task: str, inputs: list[str]) -> list[dict[str, Any]]:
    """One {answer, prediction} per input, generated greedily in one batch as `llm eval` does."""
    from fintune.llm.encode import encode_prompt
    from fintune.llm.generate import generate_batched

    family, new_tokens = family_of(task), max_new_tokens(task)
    examples = [as_example(task, text) for text in inputs]
    ids = [encode_prompt(tokenizer, e, settings.system_prompt, settings.max_length - new_tokens)[0] for e in examples]
    answers = generate_batched(model, tokenizer, ids, new_tokens, batch_size=len(ids), progress=False).answers
    return [
        {"answer": a, "prediction": parse_answer(family, a, e.labels)} for a, e in zip(answers, examples, strict=True)
    ]


def check_head_serves(spec: HeadSpec, task: str) -> None:
    """A head answers only the kind of question it was trained for: its own label set, or a number."""
    family = family_of(task)
    if spec.head == "regress" and family != "regression":
        raise UsageError(f"task: this adapter's regression head predicts a number; task '{task}' is {family}")
    if spec.head == "classify" and set(task_labels(task)) != set(spec.labels):
        wanted = "/".join(task_labels(task)) or family
        raise UsageError(
            f"task: this adapter's head chooses among {'/'.join(spec.labels)}; task '{task}' asks {wanted}"
        )


def predict_with_head(
    model: Any, tokenizer: Any, spec: HeadSpec, settings: Any, task: str, inputs: list[str]
) -> list[dict[str, Any]]:
    """One {answer, prediction} per input from a head adapter: the label (or number) its head gives for the
    task's prompt, the answer `llm eval` scores for a head adapter; a classification head adds each label's
    probability (`scores`), which generation cannot give."""
    from fintune.llm.heads import head_logits

    check_head_serves(spec, task)
    family = family_of(task)
    examples = [as_example(task, text) for text in inputs]
    rows = head_logits(model, tokenizer, examples, settings.system_prompt, settings.max_length)
    results = []
    for row, example in zip(rows, examples, strict=True):
        answer = spec.answer(row)
        result: dict[str, Any] = {"answer": answer, "prediction": parse_answer(family, answer, example.labels)}
        if spec.head == "classify":
            result["scores"] = dict(zip(spec.labels, row.softmax(-1).tolist(), strict=True))
        results.append(result)
    return results
