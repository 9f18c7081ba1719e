"""Training mechanics on a tiny random model: every data shape, loss, asymmetric towers, the API."""

import json
import math
import re

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from fintune.config.schema import EmbedRunConfig
from fintune.embed.api import create_model_fine_tuner
from fintune.embed.towers import towers
from fintune.embed.train import train_embedder, work_dir
from tests.conftest import write_jsonl
from tests.helpers import KillAtStep, Killed


class Seen(TrainerCallback):
    """What the Trainer actually trained on: its dataset and batches, the optimizer steps, the final loss."""

    def __init__(self):
        self.steps, self.logs = [], {}

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.dataset, self.batches = train_dataloader.dataset, len(train_dataloader)

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs |= logs or {}


def _unit_vectors(model, texts, query):
    encode = model.encode_query if query else model.encode_document
    return encode(texts, convert_to_tensor=True, normalize_embeddings=True)


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
    seen = Seen()
    result = train_embedder(config, callbacks=[seen])
    assert result.before["queries"] == result.after["queries"] == 8
    assert result.eval_metrics and "eval_dev_cosine_ndcg@10" in result.eval_metrics
    # the Trainer got (anchor, positive, negative) triplets; each negative is the base model's most similar
    # passage among those that are not the positive and score no higher than it (margin 0)
    trained = seen.dataset
    assert trained.column_names == ["anchor", "positive", "negative_1"]
    (dropped,) = [int(m[1]) for n in result.notes if (m := re.search(r"(\d+) queries had too few", n))]
    # a passage that is several queries' negative takes batches of its own: at least ceil(n / 4) steps,
    # and every triplet trained once
    assert len(trained) == 16 - dropped >= 12 and result.steps == seen.batches >= math.ceil(len(trained) / 4)
    assert result.examples == len(trained)
    from sentence_transformers import SentenceTransformer

    base = SentenceTransformer(str(tiny_bert_dir), device="cpu")
    corpus = [json.loads(line)["text"] for line in (tiny_beir / "corpus.jsonl").read_text().splitlines()]
    sims = _unit_vectors(base, trained["anchor"], True) @ _unit_vectors(base, corpus, False).T
    for row, (positive, negative) in enumerate(zip(trained["positive"], trained["negative_1"], strict=True)):
        assert negative in corpus and negative != positive
        pos = sims[row, corpus.index(positive)]
        allowed = [sims[row, j] for j in range(len(corpus)) if corpus[j] != positive and sims[row, j] <= pos + 1e-5]
        assert sims[row, corpus.index(negative)] >= max(allowed) - 1e-4
    metrics = json.loads((out / "fintune_metrics.json").read_text())
    assert metrics["examples"] == result.examples


def _labelled_pairs_of_one_label(trained):
    # "doc i" has label i % 2: each document is paired with another document of its label
    return all(
        a != p and int(a.split()[1]) % 2 == int(p.split()[1]) % 2
        for a, p in zip(trained["anchor"], trained["positive"], strict=True)
    )


