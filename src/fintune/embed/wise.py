"""WiSE-FT (Wortsman et al. 2022): weight-space ensembling of the base and the fine-tuned model.

theta = (1 - alpha) * theta_base + alpha * theta_tuned. Fine-tuning on one company set moves the model
away from general language; interpolating back keeps most of the in-domain gain and recovers what was
forgotten. `alpha: auto` scores a few values on the validation queries and keeps the best.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import torch

log = logging.getLogger(__name__)

AUTO_ALPHAS = (0.4, 0.6, 0.8, 1.0)


def base_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the weights before training (what alpha 0 returns to)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def interpolate(
    base: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """(1 - alpha) * base + alpha * tuned for every floating-point tensor; others (ids, counters) from tuned."""
    if set(base) != set(tuned):
        raise ValueError(f"base and tuned weights differ in their tensors: {sorted(set(base) ^ set(tuned))[:5]}")
    out = {}
    for key, t in tuned.items():
        b = base[key]
        if t.is_floating_point():
            out[key] = (b.to(t.dtype) * (1 - alpha) + t * alpha).to(t.dtype) if alpha != 1 else t.clone()
        else:
            out[key] = t.clone()
    return out


def apply_wise(
    model: torch.nn.Module,
    base: Mapping[str, torch.Tensor],
    alpha: float | str,
    score: Callable[[torch.nn.Module], float] | None = None,
    candidates: tuple[float, ...] = AUTO_ALPHAS,
) -> tuple[float, dict[float, float]]:
    """Load the interpolated weights into `model`; with alpha 'auto', the best of `candidates` by `score`
    (higher is better). Returns the alpha used and the score of each candidate tried."""
    tuned = {k: v.detach().clone() for k, v in model.state_dict().items()}
    scores: dict[float, float] = {}
    if alpha == "auto":
        if score is None:
            raise ValueError("wise_alpha 'auto' needs validation queries to choose on")
        for a in candidates:
            model.load_state_dict(interpolate(base, tuned, a))
            scores[a] = score(model)
            log.info("WiSE-FT alpha %.2f: validation %.4f", a, scores[a])
        alpha = max(candidates, key=lambda a: (scores[a], a))
    model.load_state_dict(interpolate(base, tuned, float(alpha)))
    return float(alpha), scores
