"""Length-bucketed batches without duplicate texts: less padding, valid in-batch negatives.

sentence-transformers' samplers either drop duplicates or group by label, never by length; a
random batch of 10-K passages pads to its longest (about 2.5x the mean here), which is most of the
compute on a CPU. This sampler shuffles, takes pools of `pool_batches` batches, sorts each pool by
length, cuts it into batches and shuffles the batches, so batches are both short-padded and random.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import torch
from datasets import Dataset
from sentence_transformers.base.sampler import DefaultBatchSampler


class LengthBucketBatchSampler(DefaultBatchSampler):
    pool_batches = 16

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        drop_last: bool,
        valid_label_columns=None,
        generator: torch.Generator | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        text_columns = [c for c in dataset.column_names if c not in (valid_label_columns or [])]
        columns = [dataset[c] for c in text_columns]
        self.texts = [tuple(col[i] for col in columns) for i in range(len(dataset))]
        self.lengths = [max(len(t) for t in row) for row in self.texts]

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.texts), generator=generator).tolist()
        if self.drop_last:
            order = order[: len(self) * self.batch_size]  # the random remainder, not the longest texts
        pool_size = self.batch_size * self.pool_batches
        batches: list[list[int]] = []
        for start in range(0, len(order), pool_size):
            pool = sorted(order[start : start + pool_size], key=self.lengths.__getitem__)
            batches.extend(self._batches_without_duplicates(pool))
        for i in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[i]

    def _batches_without_duplicates(self, pool: list[int]) -> list[list[int]]:
        """First fit in length order into exactly ceil(pool / batch_size) batches.

        An example whose text is already in the batch being filled goes to the next batch with room and
        no such text (or, when none has, to the one where it repeats fewest). The count is fixed because
        the Trainer takes an epoch's steps from `len()` before it iterates: extra batches are never trained."""
        count = -(-len(pool) // self.batch_size)
        batches: list[list[int]] = [[] for _ in range(count)]
        seen: list[Counter[str]] = [Counter() for _ in range(count)]
        repeats = Counter(t for index in pool for t in set(self.texts[index]))
        # Most-repeated texts first, while every batch still has room to keep them apart; a stable sort keeps
        # length order among equals (almost all examples: nothing of theirs repeats).
        for index in sorted(pool, key=lambda i: -max(repeats[t] for t in self.texts[i])):
            texts = set(self.texts[index])
            roomy = [k for k in range(count) if len(batches[k]) < self.batch_size]
            # the first roomy batch where it repeats nothing, else the one where it repeats least often
            best = min(roomy, key=lambda k: sum(seen[k][t] for t in texts))
            batches[best].append(index)
            seen[best].update(texts)
        return batches

    def __len__(self) -> int:
        n = len(self.texts)
        return n // self.batch_size if self.drop_last else (n + self.batch_size - 1) // self.batch_size
