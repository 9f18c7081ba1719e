"""Embedding models: loading, retrieval evaluation (training arrives with the embedding issue)."""
