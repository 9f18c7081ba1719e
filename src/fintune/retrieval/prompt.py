"""The RAG prompt, apart from the answering code: `ask`, `rag eval` and the `rag_10k` training task build
the same text, and the training task must not import the LLM inference stack that `ask` loads."""

from __future__ import annotations

from fintune.retrieval.stores.base import Hit

NOT_FOUND = "The passages do not contain the answer."
INSTRUCTION = (
    "Answer the question using only the passages from 10-K filings. Cite the id of each passage you use in "
    f"square brackets, like [d12]. If the passages do not contain the answer, reply exactly: {NOT_FOUND}"
)
PASSAGE_CHARS = 1200  # per passage: four passages stay well inside SmolLM2's context


def rag_prompt(question: str, passages: list[Hit]) -> str:
    blocks = "\n".join(f"[{h.id}] {h.text[:PASSAGE_CHARS]}" for h in passages)
    return f"Instruction: {INSTRUCTION}\nPassages:\n{blocks}\nQuestion: {question}\nAnswer:"
