"""Freeze the embeddings and the first N transformer layers of a sentence-transformers model."""

from __future__ import annotations

from sentence_transformers import SentenceTransformer
from sentence_transformers.models import Transformer
from torch import nn

from fintune.errors import UsageError


def encoder_layers(auto_model: nn.Module) -> tuple[nn.Module, nn.ModuleList]:
    """(embeddings, layers) of a transformer, for BERT-, RoBERTa- and MPNet-like models."""
    embeddings = getattr(auto_model, "embeddings", None)
    encoder = getattr(auto_model, "encoder", None)
    layers = getattr(encoder, "layer", None) or getattr(encoder, "layers", None)
    if embeddings is None or layers is None:
        raise UsageError(f"cannot find embeddings and encoder layers in {type(auto_model).__name__}")
    return embeddings, layers


def freeze_layers(model: SentenceTransformer, num_fixed_layers: int) -> int:
    """Freeze embeddings and layers [0, N); return how many parameters stay trainable.

    Besides guarding the general-purpose lower layers, this saves the backward pass below layer N.
    """
    if num_fixed_layers > 0:
        # every transformer in the model: one, or two in asymmetric mode (query and document towers)
        for transformer in [m for m in model.modules() if isinstance(m, Transformer)]:
            embeddings, layers = encoder_layers(transformer.auto_model)
            if num_fixed_layers > len(layers):
                raise UsageError(f"num_fixed_layers {num_fixed_layers} exceeds the model's {len(layers)} layers")
            for module in (embeddings, *layers[:num_fixed_layers]):
                for param in module.parameters():
                    param.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
