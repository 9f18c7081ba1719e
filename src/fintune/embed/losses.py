"""Losses by name: sentence-transformers' own, plus Embedding Studio's margin ranking loss."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer import losses
from torch import Tensor, nn

from fintune.config.schema import EmbedLoss, EmbedRunConfig
from fintune.errors import UsageError
from fintune.models.resolve import resolve_model

# The similarity terms (cached) MNRL can rank: sentence-transformers' `directions` options.
MNRLDirection = Literal["query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"]
# The data shapes each loss trains on, keyed by the schema's EmbedLoss names (a test checks every one is here).
LOSS_SHAPES: dict[EmbedLoss, set[str]] = {
    "mnrl": {"pairs", "triplets"},
    "cached-mnrl": {"pairs", "triplets"},
    "cached-gist": {"pairs", "triplets"},
    "margin-ranking": {"pairs", "triplets"},
    "triplet": {"triplets"},
    "cosent": {"scored"},
    "cosine": {"scored"},
    "contrastive": {"scored"},
}


class MarginRankingLoss(nn.Module):
    """max(0, margin - (sim(q, pos) - sim(q, neg))) over explicit and in-batch negatives.

    sentence-transformers has no loss with Embedding Studio's options, so it is written here:
    - negative_downsampling: keep this fraction of the negatives of each query (random);
    - min/max_abs_difference_threshold: only pairs whose |sim(pos) - sim(neg)| lies in the range
      count (drop the already-solved and the hopeless or mislabelled);
    - not_irrelevant_only: in-batch "negatives" whose text equals the query's own positive are not
      negatives (duplicates of a relevant passage), so they are left out.
    """

    def __init__(
        self,
        model: SentenceTransformer,
        margin: float = 0.5,
        negative_downsampling: float = 1.0,
        min_abs_difference_threshold: float = 0.0,
        max_abs_difference_threshold: float = 1.0,
        not_irrelevant_only: bool = True,
    ):
        super().__init__()
        self.model = model
        self.margin = margin
        self.negative_downsampling = negative_downsampling
        self.min_diff = min_abs_difference_threshold
        self.max_diff = max_abs_difference_threshold
        self.not_irrelevant_only = not_irrelevant_only

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        sentence_features = list(sentence_features)
        embeddings = [self.model(f)["sentence_embedding"] for f in sentence_features]
        query = nn.functional.normalize(embeddings[0], dim=-1)
        docs = nn.functional.normalize(torch.cat(embeddings[1:]), dim=-1)  # positives first, then negatives
        n = query.shape[0]
        sims = query @ docs.T  # (n, n * columns)
        positive = sims[torch.arange(n), torch.arange(n)].unsqueeze(1)
        is_negative = torch.ones_like(sims, dtype=torch.bool)
        is_negative[torch.arange(n), torch.arange(n)] = False
        if self.not_irrelevant_only:
            same = self._same_as_positive(sentence_features, n)
            is_negative &= ~same
        if self.negative_downsampling < 1.0:
            is_negative &= torch.rand_like(sims) < self.negative_downsampling
        diff = (positive - sims).detach().abs()
        is_negative &= (diff >= self.min_diff) & (diff <= self.max_diff)
        hinge = torch.relu(self.margin - (positive - sims))
        count = is_negative.sum()
        return (hinge * is_negative).sum() / count.clamp(min=1)

    @staticmethod
    def _same_as_positive(features: Iterable[dict[str, Tensor]], n: int) -> Tensor:
        """(n, width) mask: document j has the same token ids as query i's positive."""
        docs = [f["input_ids"] for f in list(features)[1:]]
        length = max(d.shape[1] for d in docs)
        ids = torch.cat([nn.functional.pad(d, (0, length - d.shape[1])) for d in docs])
        return (ids[:n].unsqueeze(1) == ids.unsqueeze(0)).all(-1)


