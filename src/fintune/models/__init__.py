"""Model aliases, resolution to local folders, GGUF conversion and device/dtype choice."""

from fintune.models.registry import ALIASES, ModelAlias
from fintune.models.resolve import ModelNotFoundError, resolve_model

__all__ = ["ALIASES", "ModelAlias", "ModelNotFoundError", "resolve_model"]
