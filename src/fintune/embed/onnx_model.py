"""Run an ONNX export (`fintune embed export`) with the encode API of a SentenceTransformer.

Evaluation, the LangChain embeddings and the vector-store commands call `encode_query`,
`encode_document` and `encode`; this class answers them with onnxruntime, so an export drops in
wherever a PyTorch model is accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fintune.config.saved import EXPORT_FILE, ExportInfo, read_export
from fintune.errors import InputNotFoundError

# Defined by the reader so `export.py` (the writer) imports it from here and imports run one way.
MODEL_FILE = "model.onnx"

# Padded tokens per batch: long passages go in small batches, short ones in big ones, so neither the
# attention matrices nor the padding grow with the longest text of a fixed-size batch.
TOKEN_BUDGET = 8192
DOCUMENT_PROMPTS = ("document", "passage", "corpus")


def is_onnx_export(folder: str | Path) -> bool:
    return read_export(folder) is not None


class OnnxEmbedder:
    """Sentence embeddings from a fintune ONNX export (pooling and normalisation are in the graph)."""

    def __init__(self, folder: str | Path, threads: int | None = None):
        import onnxruntime as ort
        import torch
        from transformers import AutoTokenizer

        self.folder = Path(folder)
        info = read_export(self.folder)
        if info is None:
            raise InputNotFoundError(f"{self.folder}: not a fintune ONNX export (no {EXPORT_FILE})")
        self.info: ExportInfo = info
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        self.max_seq_length: int = info.max_seq_length
        self.prompts: dict[str, str] = dict(info.prompts)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])

    def __repr__(self) -> str:
        return f"OnnxEmbedder({self.folder}, quantize={self.info.quantize})"

    def get_embedding_dimension(self) -> int:
        return self.info.dimension

    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int = 64,
        normalize_embeddings: bool = True,
        convert_to_tensor: bool = False,
        show_progress_bar: bool = False,
        prompt: str | None = None,
        **_: Any,
    ) -> Any:
        single = isinstance(sentences, str)
        texts = [sentences] if isinstance(sentences, str) else list(sentences)
        if prompt:
            texts = [prompt + t for t in texts]
        vectors = self._encode(texts, batch_size, show_progress_bar)  # unit length: the graph normalises
        out: Any = vectors[0] if single else vectors
        if convert_to_tensor:
            import torch

            return torch.from_numpy(out)
        return out

    def encode_query(self, sentences: str | Sequence[str], **kwargs: Any) -> Any:
        kwargs.setdefault("prompt", self.prompts.get("query"))
        return self.encode(sentences, **kwargs)

    def encode_document(self, sentences: str | Sequence[str], **kwargs: Any) -> Any:
        prompt = next((self.prompts[p] for p in DOCUMENT_PROMPTS if p in self.prompts), None)
        kwargs.setdefault("prompt", prompt)
        return self.encode(sentences, **kwargs)

    def _encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        dim = self.get_embedding_dimension()
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        ids = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.max_seq_length,
            return_token_type_ids=False,
            return_attention_mask=False,
        )["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out = np.empty((len(texts), dim), dtype=np.float32)
        batches = list(_token_budget_batches(order, [len(x) for x in ids], batch_size))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="encode (onnx)", unit="text")
        pad = self.tokenizer.pad_token_id or 0
        for batch in batches:
            width = len(ids[batch[0]])  # sorted longest first
            input_ids = np.full((len(batch), width), pad, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            out[batch] = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return out


def _token_budget_batches(order: list[int], lengths: list[int], max_items: int) -> Any:
    batch: list[int] = []
    for i in order:
        width = lengths[batch[0]] if batch else lengths[i]
        if batch and (len(batch) >= max_items or width * (len(batch) + 1) > TOKEN_BUDGET):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch
