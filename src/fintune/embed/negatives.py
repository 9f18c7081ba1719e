"""Hard negatives mined with the base model, skipping likely false negatives.

sentence-transformers' `mine_hard_negatives` encodes the corpus itself; here the base model's
corpus embeddings are already computed for the before-training metrics, so mining reuses them
(one corpus pass instead of two, about a minute on this CPU for the 10-K corpus).
"""

from __future__ import annotations

import torch
from datasets import Dataset


def mine_hard_negatives(
    queries: torch.Tensor,  # (n, d) normalised embeddings of the anchors
    positive_ids: list[int],  # index of each anchor's positive in the corpus
    corpus: torch.Tensor,  # (m, d) normalised embeddings
    num_negatives: int,
    margin: float,
    skip_top: int = 0,
) -> list[list[int]]:
    """Per anchor, the `num_negatives` most similar passages that are not its positive and score
    at least `margin` below the positive (closer than that is likely an unlabelled relevant passage).
    `skip_top` ignores the very top candidates as well, a further guard against false negatives."""
    sims = queries @ corpus.T
    rows = torch.arange(len(positive_ids))
    positive = torch.tensor(positive_ids)
    pos_sims = sims[rows, positive].unsqueeze(1)
    sims[rows, positive] = -torch.inf
    sims[sims > pos_sims - margin] = -torch.inf
    k = min(corpus.shape[0], num_negatives + skip_top)
    top_vals, top_ids = torch.topk(sims, k=k, dim=1)
    out = []
    for vals, ids in zip(top_vals.tolist(), top_ids.tolist(), strict=True):
        picked = [i for v, i in zip(vals, ids, strict=True) if v != -torch.inf][skip_top:]
        out.append(picked[:num_negatives])
    return out


def with_negatives(dataset: Dataset, negatives: list[list[int]], corpus_texts: list[str]) -> Dataset:
    """(anchor, positive, negative_1..k); anchors with fewer than k negatives are dropped (and counted)."""
    k = max((len(n) for n in negatives), default=0)
    keep = [i for i, n in enumerate(negatives) if len(n) == k]
    columns = {"anchor": [dataset["anchor"][i] for i in keep], "positive": [dataset["positive"][i] for i in keep]}
    for j in range(k):
        columns[f"negative_{j + 1}"] = [corpus_texts[negatives[i][j]] for i in keep]
    return Dataset.from_dict(columns)
