"""Multi-task mixing: how many examples each task contributes to one epoch.

Strategies (an epoch keeps the total number of examples of the data):
- proportional: every example once (large tasks dominate);
- balanced: the same share for each task (small tasks repeat, large ones are subsampled);
- weighted: shares proportional to the run config's task weights;
- temperature: shares proportional to size ** (1 / T) (T=1 proportional, large T balanced).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import TypeVar

from fintune.errors import UsageError

T = TypeVar("T")
STRATEGIES = ("proportional", "balanced", "weighted", "temperature")


def task_shares(
    sizes: Mapping[str, int], strategy: str, weights: Mapping[str, float] | None = None, temperature: float = 2.0
) -> dict[str, float]:
    """Each task's fraction of an epoch (summing to 1)."""
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown mixing strategy '{strategy}'; known: {', '.join(STRATEGIES)}")
    if strategy == "proportional":
        raw = {t: float(n) for t, n in sizes.items()}
    elif strategy == "balanced":
        raw = {t: 1.0 for t in sizes}
    elif strategy == "weighted":
        given = weights or {}
        missing = [t for t in sizes if t not in given]
        if missing:
            raise UsageError(f"mixing 'weighted' needs a weight for every task; missing: {', '.join(missing)}")
        raw = {t: float(given[t]) for t in sizes}
    else:
        raw = {t: float(n) ** (1.0 / temperature) for t, n in sizes.items()}
    total = sum(raw.values())
    return {t: v / total for t, v in raw.items()}


def task_counts(shares: Mapping[str, float], total: int) -> dict[str, int]:
    """Integer counts summing to `total` (largest remainders), at least 1 per task."""
    exact = {t: s * total for t, s in shares.items()}
    counts = {t: max(1, int(v)) for t, v in exact.items()}
    for t in sorted(exact, key=lambda t: exact[t] - int(exact[t]), reverse=True):
        if sum(counts.values()) >= total:
            break
        counts[t] += 1
    return counts


def draw(items: list[T], count: int, rng: random.Random) -> list[T]:
    """`count` items: whole shuffled passes over `items`, then a part of one more (no repeat before all are seen)."""
    out: list[T] = []
    while len(out) < count:
        batch = items[:]
        rng.shuffle(batch)
        out.extend(batch[: count - len(out)])
    return out


def mix(
    per_task: Mapping[str, list[T]],
    strategy: str = "proportional",
    weights: Mapping[str, float] | None = None,
    temperature: float = 2.0,
    seed: int = 42,
    total: int | None = None,
) -> list[tuple[str, T]]:
    """One epoch of (task, item), shuffled across tasks: `total` items (default: as many as the tasks hold).

    The shares apply to `total` itself. Sharing out the whole data and then cutting the shuffled epoch to
    `total` (as max_train_examples did) repeated items of a task that was oversampled in the whole while
    it skipped others: weighted shares over 44k headline questions drew fpb seven times over, and the
    first 10,126 of that epoch held 2,186 distinct fpb examples of 3,266."""
    sizes = {t: len(items) for t, items in per_task.items() if items}
    empty = [t for t, items in per_task.items() if not items]
    if empty:
        raise UsageError(f"no examples for task(s): {', '.join(empty)}")
    rng = random.Random(seed)
    counts = task_counts(task_shares(sizes, strategy, weights, temperature), total or sum(sizes.values()))
    mixed = [(t, item) for t, n in counts.items() for item in draw(per_task[t], n, rng)]
    rng.shuffle(mixed)
    return mixed