class WeightedLoss(nn.Module):
    """Scales another loss: the domain-adaptation objective against the supervised one."""

    def __init__(self, inner: nn.Module, weight: float):
        super().__init__()
        self.inner = inner
        self.weight = weight

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        return self.weight * self.inner(sentence_features, labels)


def build_loss(
    name: EmbedLoss, model: SentenceTransformer, config: EmbedRunConfig, distributed: bool = False
) -> nn.Module:
    """The training loss `name`, wrapped in MatryoshkaLoss when `matryoshka_dims` is set."""
    loss = _loss(name, model, config, distributed)
    if not config.matryoshka_dims:
        return loss
    width = model.get_embedding_dimension()
    too_wide = [d for d in config.matryoshka_dims if width is not None and d > width]
    if too_wide:
        raise UsageError(f"matryoshka_dims {too_wide} exceed the model's {width} dimensions")
    dims = sorted(config.matryoshka_dims, reverse=True)
    return losses.MatryoshkaLoss(model, loss, matryoshka_dims=dims)


def _loss(name: EmbedLoss, model: SentenceTransformer, config: EmbedRunConfig, distributed: bool) -> nn.Module:
    directions: tuple[MNRLDirection, ...] = ("query_to_doc", "doc_to_query") if config.symmetric else ("query_to_doc",)
    scale = 1.0 / config.temperature if config.temperature else 20.0  # 20: sentence-transformers' default
    if name == "mnrl":
        return losses.MultipleNegativesRankingLoss(
            model, scale=scale, gather_across_devices=distributed, directions=directions
        )
    if name == "cached-mnrl":
        return losses.CachedMultipleNegativesRankingLoss(
            model,
            mini_batch_size=min(32, config.batch_size),
            gather_across_devices=distributed,
            directions=directions,
            scale=scale,
        )
    if name == "cached-gist":
        return _cached_gist(model, config, distributed)
    if name == "cosent":
        return losses.CoSENTLoss(model)
    if name == "cosine":
        return losses.CosineSimilarityLoss(model)
    if name == "contrastive":
        return losses.ContrastiveLoss(model, margin=config.margin)
    if name == "triplet":
        return losses.TripletLoss(model, triplet_margin=config.margin)
    if name == "margin-ranking":
        return MarginRankingLoss(
            model,
            margin=config.margin,
            negative_downsampling=config.negative_downsampling,
            min_abs_difference_threshold=config.min_abs_difference_threshold,
            max_abs_difference_threshold=config.max_abs_difference_threshold,
            not_irrelevant_only=config.not_irrelevant_only,
        )
    raise UsageError(f"unknown loss '{name}'; known: {', '.join(LOSS_SHAPES)}")


def _cached_gist(model: SentenceTransformer, config: EmbedRunConfig, distributed: bool) -> nn.Module:
    """GISTEmbed at cached-MNRL's memory: a frozen guide drops the in-batch negatives it scores above the positive.

    The guide defaults to the base model: in 10-K questions, passages of the same filing often answer
    another query of the batch, and MNRL would push them away as negatives.
    """
    guide = SentenceTransformer(str(resolve_model(config.guide_model or config.model)), device=str(model.device))
    guide.max_seq_length = model.max_seq_length
    guide.requires_grad_(False)
    return losses.CachedGISTEmbedLoss(
        model,
        guide,
        temperature=config.temperature or 0.01,  # 0.01: the library's (and the GISTEmbed paper's) default
        mini_batch_size=min(32, config.batch_size),
        gather_across_devices=distributed,
    )


def check_loss_fits(name: EmbedLoss, shape: str, source: str) -> None:
    if shape not in LOSS_SHAPES[name]:
        fits = sorted(k for k, v in LOSS_SHAPES.items() if shape in v)
        raise UsageError(
            f"{source}: loss '{name}' needs {'/'.join(sorted(LOSS_SHAPES[name]))} data, "
            f"but the data are {shape}; losses for {shape}: {', '.join(fits)}"
        )
