"""Export an embedding model to ONNX with pooling and normalisation inside the graph, optionally int8.

Plain exports (optimum, `torch.onnx.export` of the transformer) stop at token embeddings and leave
pooling to the caller; fintune's graph ends at the normalised sentence embedding, so any ONNX runtime
gets the same vectors as the PyTorch model. `torch.onnx.export` plus `onnxruntime.quantization` are
used directly because optimum-onnx pins an older transformers.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from fintune import __version__
from fintune.artifacts import atomic_dir
from fintune.config.saved import EXPORT_FILE as EXPORT_FILE  # re-exported: callers import it from here
from fintune.config.saved import ExportInfo, write_export
from fintune.embed.model import load_embedder
from fintune.embed.onnx_model import MODEL_FILE, OnnxEmbedder
from fintune.errors import UsageError
from fintune.models.resolve import model_key

log = logging.getLogger(__name__)

OPSET = 17
# The exported graph must reproduce the PyTorch vectors: fp32 to rounding, int8 to within quantisation noise
# (per-channel int8 weights keep MiniLM's cosines to the fp32 vectors above 0.98 on real passages).
MIN_COSINE = {None: 0.9999, "int8": 0.95}
PROBE_TEXTS = (
    "What was the company's total revenue in fiscal 2023?",
    "Net cash provided by operating activities increased primarily due to higher earnings and lower working "
    "capital requirements, partially offset by higher income tax payments during the year.",
    "EBITDA",
    "The Company's exposure to market risk for changes in interest rates relates primarily to its investment "
    "portfolio and long-term debt. " * 8,
)

Quantize = Literal["int8"] | None


@dataclass
class ExportResult:
    output: Path
    quantize: Quantize
    dimension: int
    min_cosine: float
    seconds: float
    size_mb: float


class _SentenceEmbeddingGraph(torch.nn.Module):
    """The whole sentence-transformers pipeline (transformer, pooling, dense, normalise) as one module."""

    def __init__(self, model: SentenceTransformer):
        super().__init__()
        self.model = model
        self.normalize = not any(type(m).__name__ == "Normalize" for m in model)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        vectors = self.model({"input_ids": input_ids, "attention_mask": attention_mask})["sentence_embedding"]
        return torch.nn.functional.normalize(vectors, dim=-1) if self.normalize else vectors


def export_onnx(model: str, output: str | Path, quantize: Quantize = None, overwrite: bool = False) -> ExportResult:
    """Write `output/` with model.onnx, the tokenizer and fintune_export.json, renamed into place only
    after the exported graph was checked against the PyTorch model on probe texts."""
    start = time.perf_counter()
    st = load_embedder(model, device="cpu")
    if not isinstance(st, SentenceTransformer):
        raise UsageError(f"{model} is already an ONNX export; export the PyTorch model it came from")
    if any(type(m).__name__ == "Router" for m in st):
        raise UsageError(f"{model} has separate query and document towers; ONNX export covers one-tower models")
    st.eval()
    with atomic_dir(output, overwrite=overwrite) as tmp:
        fp32_path = tmp / ("model_fp32.onnx" if quantize else MODEL_FILE)
        _export_graph(st, fp32_path)
        if quantize == "int8":
            _quantize_int8(fp32_path, tmp / MODEL_FILE)
            fp32_path.unlink()
        st.tokenizer.save_pretrained(str(tmp))
        info = ExportInfo(
            source_model=model_key(model),
            quantize=quantize,
            dimension=st.get_embedding_dimension(),
            max_seq_length=st.max_seq_length,
            prompts={k: v for k, v in st.prompts.items() if v},
            opset=OPSET,
            fintune_version=__version__,
        )
        write_export(tmp, info)
        min_cos = _check_against_torch(st, tmp, quantize)
        info.check = {"probe_texts": len(PROBE_TEXTS), "min_cosine_to_pytorch": round(min_cos, 6)}
        write_export(tmp, info)
        size_mb = (tmp / MODEL_FILE).stat().st_size / 2**20
    return ExportResult(Path(output), quantize, info.dimension, min_cos, time.perf_counter() - start, size_mb)


def _export_graph(st: SentenceTransformer, path: Path) -> None:
    for module in st:
        backbone = getattr(module, "auto_model", None)
        if backbone is not None and hasattr(backbone, "set_attn_implementation"):
            # SDPA traces into Where/IsNaN masking that took a quarter of the int8 graph's time; eager
            # attention traces to an additive mask (int8 MiniLM: 1.2-1.6x more tokens/s, same vectors).
            backbone.set_attn_implementation("eager")
    graph = _SentenceEmbeddingGraph(st).eval()
    sample = st.tokenizer(
        ["a short text", "a somewhat longer text to vary the shape"], padding=True, return_tensors="pt"
    )
    args = (sample["input_ids"], sample["attention_mask"])
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer warns about shape checks it turns into constants; they hold for every batch shape.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            args,
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter handles BERT-style models with dynamic axes as is
        )


def _quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))  # the quantiser logs one INFO line per tensor on the root logger
    try:
        # Weights only (MatMulConstBOnly), per output channel: the attention products stay fp32, which keeps
        # the vectors close to fp32 (per-tensor or activation x activation int8 lost ~4% cosine on MiniLM).
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": 1},  # 1 = FLOAT
        )
    finally:
        root.setLevel(level)


def _check_against_torch(st: SentenceTransformer, folder: Path, quantize: Quantize) -> float:
    texts = list(PROBE_TEXTS)
    reference = st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    exported = OnnxEmbedder(folder).encode(texts, normalize_embeddings=True)
    cosines = (reference * exported).sum(axis=1) / (
        np.linalg.norm(reference, axis=1) * np.linalg.norm(exported, axis=1)
    )
    worst = float(cosines.min())
    if worst < MIN_COSINE[quantize]:
        raise ValueError(
            f"the exported graph disagrees with the PyTorch model (min cosine {worst:.4f} < {MIN_COSINE[quantize]}); "
            "nothing was written"
        )
    log.info("exported graph matches PyTorch: min cosine %.6f on %d probe texts", worst, len(texts))
    return worst
