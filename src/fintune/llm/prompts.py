"""One prompt builder for training, evaluation and inference: what the model sees is the same in all three."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from transformers import PreTrainedTokenizerBase

from fintune.data.tasks import FinancialTask
from fintune.errors import UsageError

# FinLoRA's sentiment instruction; the label list comes from the task so prompt and scoring agree.
SENTIMENT_INSTRUCTION = "What is the sentiment of this {kind}? Please choose an answer from {{{labels}}}."
TEXT_KINDS = {"fpb": "news", "tfns": "tweet"}
SENTIMENT_TEXT_KINDS = {**TEXT_KINDS, "fiqa_sa_score": "financial text"}
STOCKNET_INSTRUCTION = (
    "From these tweets about ${ticker} on {date}, predict the stock's return over the next trading day "
    "in percent. Answer with one number."
)
FIQA_SCORE_INSTRUCTION = (
    "What is the sentiment of this {kind} towards {target}, as a score from -1 (very negative) "
    "to 1 (very positive)? Answer with one number."
)


@dataclass(frozen=True)
class Example:
    prompt: str  # the user turn
    target: str  # the answer to learn or to score against
    labels: tuple[str, ...] = ()  # the answer set, for classification
    history: tuple[dict[str, str], ...] = ()  # earlier chat turns (system, user, assistant) before `prompt`
    source: str = ""  # the part of a multi-source task (sentiment: fpb, tfns, fiqa_sa_score), scored apart


# Headline flags as yes/no questions (FinLoRA's headline task asks one question per flag).
HEADLINE_QUESTIONS = {
    "price_direction_up": "Does the news headline talk about price going up?",
    "price_direction_constant": "Does the news headline talk about price staying constant?",
    "price_direction_down": "Does the news headline talk about price going down?",
    "asset_comparison": "Does the news headline compare gold with any other asset?",
    "past_information": "Does the news headline talk about a past event?",
    "future_information": "Does the news headline talk about a future event?",
}
YES_NO = ("Yes", "No")
# Entity types asked about (FinLoRA's NER task: person, organization, location); I-MISC is not asked.
ENTITY_TYPES = {"I-PER": "person", "I-ORG": "organization", "I-LOC": "location"}


def build_examples(task: FinancialTask, record: dict[str, Any]) -> list[Example]:
    """The prompts one record yields: one for most tasks, one per flag or entity for headline and ner."""
    if task.name in TEXT_KINDS:
        labels = task.labels or ()
        instruction = SENTIMENT_INSTRUCTION.format(kind=TEXT_KINDS[task.name], labels="/".join(labels))
        return [Example(f"Instruction: {instruction}\nInput: {record['text']}\nAnswer:", str(record["label"]), labels)]
    if task.name in ("sentiment", "fiqa_sa"):  # records mapped from their sources (as_sentiment_record)
        kind = SENTIMENT_TEXT_KINDS.get(str(record.get("source") or ""), "text")
        instruction = SENTIMENT_INSTRUCTION.format(kind=kind, labels="/".join(task.labels or ()))
        prompt = f"Instruction: {instruction}\nInput: {record['text']}\nAnswer:"
        return [Example(prompt, str(record["label"]), task.labels or (), source=str(record.get("source") or ""))]
    if task.name == "stocknet":
        tweets = "\n".join(f"- {t}" for t in record["texts"])
        prompt = (
            f"Instruction: {STOCKNET_INSTRUCTION.format(ticker=record['ticker'], date=record['date'])}\n"
            f"Tweets:\n{tweets}\nAnswer:"
        )
        return [Example(prompt, number_answer(record["ret_next_pct"]))]
    if task.name == "fiqa_sa_score":
        kind = record.get("type") or "text"
        instruction = FIQA_SCORE_INSTRUCTION.format(kind=kind, target=record["target"])
        return [
            Example(f"Instruction: {instruction}\nInput: {record['text']}\nAnswer:", number_answer(record["score"]))
        ]
    if task.name == "headline":
        return [
            Example(
                f"Instruction: {question} Please choose an answer from {{Yes/No}}.\n"
                f"Input: {record['headline']}\nAnswer:",
                "Yes" if int(record[flag]) else "No",
                YES_NO,
            )
            for flag, question in HEADLINE_QUESTIONS.items()
        ]
    if task.name == "ner":
        sentence = " ".join(record["tokens"])
        options = "/".join(ENTITY_TYPES.values())
        return [
            Example(
                f"Instruction: What is the entity type of '{entity}' in the input sentence? "
                f"Please choose an answer from {{{options}}}.\nInput: {sentence}\nAnswer:",
                kind,
                tuple(ENTITY_TYPES.values()),
            )
            for entity, kind in entities(record["tokens"], record["ner_tags"])
        ]
    if task.name == "ectsum":
        prompt = f"Summarize this earnings call transcript in a few bullet points.\nTranscript: {record['transcript']}"
        return [Example(prompt, record["summary"])]
    if "context" in record and "target" in record:  # FinLoRA {context, target}: the prompt is complete
        return [Example(record["context"], str(record["target"]))]
    raise UsageError(f"task '{task.name}' has no prompt builder")


def number_answer(value: Any) -> str:
    """A regression target as the model writes it: the number with at most 3 decimals ("-0.374", "1.25")."""
    return f"{round(float(value), 3) + 0.0:g}"  # + 0.0: no "-0"


def entities(tokens: list[str], tags: list[str]) -> list[tuple[str, str]]:
    """(text, type) of each run of equal IO tags of an asked-about type."""
    found: list[tuple[str, str]] = []
    current: list[str] = []
    kind: str | None = None
    for token, tag in [*zip(tokens, tags, strict=True), ("", "O")]:
        if tag == kind and current:
            current.append(token)
            continue
        if current and kind in ENTITY_TYPES:
            found.append((" ".join(current), ENTITY_TYPES[kind]))
        current, kind = ([token], tag) if tag != "O" else ([], None)
    return found


def build_example(task: FinancialTask, record: dict[str, Any]) -> Example:
    """The single prompt of a one-prompt task (sentiment, FinLoRA completions, ectsum)."""
    examples = build_examples(task, record)
    if len(examples) != 1:
        raise ValueError(f"task '{task.name}' yields {len(examples)} prompts per record; use build_examples")
    return examples[0]


def chat_messages(
    prompt: str, system_prompt: str | None = None, history: tuple[dict[str, str], ...] = ()
) -> list[dict[str, str]]:
    """The turns before the answer. A system turn in `history` wins over `system_prompt`."""
    has_system = any(m["role"] == "system" for m in history)
    messages = [{"role": "system", "content": system_prompt}] if system_prompt and not has_system else []
    return [*messages, *history, {"role": "user", "content": prompt}]


def render_prompt(
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    system_prompt: str | None = None,
    history: tuple[dict[str, str], ...] = (),
) -> str:
    """The prompt as the model's chat template renders it, ending where the assistant's answer begins."""
    messages = chat_messages(prompt, system_prompt, history)
    if tokenizer.chat_template:
        return render_chat(tokenizer, messages, add_generation_prompt=True)
    return "\n".join(m["content"] for m in messages) + "\n"


def render_chat(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], **kwargs: Any) -> str:
    """The chat template's text for `messages` (the tokenizer must have a chat template)."""
    # With tokenize=False apply_chat_template returns the rendered text; transformers annotates it with the
    # union of every mode's result (token ids, batches, BatchEncoding).
    return cast(str, tokenizer.apply_chat_template(messages, tokenize=False, **kwargs))
