"""ONNX export: the graph carries pooling and normalisation, matches PyTorch, and drops in for evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fintune.data.beir import load_beir
from fintune.embed.evaluate import evaluate_retrieval
from fintune.embed.export import EXPORT_FILE, export_onnx
from fintune.embed.model import load_embedder
from fintune.embed.onnx_model import OnnxEmbedder, _token_budget_batches

TEXTS = ["Revenue rose 12% on services.", "EBITDA", "Interest rate risk relates to the debt portfolio. " * 12]


def test_fp32_export_matches_pytorch_and_is_normalised(tiny_bert_dir, tiny_model, tmp_path):
    result = export_onnx(str(tiny_bert_dir), tmp_path / "onnx")
    assert result.min_cosine > 0.9999
    onnx = load_embedder(str(tmp_path / "onnx"))
    assert isinstance(onnx, OnnxEmbedder)
    got = onnx.encode(TEXTS)
    want = tiny_model.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)  # normalised inside the graph
    # one text alone and in a padded batch: padding must not leak into the pooled vector
    np.testing.assert_allclose(onnx.encode(TEXTS[1]), got[1], atol=1e-5)
    meta = json.loads((tmp_path / "onnx" / EXPORT_FILE).read_text())
    assert meta["dimension"] == 32 and meta["quantize"] is None and meta["check"]["min_cosine_to_pytorch"] > 0.9999


def test_int8_export_is_smaller_and_close(tiny_bert_dir, tmp_path):
    fp32 = export_onnx(str(tiny_bert_dir), tmp_path / "fp32")
    int8 = export_onnx(str(tiny_bert_dir), tmp_path / "int8", quantize="int8")
    assert int8.size_mb < fp32.size_mb
    a, b = OnnxEmbedder(tmp_path / "fp32").encode(TEXTS), OnnxEmbedder(tmp_path / "int8").encode(TEXTS)
    assert ((a * b).sum(axis=1) > 0.95).all()


def test_export_drops_in_for_retrieval_evaluation(tiny_bert_dir, tiny_model, tiny_beir, tmp_path):
    export_onnx(str(tiny_bert_dir), tmp_path / "onnx")
    data = load_beir(tiny_beir, "dev")
    torch_metrics = evaluate_retrieval(tiny_model, data).metrics
    onnx_metrics = evaluate_retrieval(load_embedder(str(tmp_path / "onnx")), data).metrics
    assert onnx_metrics["ndcg@10"] == pytest.approx(torch_metrics["ndcg@10"], abs=1e-6)


def test_existing_output_is_refused_and_left_alone(tiny_bert_dir, tmp_path):
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        export_onnx(str(tiny_bert_dir), out)
    assert (out / "keep.txt").read_text() == "mine"


def test_a_failed_check_writes_nothing(tiny_bert_dir, tmp_path, monkeypatch):
    from fintune.embed import export

    monkeypatch.setitem(export.MIN_COSINE, None, 1.01)  # no graph can pass: the folder must not appear
    with pytest.raises(ValueError, match="disagrees with the PyTorch model"):
        export_onnx(str(tiny_bert_dir), tmp_path / "onnx")
    assert list(tmp_path.iterdir()) == []


def test_token_budget_batches_keep_padded_tokens_under_the_budget():
    from fintune.embed.onnx_model import TOKEN_BUDGET

    lengths = [3000, 10, 9, 2900, 2800, 8, 5]
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches = list(_token_budget_batches(order, lengths, max_items=4))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # nothing dropped or repeated
    assert [[lengths[i] for i in b] for b in batches] == [[3000, 2900], [2800, 10], [9, 8, 5]]
    assert all(lengths[b[0]] * len(b) <= TOKEN_BUDGET for b in batches)
