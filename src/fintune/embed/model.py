"""Load any embedding model (alias, folder or hub id) as a sentence-transformers model."""

from __future__ import annotations

from sentence_transformers import SentenceTransformer

from fintune.embed.onnx_model import OnnxEmbedder, is_onnx_export
from fintune.models.device import pick_device
from fintune.models.loading import LOAD_LOCK
from fintune.models.resolve import resolve_model


def load_embedder(name: str, device: str | None = None) -> SentenceTransformer | OnnxEmbedder:
    """A PyTorch sentence-transformers model, or an `OnnxEmbedder` for a `fintune embed export` folder
    (same encode API)."""
    with LOAD_LOCK:
        folder = resolve_model(name)
        if is_onnx_export(folder):
            return OnnxEmbedder(folder)
        # Plain transformers folders get mean pooling from sentence-transformers itself.
        return SentenceTransformer(str(folder), device=device or pick_device())
