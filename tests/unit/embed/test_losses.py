import pytest
import torch

from fintune.config.schema import EmbedRunConfig
from fintune.embed.losses import LOSS_SHAPES, MarginRankingLoss, build_loss, check_loss_fits


def features(model, texts):
    return model.tokenize(texts)


def test_every_named_loss_builds_and_gives_a_finite_differentiable_value(tiny_model):
    config = EmbedRunConfig()
    batches = {
        "pairs": (["q one", "q two"], ["doc one", "doc two"]),
        "triplets": (["q one", "q two"], ["doc one", "doc two"], ["bad one", "bad two"]),
        "scored": (["a b", "c d"], ["a b c", "x y"]),
    }
    for name, shapes in LOSS_SHAPES.items():
        shape = sorted(shapes)[-1]
        loss = build_loss(name, tiny_model, config)
        feats = [features(tiny_model, list(col)) for col in batches[shape]]
        labels = torch.tensor([0.9, 0.1]) if shape == "scored" else None
        value = loss(feats, labels)
        assert torch.isfinite(value), name
        value.backward()
        assert any(p.grad is not None for p in tiny_model.parameters()), name
        tiny_model.zero_grad()


def test_margin_ranking_is_zero_when_every_positive_wins_by_the_margin(tiny_model):
    loss = MarginRankingLoss(tiny_model, margin=0.0)
    feats = [features(tiny_model, ["alpha"]), features(tiny_model, ["alpha"])]
    assert loss(feats).item() == 0.0  # no negatives in a batch of one


def test_margin_ranking_hinge_by_hand(tiny_model, monkeypatch):
    # Fix the embeddings: q=(1,0), pos=(0.6,0.8), in-batch negative for q = the other positive.
    vectors = {
        0: torch.tensor([[1.0, 0.0], [0.0, 1.0]]),  # queries
        1: torch.tensor([[0.6, 0.8], [1.0, 0.0]]),  # positives
    }
    calls = iter(range(2))
    monkeypatch.setattr(tiny_model, "forward", lambda f: {"sentence_embedding": vectors[next(calls)]})
    loss = MarginRankingLoss(tiny_model, margin=0.5, not_irrelevant_only=False)
    feats = [features(tiny_model, ["a", "b"]), features(tiny_model, ["c", "d"])]
    # q0: pos 0.6, neg 1.0 -> relu(0.5 - (0.6 - 1.0)) = 0.9 ; q1: pos 0.0, neg 0.8 -> 1.3
    assert loss(feats).item() == pytest.approx((0.9 + 1.3) / 2)


def test_margin_ranking_difference_thresholds_drop_pairs(tiny_model, monkeypatch):
    vectors = {0: torch.tensor([[1.0, 0.0], [0.0, 1.0]]), 1: torch.tensor([[0.6, 0.8], [1.0, 0.0]])}
    calls = iter(range(2))
    monkeypatch.setattr(tiny_model, "forward", lambda f: {"sentence_embedding": vectors[next(calls)]})
    # |pos - neg| is 0.4 for q0 and 0.8 for q1: keep only differences up to 0.5
    loss = MarginRankingLoss(tiny_model, margin=0.5, not_irrelevant_only=False, max_abs_difference_threshold=0.5)
    feats = [features(tiny_model, ["a", "b"]), features(tiny_model, ["c", "d"])]
    assert loss(feats).item() == pytest.approx(0.9)


def test_duplicate_positive_is_not_an_in_batch_negative(tiny_model):
    loss = MarginRankingLoss(tiny_model, margin=2.0, not_irrelevant_only=True)
    feats = [features(tiny_model, ["q1", "q2"]), features(tiny_model, ["same doc", "same doc"])]
    assert loss(feats).item() == 0.0  # the only in-batch "negative" is the query's own passage


def test_loss_and_data_shape_mismatch_is_explained():
    with pytest.raises(ValueError, match="loss 'cosent' needs scored data, but the data are pairs"):
        check_loss_fits("cosent", "pairs", "train.jsonl")


def test_symmetric_mnrl_ranks_both_ways(tiny_model):
    plain = build_loss("mnrl", tiny_model, EmbedRunConfig())
    both = build_loss("cached-mnrl", tiny_model, EmbedRunConfig(symmetric=True))
    assert tuple(plain.directions) == ("query_to_doc",)
    assert tuple(both.directions) == ("query_to_doc", "doc_to_query")
