"""Token-aware splitting of long documents into pieces the model reads whole."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from fintune.errors import UsageError


def split_by_tokens(
    text: str, tokenizer: PreTrainedTokenizerBase, max_tokens: int, overlap: int | None = None
) -> list[str]:
    """Pieces of `text` of at most `max_tokens` tokens (special tokens included), cut on token
    boundaries of the model's own tokenizer, with `overlap` tokens (default: an eighth of a piece,
    at most 32) shared between neighbours."""
    budget = max_tokens - tokenizer.num_special_tokens_to_add(pair=False)
    overlap = min(32, budget // 8) if overlap is None else overlap
    if budget <= overlap:
        raise UsageError(f"max_tokens {max_tokens} leaves no room beyond the {overlap}-token overlap")
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    if len(offsets) <= budget:
        return [text]
    pieces, start = [], 0
    while start < len(offsets):
        end = min(start + budget, len(offsets))
        pieces.append(text[offsets[start][0] : offsets[end - 1][1]].strip())
        if end == len(offsets):
            break
        start = end - overlap
    return [p for p in pieces if p]
