import pytest
import torch

from fintune.config.schema import EmbedRunConfig
from fintune.embed.losses import LOSS_SHAPES, MarginRankingLoss, WeightedLoss, build_loss, check_loss_fits


def features(model, texts):
    return model.tokenize(texts)


def test_every_named_loss_builds_and_gives_a_finite_differentiable_value(tiny_model, tiny_bert_dir):
    config = EmbedRunConfig(loss="cached-gist", guide_model=str(tiny_bert_dir))
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


def fixed_embeddings(monkeypatch, model, *columns):
    """The model returns these embeddings, one column per forward call, in order."""
    calls = iter(columns)
    monkeypatch.setattr(model, "forward", lambda f: {"sentence_embedding": next(calls)})


def test_margin_ranking_is_zero_only_when_every_positive_wins_by_the_margin(tiny_model, monkeypatch):
    # each query's positive has cosine 1 and its in-batch negative cosine 0: a gap of 1
    queries, positives = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    feats = [features(tiny_model, ["a", "b"]), features(tiny_model, ["c", "d"])]
    for margin, expected in ((1.0, 0.0), (0.5, 0.0), (1.5, 0.5)):
        fixed_embeddings(monkeypatch, tiny_model, queries, positives)
        loss = MarginRankingLoss(tiny_model, margin=margin, not_irrelevant_only=False)
        assert loss(feats).item() == pytest.approx(expected), margin


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
    feats = [features(tiny_model, ["q1", "q2"]), features(tiny_model, ["same doc", "same doc"])]
    kept = MarginRankingLoss(tiny_model, margin=2.0, not_irrelevant_only=False)
    assert kept(feats).item() == pytest.approx(2.0)  # as a negative, the copy ties with the positive: hinge 2
    loss = MarginRankingLoss(tiny_model, margin=2.0, not_irrelevant_only=True)
    assert loss(feats).item() == 0.0  # the only in-batch "negative" is the query's own passage


def test_loss_and_data_shape_mismatch_is_explained():
    with pytest.raises(ValueError, match="loss 'cosent' needs scored data, but the data are pairs"):
        check_loss_fits("cosent", "pairs", "train.jsonl")


def test_symmetric_mnrl_ranks_both_ways(tiny_model):
    plain = build_loss("mnrl", tiny_model, EmbedRunConfig())
    both = build_loss("cached-mnrl", tiny_model, EmbedRunConfig(symmetric=True))
    assert tuple(plain.directions) == ("query_to_doc",)
    assert tuple(both.directions) == ("query_to_doc", "doc_to_query")


def test_temperature_reaches_mnrl_and_gist(tiny_model, tiny_bert_dir):
    config = EmbedRunConfig(loss="cached-gist", temperature=0.02, guide_model=str(tiny_bert_dir))
    assert build_loss("mnrl", tiny_model, config).scale == pytest.approx(50.0)
    assert build_loss("cached-mnrl", tiny_model, config).scale == pytest.approx(50.0)
    assert build_loss("cached-gist", tiny_model, config).temperature == 0.02
    assert build_loss("mnrl", tiny_model, EmbedRunConfig()).scale == 20.0  # the library's default stays


def test_gist_guide_is_the_base_model_frozen_unless_named(tiny_model, tiny_bert_dir, monkeypatch):
    import fintune.embed.losses as module

    asked = []
    monkeypatch.setattr(module, "resolve_model", lambda name: asked.append(name) or tiny_bert_dir)
    guided = build_loss("cached-gist", tiny_model, EmbedRunConfig(model="my-base"))
    build_loss("cached-gist", tiny_model, EmbedRunConfig(model="my-base", loss="cached-gist", guide_model="other"))
    assert asked == ["my-base", "other"]
    assert guided.guide is not tiny_model
    assert not any(p.requires_grad for p in guided.guide.parameters())


def test_gist_does_not_push_away_a_negative_the_guide_ranks_above_the_positive(tiny_model, tiny_bert_dir):
    # q1's in-batch "negative" d2 is q1's own text: a false negative every model scores above the positive.
    tiny_model.eval()
    config = EmbedRunConfig(loss="cached-gist", temperature=0.05, guide_model=str(tiny_bert_dir), batch_size=2)
    feats = [features(tiny_model, ["alpha beta", "gamma"]), features(tiny_model, ["zzz qqq", "alpha beta"])]
    with torch.no_grad():
        mnrl = build_loss("cached-mnrl", tiny_model, config)(feats, None).item()
        gist = build_loss("cached-gist", tiny_model, config)(feats, None).item()
    assert gist < mnrl  # MNRL counts sim(q1, d2) = 1 against q1's positive; GIST masks it


def test_guide_and_temperature_on_a_loss_that_ignores_them_are_refused():
    with pytest.raises(ValueError, match="guide_model is only used by loss 'cached-gist', not 'cached-mnrl'"):
        EmbedRunConfig(guide_model="minilm")
    with pytest.raises(ValueError, match=r"temperature is used by .* not 'cosent'"):
        EmbedRunConfig(loss="cosent", temperature=0.05)


# Three queries, their positives and one hard negative each; unnormalised, so the loss must take cosines.
QUERIES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
POSITIVES = torch.tensor([[0.8, 0.6], [0.0, 2.0], [1.0, 1.0]])
NEGATIVES = torch.tensor([[0.0, 1.0], [3.0, 0.0], [-1.0, 0.2]])


