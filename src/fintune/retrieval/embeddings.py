"""LangChain embeddings for any fintune model: PyTorch or ONNX export, batched, unit-length vectors."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings

# Optional domain prefixes (`add_financial_prefix=True`): some encoders are trained with instruction-style
# prefixes; MiniLM is not, and on the 10-K dev set the prefixes cost NDCG, so they are off by default.
QUERY_PREFIX = "Financial question: "
DOCUMENT_PREFIX = "Financial filing passage: "


def with_prefix(texts: list[str], prefix: str) -> list[str]:
    """`texts` as the encoder reads them (the serving API prefixes before its cross-request batcher)."""
    return [prefix + t for t in texts] if prefix else texts


class FinancialEmbeddings(Embeddings):
    """`Embeddings` over `fintune.embed.model.load_embedder`: an alias, a tuned folder, a hub id or an
    ONNX export. Usable by any LangChain vector store; the model loads on first use."""

    def __init__(
        self,
        model_name: str = "minilm",
        device: str | None = None,
        add_financial_prefix: bool = False,
        batch_size: int = 64,
        show_progress: bool = False,
    ):
        self.model_name = model_name
        self.device = device
        self.add_financial_prefix = add_financial_prefix
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._model: Any = None

    def __repr__(self) -> str:
        return f"FinancialEmbeddings(model_name={self.model_name!r}, add_financial_prefix={self.add_financial_prefix})"

    @property
    def model(self) -> Any:
        if self._model is None:
            from fintune.embed.model import load_embedder

            self._model = load_embedder(self.model_name, device=self.device)
        return self._model

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode(self.model.encode_document, DOCUMENT_PREFIX, texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """Many queries in one batched call (LangChain's interface has only the single-query form)."""
        return self._encode(self.model.encode_query, QUERY_PREFIX, texts)

    def _encode(self, encode: Any, prefix: str, texts: list[str]) -> list[list[float]]:
        texts = with_prefix(texts, prefix if self.add_financial_prefix else "")
        vectors = encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=self.show_progress
        )
        return vectors.tolist()
