"""Embedding models for financial retrieval: training, evaluation, comparison, tuning.

`create_model_fine_tuner` is imported lazily: it pulls in torch and sentence-transformers.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("create_model_fine_tuner", "ModelFineTuner"):
        from fintune.embed import api

        return getattr(api, name)
    raise AttributeError(name)


__all__ = ["ModelFineTuner", "create_model_fine_tuner"]