def cosines(a, b):
    return (a / a.norm(dim=1, keepdim=True)) @ (b / b.norm(dim=1, keepdim=True)).T


def mnrl_by_hand(queries, positives, negatives=None, scale=20.0, symmetric=False):
    """Mean over queries of -log softmax: the query's positive against every positive and negative in the
    batch (and, symmetric, every query against the positive, in one joint softmax: sentence-transformers')."""
    docs = positives if negatives is None else torch.cat([positives, negatives])
    total = 0.0
    for i in range(len(queries)):
        logits = scale * cosines(queries[i : i + 1], docs)[0]
        if symmetric:
            logits = torch.cat([logits, scale * cosines(positives[i : i + 1], queries)[0]])
        total += torch.log(torch.exp(logits).sum()) - scale * cosines(queries[i : i + 1], positives[i : i + 1])[0, 0]
    return total / len(queries)


@pytest.mark.parametrize("with_negatives", [False, True])
def test_mnrl_is_cross_entropy_over_scaled_cosines(tiny_model, with_negatives):
    loss = build_loss("mnrl", tiny_model, EmbedRunConfig())
    columns = [QUERIES, POSITIVES, NEGATIVES] if with_negatives else [QUERIES, POSITIVES]
    expected = mnrl_by_hand(QUERIES, POSITIVES, NEGATIVES if with_negatives else None)
    assert 0.1 < expected < 10
    assert loss.compute_loss_from_embeddings(columns, None).item() == pytest.approx(expected.item(), rel=1e-5)


def test_symmetric_mnrl_also_ranks_the_queries_for_each_positive(tiny_model):
    both = build_loss("mnrl", tiny_model, EmbedRunConfig(symmetric=True))
    value = both.compute_loss_from_embeddings([QUERIES, POSITIVES], None).item()
    assert value == pytest.approx(mnrl_by_hand(QUERIES, POSITIVES, symmetric=True).item(), rel=1e-5)
    assert value != pytest.approx(mnrl_by_hand(QUERIES, POSITIVES).item(), rel=1e-3)


@pytest.mark.parametrize("name", ["mnrl", "margin-ranking"])
def test_loss_falls_as_a_positive_moves_closer_and_rises_as_it_moves_away(tiny_model, monkeypatch, name):
    loss = build_loss(name, tiny_model, EmbedRunConfig(margin=2.0, not_irrelevant_only=False))
    feats = [features(tiny_model, ["a", "b", "c"]), features(tiny_model, ["d", "e", "f"])]

    def value(first_positive):
        positives = POSITIVES.clone()
        positives[0] = torch.tensor(first_positive)
        fixed_embeddings(monkeypatch, tiny_model, QUERIES, positives)
        return loss(feats, None).item()

    # the first query is (1, 0); its positive is at 37 degrees from it
    now, closer, farther = value([0.8, 0.6]), value([0.95, 0.31]), value([0.3, 0.95])
    assert closer < now < farther


def test_cached_mnrl_computes_the_same_loss_as_mnrl(tiny_model):
    tiny_model.eval()  # no dropout: both see the same embeddings
    feats = [features(tiny_model, ["q one", "q two", "q three"]), features(tiny_model, ["d one", "d two", "d x"])]
    plain = build_loss("mnrl", tiny_model, EmbedRunConfig())(feats, None).item()
    cached = build_loss("cached-mnrl", tiny_model, EmbedRunConfig(batch_size=2))(feats, None).item()
    assert plain > 0 and cached == pytest.approx(plain, rel=1e-5)


def test_weighted_loss_scales_the_inner_loss():
    class Constant(torch.nn.Module):
        def forward(self, sentence_features, labels=None):
            return torch.tensor(2.5)

    assert WeightedLoss(Constant(), 0.3)([], None).item() == pytest.approx(0.75)


@pytest.mark.parametrize("name", ["mnrl", "cached-mnrl"])
def test_matryoshka_adds_the_loss_on_each_leading_slice(tiny_model, name):
    tiny_model.eval()  # no dropout: the hand computation sees the same embeddings
    texts = (["q one", "q two", "q three"], ["d one", "d two", "d x"])
    with torch.no_grad():
        queries, positives = (tiny_model(features(tiny_model, t))["sentence_embedding"] for t in texts)
    full = tiny_model.get_embedding_dimension()
    small = full // 4
    expected = mnrl_by_hand(queries, positives) + mnrl_by_hand(queries[:, :small], positives[:, :small])
    loss = build_loss(name, tiny_model, EmbedRunConfig(loss=name, batch_size=2, matryoshka_dims=[small, full]))
    value = loss([features(tiny_model, t) for t in texts], None).item()
    assert value == pytest.approx(expected.item(), rel=1e-4)
    assert value > mnrl_by_hand(queries, positives).item()  # not the full-width loss alone


def test_matryoshka_refuses_other_losses_and_sizes_it_cannot_cut(tiny_model):
    with pytest.raises(ValueError, match="matryoshka_dims needs loss mnrl, cached-mnrl, cached-gist, not 'triplet'"):
        EmbedRunConfig(loss="triplet", matryoshka_dims=[8])
    with pytest.raises(ValueError, match="distinct positive sizes"):
        EmbedRunConfig(matryoshka_dims=[8, 8])
    wide = tiny_model.get_embedding_dimension() + 1
    with pytest.raises(ValueError, match=f"matryoshka_dims \\[{wide}\\] exceed the model's"):
        build_loss("mnrl", tiny_model, EmbedRunConfig(matryoshka_dims=[wide]))
