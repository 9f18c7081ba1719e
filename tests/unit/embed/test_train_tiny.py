"""Training mechanics on a tiny random model: every data shape, loss, asymmetric towers, the API."""

import json

import pytest
import torch

from fintune.config.schema import EmbedRunConfig
from fintune.embed.api import create_model_fine_tuner
from fintune.embed.towers import towers
from fintune.embed.train import train_embedder
from tests.conftest import write_jsonl


def test_beir_training_with_hard_negatives_and_eval(tiny_bert_dir, tiny_beir, tmp_path):
    out = tmp_path / "m"
    config = EmbedRunConfig(
        model=str(tiny_bert_dir),
        data=str(tiny_beir),
        output=str(out),
        batch_size=4,
        hard_negatives=1,
        hard_negative_margin=0.0,
        eval_steps=2,
        early_stopping_patience=5,
    )
    result = train_embedder(config)
    assert result.before["queries"] == result.after["queries"] == 8
    assert result.eval_metrics and "eval_dev_cosine_ndcg@10" in result.eval_metrics
    assert any("hard negative" in n for n in result.notes)
    metrics = json.loads((out / "fintune_metrics.json").read_text())
    assert metrics["examples"] == result.examples


@pytest.mark.parametrize(
    ("rows", "loss"),
    [
        ([{"text1": f"a{i}", "text2": f"b{i}", "score": i / 10} for i in range(8)], "cosent"),
        ([{"text1": f"a{i}", "text2": f"b{i}", "score": i % 2} for i in range(8)], "contrastive"),
        ([{"anchor": f"a{i}", "positive": f"p{i}", "negative": f"n{i}"} for i in range(8)], "triplet"),
        ([{"query": f"q{i}", "positive": f"p{i}", "negatives": [f"n{i}"]} for i in range(8)], "margin-ranking"),
        ([{"content": f"doc {i}", "label": i % 2} for i in range(8)], "mnrl"),
        ([{"text": f"plain text {i}"} for i in range(8)], "cached-mnrl"),
    ],
)
def test_each_data_shape_trains_with_a_fitting_loss(tiny_bert_dir, tmp_path, rows, loss):
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "m"
    result = train_embedder(
        EmbedRunConfig(model=str(tiny_bert_dir), data=str(data), output=str(out), loss=loss, batch_size=4)
    )
    assert ((out / "model.safetensors").is_file() and result.examples == len(rows)) or result.examples > 0


def test_training_changes_the_weights_but_not_frozen_ones(tiny_bert_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    data = write_jsonl(tmp_path / "t.jsonl", [{"anchor": f"a{i}", "positive": f"p{i}"} for i in range(8)])
    out = tmp_path / "m"
    train_embedder(
        EmbedRunConfig(
            model=str(tiny_bert_dir),
            data=str(data),
            output=str(out),
            batch_size=4,
            learning_rate=1e-3,
            num_fixed_layers=2,
        )
    )
    before = SentenceTransformer(str(tiny_bert_dir), device="cpu")[0].auto_model
    after = SentenceTransformer(str(out), device="cpu")[0].auto_model
    assert torch.equal(before.embeddings.word_embeddings.weight, after.embeddings.word_embeddings.weight)
    assert torch.equal(before.encoder.layer[1].output.dense.weight, after.encoder.layer[1].output.dense.weight)
    assert not torch.equal(before.encoder.layer[2].output.dense.weight, after.encoder.layer[2].output.dense.weight)


def test_asymmetric_towers_train_with_their_own_rates(tiny_bert_dir, tiny_beir, tmp_path):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "m"
    config = EmbedRunConfig(
        model=str(tiny_bert_dir),
        data=str(tiny_beir),
        output=str(out),
        batch_size=4,
        asymmetric=True,
        query_learning_rate=1e-3,
        document_learning_rate=1e-9,
        scheduler="steplr",
        step_size=2,
    )
    train_embedder(config, evaluate=False)
    base = SentenceTransformer(str(tiny_bert_dir), device="cpu")[0].auto_model.encoder.layer[2].output.dense.weight
    loaded = SentenceTransformer(str(out), device="cpu")
    parts = towers(loaded)
    query_w = parts["query"][0].auto_model.encoder.layer[2].output.dense.weight
    doc_w = parts["document"][0].auto_model.encoder.layer[2].output.dense.weight
    assert (query_w - base).abs().max() > 100 * (doc_w - base).abs().max()
    q = loaded.encode_query(["What revenue did Company3 report?"])
    d = loaded.encode_document(["What revenue did Company3 report?"])
    assert q.shape == d.shape and not torch.allclose(torch.tensor(q), torch.tensor(d))


def test_domain_adaptation_mixes_a_weighted_objective(tiny_bert_dir, tiny_beir, tmp_path):
    domain = write_jsonl(tmp_path / "esg.jsonl", [{"text": f"Scope {i} emissions fell."} for i in range(8)])
    config = EmbedRunConfig(
        model=str(tiny_bert_dir),
        data=str(tiny_beir),
        output=str(tmp_path / "m"),
        batch_size=4,
        domain_data=str(domain),
        domain_adaptation_weight=0.3,
    )
    result = train_embedder(config, evaluate=False)
    assert any("domain adaptation on 8 texts, weight 0.3" in n for n in result.notes)


def test_python_api_fine_tune_and_triplets(tiny_bert_dir, tmp_path):
    tuner = create_model_fine_tuner(models_dir=tmp_path / "models", use_gpu=False)
    pairs = [
        ("What is EBITDA?", "Earnings before interest, taxes, depreciation and amortization.", 0.9),
        ("What is EBITDA?", "The cat sat on the mat.", 0.0),
    ] * 4
    path = tuner.fine_tune(
        str(tiny_bert_dir),
        train_pairs=pairs,
        epochs=1,
        batch_size=4,
        domain_texts=["Bitcoin halving cut miner rewards."] * 4,
        domain_adaptation_weight=0.2,
    )
    assert (tmp_path / "models").is_dir() and json.loads(
        (tmp_path / "models" / path.split("/")[-1] / "fintune_run.json").read_text()
    )["loss"] == "cosent"
    triplets = [("q1", "relevant", "irrelevant"), ("q2", "good", "bad")] * 4
    out = tuner.fine_tune_triplet(str(tiny_bert_dir), triplets, margin=0.3, output_path=tmp_path / "t")
    run = json.loads((tmp_path / "t" / "fintune_run.json").read_text())
    assert out == str(tmp_path / "t") and run["loss"] == "triplet" and run["margin"] == 0.3
    with pytest.raises(ValueError, match="exactly one"):
        tuner.fine_tune(str(tiny_bert_dir))


def test_hard_negatives_on_scored_pairs_are_refused_before_any_work(tiny_bert_dir, tmp_path):
    data = write_jsonl(tmp_path / "s.jsonl", [{"text1": "a", "text2": "b", "score": 0.5}] * 4)
    config = EmbedRunConfig(
        model=str(tiny_bert_dir), data=str(data), output=str(tmp_path / "m"), loss="cosent", hard_negatives=1
    )
    with pytest.raises(ValueError, match="mined for \\(query, passage\\) pairs, not scored data"):
        train_embedder(config)
    assert not (tmp_path / "m").exists()
