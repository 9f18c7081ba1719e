"""Named record formats for both pipelines, and format detection from a file's records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fintune.data.schema import Field, field


@dataclass(frozen=True)
class RecordFormat:
    name: str
    pipeline: Literal["embed", "llm", "any"]
    fields: tuple[Field, ...]
    description: str

    def matches(self, record: dict[str, Any]) -> bool:
        return all(f.find(record) is not None for f in self.fields if f.required)

    def specificity(self, record: dict[str, Any]) -> int:
        return sum(f.find(record) is not None for f in self.fields)


FORMATS: dict[str, RecordFormat] = {
    f.name: f
    for f in (
        RecordFormat(
            "pairs",
            "embed",
            (field("text1"), field("text2"), field("score", kind="score01", required=False)),
            "text pairs with a similarity score in 0..1 (positive pairs when no score)",
        ),
        RecordFormat(
            "triplets",
            "embed",
            (field("anchor"), field("positive"), field("negative")),
            "anchor, positive and negative texts",
        ),
        RecordFormat(
            "query-positive",
            "embed",
            (field("query", "anchor"), field("positive"), field("negatives", "negative", kind="any", required=False)),
            "a query, its relevant passage and optional hard negatives",
        ),
        RecordFormat(
            "documents",
            "embed",
            (
                field("content"),
                field("metadata", kind="any", required=False),
                field("label", kind="label", required=False),
            ),
            "documents with metadata and an optional label",
        ),
        RecordFormat(
            "labelled",
            "any",
            (field("text"), field("label", kind="label"), field("id", kind="any", required=False)),
            "texts with a class label (sentiment style)",
        ),
        RecordFormat(
            "simple",
            "embed",
            (field("text"), field("id", kind="any", required=False)),
            "plain domain texts (a list of strings or {text})",
        ),
        RecordFormat(
            "alpaca",
            "llm",
            (field("instruction"), field("input", kind="optional_text", required=False), field("output")),
            "instruction, optional input and output",
        ),
        RecordFormat("chat", "llm", (field("messages", kind="messages"),), "a list of {role, content} messages"),
        RecordFormat(
            "completion",
            "llm",
            (field("context", "prompt"), field("target", "completion")),
            "a complete prompt and its target (FinLoRA style)",
        ),
        RecordFormat(
            "tokens",
            "any",
            (field("tokens", kind="texts"), field("ner_tags", "tags", kind="tags")),
            "token lists with one tag per token (CoNLL style)",
        ),
    )
}


def detect_format(record: Any) -> RecordFormat | None:
    """The most specific named format whose required fields the record has."""
    if isinstance(record, str):
        return FORMATS["simple"]
    if not isinstance(record, dict):
        return None
    candidates = [f for f in FORMATS.values() if f.matches(record)]
    return max(candidates, key=lambda f: f.specificity(record), default=None)
