"""Asymmetric mode: separate query and document towers (sentence-transformers' Router), each with
its own learning rate and weight decay."""

from __future__ import annotations

import copy
from typing import Any

from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.models import Router

from fintune.config.schema import EmbedRunConfig


def make_asymmetric(model: SentenceTransformer) -> SentenceTransformer:
    """Both towers start as copies of the base model; queries go through one, documents the other."""
    modules = list(model.children())
    router = Router.for_query_document(query_modules=[copy.deepcopy(m) for m in modules], document_modules=modules)
    return SentenceTransformer(modules=[router], device=str(model.device))


def towers(model: SentenceTransformer) -> dict[str, Any] | None:
    first = model[0]
    return dict(first.sub_modules) if isinstance(first, Router) else None


def router_mapping(dataset: Dataset) -> dict[str, str]:
    """The first column is the query; every other text column is a document."""
    columns = [c for c in dataset.column_names if c not in ("score", "label")]
    return {c: ("query" if i == 0 else "document") for i, c in enumerate(columns)}


def tower_param_groups(model: SentenceTransformer, config: EmbedRunConfig) -> list[dict[str, Any]]:
    parts = towers(model)
    if parts is None:
        raise ValueError("the model has no query and document towers (asymmetric: false)")
    settings = {
        "query": (config.query_learning_rate, config.query_weight_decay),
        "document": (config.document_learning_rate, config.document_weight_decay),
    }
    groups = []
    for name, module in parts.items():
        lr, decay = settings[name]
        params = [p for p in module.parameters() if p.requires_grad]
        groups.append(
            {
                "params": params,
                "lr": lr or config.learning_rate,
                "weight_decay": config.weight_decay if decay is None else decay,
            }
        )
    return groups
