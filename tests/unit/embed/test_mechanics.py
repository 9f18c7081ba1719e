import pytest
import torch
from datasets import Dataset

from fintune.embed.augment import augment_queries, misspell
from fintune.embed.freezing import freeze_layers
from fintune.embed.negatives import mine_hard_negatives, with_negatives
from fintune.embed.sampler import LengthBucketBatchSampler


def test_freezing_stops_gradients_below_layer_n(tiny_model):
    total = sum(p.numel() for p in tiny_model.parameters())
    trainable = freeze_layers(tiny_model, 2)
    bert = tiny_model[0].auto_model
    assert not any(p.requires_grad for p in bert.embeddings.parameters())
    assert not any(p.requires_grad for layer in bert.encoder.layer[:2] for p in layer.parameters())
    assert all(p.requires_grad for p in bert.encoder.layer[2].parameters())
    assert 0 < trainable < total


def test_freezing_more_layers_than_exist_is_refused(tiny_model):
    import pytest

    with pytest.raises(ValueError, match="exceeds the model's 3 layers"):
        freeze_layers(tiny_model, 4)


def test_hard_negatives_skip_the_positive_and_near_duplicates():
    corpus = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.99, 0.14], [0.8, 0.6], [0.0, 1.0]]), dim=1)
    query = corpus[:1].clone()
    # doc 1 is within the margin of the positive (likely relevant): skipped; doc 2 is the hardest true negative
    assert mine_hard_negatives(query, [0], corpus, num_negatives=2, margin=0.05) == [[2, 3]]
    assert mine_hard_negatives(query, [0], corpus, num_negatives=1, margin=0.0) == [[1]]


def test_with_negatives_drops_anchors_short_of_negatives():
    ds = Dataset.from_dict({"anchor": ["a", "b"], "positive": ["p", "q"]})
    out = with_negatives(ds, [[0], []], ["n0"])
    assert out.column_names == ["anchor", "positive", "negative_1"] and out["negative_1"] == ["n0"]


def test_length_buckets_pad_less_and_never_repeat_a_text():
    texts = [("q" * (i % 50 + 1), f"doc {i % 40}" + "x" * (i * 7 % 300)) for i in range(400)]
    ds = Dataset.from_dict({"anchor": [a for a, _ in texts], "positive": [p for _, p in texts]})
    sampler = LengthBucketBatchSampler(ds, batch_size=16, drop_last=False, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(400))
    for batch in batches:
        seen = [t for i in batch for t in texts[i]]
        assert len(seen) == len(set(seen))

    def padded(batch_list):
        return sum(len(b) * max(sampler.lengths[i] for i in b) for b in batch_list)

    random_batches = [list(range(i, min(i + 16, 400))) for i in range(0, 400, 16)]
    assert padded(batches) < 0.7 * padded(random_batches)
    sampler.set_epoch(1)
    assert list(sampler) != batches  # reshuffled each epoch


def test_augmentation_is_deterministic_and_changes_text():
    queries = [f"What was the total revenue reported in fiscal year {y}?" for y in range(2000, 2040)]
    first, second = augment_queries(queries, seed=3), augment_queries(queries, seed=3)
    assert first == second and 0 < len(first) < len(queries)
    assert all(noisy != queries[i] for i, noisy in first)
    import random

    assert misspell("revenue increased strongly", random.Random(0), rate=1.0) != "revenue increased strongly"


def _pairs_config(tiny_bert_dir, tmp_path, rows: int, **settings):
    from fintune.config.schema import EmbedRunConfig
    from tests.conftest import write_jsonl

    data = write_jsonl(tmp_path / "pairs.jsonl", [{"anchor": f"q{i}", "positive": f"p{i}"} for i in range(rows)])
    return EmbedRunConfig(model=str(tiny_bert_dir), data=str(data), output=str(tmp_path / "m"), **settings)


def test_examples_are_counted_as_trained_not_taken_from_the_config(tiny_bert_dir, tmp_path):
    from fintune.embed.train import prepare_training, run_training

    # 10 pairs in batches of 4, 4 and 2 for 2.5 epochs: 8 steps, the last epoch's first two batches (4+4 or 4+2)
    setup = prepare_training(_pairs_config(tiny_bert_dir, tmp_path, 10, batch_size=4, epochs=2.5), evaluate=False)
    result = run_training(setup, resume=False)
    assert result.steps == 8 and result.examples in (10 + 10 + 8, 10 + 10 + 6)  # not the config's 10 * 2.5
    assert result.pairs_per_s == pytest.approx(result.examples / result.train_seconds)


def test_throughput_after_a_resume_covers_the_whole_run(tiny_bert_dir, tmp_path, monkeypatch):
    import json

    from transformers import TrainerCallback

    import fintune.embed.train as train_module
    from fintune.artifacts import work_dir
    from fintune.embed.clock import CLOCK_FILE

    class Killed(Exception):
        pass

    class KillAtFirstCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise Killed

    original = train_module._training_args

    def save_every_2_steps(*args, **kwargs):
        out = original(*args, **kwargs)
        out.save_steps = 2
        return out

    monkeypatch.setattr(train_module, "_training_args", save_every_2_steps)
    config = _pairs_config(tiny_bert_dir, tmp_path, 24, batch_size=4)  # 6 steps
    with pytest.raises(Killed):
        train_module.train_embedder(config, evaluate=False, callbacks=[KillAtFirstCheckpoint()])
    saved = json.loads((work_dir(tmp_path / "m") / "checkpoint-2" / CLOCK_FILE).read_text())
    assert saved["examples"] == 8 and saved["seconds"] > 0

    result = train_module.train_embedder(config, evaluate=False)
    assert result.resumed_from_step == 2 and result.steps == 6
    assert result.examples == 24  # 8 before the kill + 16 after, not 16 and not a figure from the config
    assert result.train_seconds > saved["seconds"]
    metrics = json.loads((tmp_path / "m" / "fintune_metrics.json").read_text())
    assert metrics["examples"] == 24 and metrics["resumed_from_step"] == 2
    assert "resumed from step 2" in (tmp_path / "m" / "README.md").read_text()
