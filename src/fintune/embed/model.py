"""Load any embedding model (alias, folder or hub id) as a sentence-transformers model."""

from __future__ import annotations

from sentence_transformers import SentenceTransformer

from fintune.models.device import pick_device
from fintune.models.resolve import resolve_model


def load_embedder(name: str, device: str | None = None) -> SentenceTransformer:
    # Plain transformers folders get mean pooling from sentence-transformers itself.
    return SentenceTransformer(str(resolve_model(name)), device=device or pick_device())