@pytest.mark.parametrize(
    ("rows", "loss", "columns", "check"),
    [
        (
            [{"text1": f"a{i}", "text2": f"b{i}", "score": i / 10} for i in range(8)],
            "cosent",
            ["text1", "text2", "score"],
            lambda t: t["score"] == pytest.approx([i / 10 for i in range(8)]),
        ),
        (
            [{"text1": f"a{i}", "text2": f"b{i}", "score": i % 2} for i in range(8)],
            "contrastive",
            ["text1", "text2", "score"],
            lambda t: t["score"] == [i % 2 for i in range(8)],
        ),
        (
            [{"anchor": f"a{i}", "positive": f"p{i}", "negative": f"n{i}"} for i in range(8)],
            "triplet",
            ["anchor", "positive", "negative"],
            lambda t: t["negative"] == [f"n{i}" for i in range(8)],
        ),
        (
            [{"query": f"q{i}", "positive": f"p{i}", "negatives": [f"n{i}"]} for i in range(8)],
            "margin-ranking",
            ["anchor", "positive", "negative_1"],
            lambda t: t["negative_1"] == [f"n{i}" for i in range(8)],
        ),
        pytest.param(
            [{"content": f"doc {i}", "label": i % 2} for i in range(8)],
            "mnrl",
            ["anchor", "positive"],
            _labelled_pairs_of_one_label,
        ),
        (
            [{"text": f"plain text {i}"} for i in range(8)],
            "cached-mnrl",
            ["anchor", "positive"],
            lambda t: t["anchor"] == t["positive"] == [f"plain text {i}" for i in range(8)],  # SimCSE
        ),
    ],
)
def test_each_data_shape_trains_with_a_fitting_loss(tiny_bert_dir, tmp_path, rows, loss, columns, check):
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "m"
    seen = Seen()
    result = train_embedder(
        EmbedRunConfig(model=str(tiny_bert_dir), data=str(data), output=str(out), loss=loss, batch_size=4),
        callbacks=[seen],
    )
    assert seen.dataset.column_names == columns and check(seen.dataset)
    assert json.loads((out / "fintune_run.json").read_text())["loss"] == loss
    assert 0 < seen.logs["train_loss"] < math.inf  # the loss had something to learn from
    # one epoch over the 8 examples in batches of 4 (more than 2 where a text repeats), each trained once
    assert result.steps >= 2 and seen.steps == list(range(1, result.steps + 1))
    assert result.examples == len(seen.dataset) == len(rows)
    assert json.loads((out / "fintune_metrics.json").read_text())["examples"] == len(rows)


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
    seen = Seen()
    result = train_embedder(config, evaluate=False, callbacks=[seen])
    assert any("domain adaptation on 8 texts, weight 0.3" in n for n in result.notes)
    # both objectives are trained: the 16 supervised pairs (no mined negatives by default) and the 8 domain
    # texts, in their own batches
    assert not any("hard negative" in n for n in result.notes)
    supervised = 16
    assert len(seen.dataset) == supervised + 8
    assert result.steps == seen.batches == math.ceil(supervised / 4) + 2
    assert result.examples == supervised + 8


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


@pytest.mark.parametrize("stop_at", [2, 8])  # in the first epoch; mid second epoch (6 steps an epoch)
def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(tiny_bert_dir, tmp_path, stop_at):
    data = write_jsonl(
        tmp_path / "t.jsonl", [{"anchor": f"q{i} about", "positive": f"p{i} {'x ' * i}"} for i in range(24)]
    )

    def config(name):
        return EmbedRunConfig(
            model=str(tiny_bert_dir),
            data=str(data),
            output=str(tmp_path / name),
            batch_size=4,
            epochs=2,
            learning_rate=1e-3,
        )

    train_embedder(config("straight"), evaluate=False)
    with pytest.raises(Killed):
        train_embedder(config("resumed"), evaluate=False, callbacks=[KillAtStep(stop_at)])
    assert (work_dir(tmp_path / "resumed") / f"checkpoint-{stop_at}").is_dir()
    seen = Seen()
    result = train_embedder(config("resumed"), evaluate=False, callbacks=[seen])
    assert result.resumed_from_step == stop_at and seen.steps == list(range(stop_at + 1, 13))
    assert result.steps == 12 and result.examples == 48  # counted across the kill: 2 epochs of 24
    # weights, optimizer, scheduler, batch order and dropout RNG restored: the same model as one run
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    base = load_file(tiny_bert_dir / "model.safetensors")
    assert straight.keys() == resumed.keys()
    assert any(not torch.equal(straight[k], base[k]) for k in base if k in straight)
    for name, value in straight.items():
        torch.testing.assert_close(resumed[name], value, rtol=1e-6, atol=1e-7, msg=name)


def test_repeated_texts_do_not_cost_examples_an_epoch():
    from datasets import Dataset

    from fintune.embed.sampler import LengthBucketBatchSampler

    # one passage close to many queries is the mined hard negative of each (hubness): here of 6 of 16
    # queries, which need 6 batches where n / batch_size gives 4
    n = 16
    triplets = Dataset.from_dict(
        {
            "anchor": [f"q{i}" for i in range(n)],
            "positive": [f"p{7 if i == 15 else i}" for i in range(n)],  # p7 also answers q15
            "negative_1": ["hub" if i < 6 else f"n{i}" for i in range(n)],
        }
    )
    sampler = LengthBucketBatchSampler(triplets, batch_size=4, drop_last=False, seed=0)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        # the Trainer reads len() and takes that many batches: every example must be in them
        trained = list(sampler)[: len(sampler)]
        assert len(sampler) >= 6
        assert sorted(i for b in trained for i in b) == list(range(n))
        for batch in trained:  # no text twice in a batch: the in-batch negatives stay valid
            texts = [t for i in batch for t in triplets[i].values()]
            assert len(texts) == len(set(texts))
