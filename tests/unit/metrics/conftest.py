"""Shared fixtures: the tiny BERT encoder for BERTScore tests."""

from tests.unit.embed.conftest import tiny_bert_dir  # noqa: F401
