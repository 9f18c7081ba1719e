"""Shared by the unit tests: a tiny random-initialised BERT with MiniLM's real tokenizer."""

from __future__ import annotations

import shutil

import pytest
from transformers import BertConfig, BertModel

from fintune.models.resolve import resolve_model

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def build_tiny_bert(folder, hidden_size: int = 32, seed: int = 0):
    """A random 3-layer BERT of `hidden_size` dims that tokenizes exactly like MiniLM."""
    import torch

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden_size,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    source = resolve_model("minilm")
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_bert_48_dir(tmp_path_factory):
    """A second, different tiny model (48 dims): for model-change and dimension-mismatch tests."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert_48"), hidden_size=48, seed=1)
