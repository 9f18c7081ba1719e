"""Length-bucketed batches without duplicate texts: less padding, valid in-batch negatives.

sentence-transformers' samplers either drop duplicates or group by label, never by length; a
random batch of 10-K passages pads to its longest (about 2.5x the mean here), which is most of the
compute on a CPU. This sampler shuffles, takes pools of `pool_batches` batches, sorts each pool by
length, cuts it into batches and shuffles the batches, so batches are both short-padded and random.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

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
        self._planned: tuple[int, list[list[int]]] | None = None

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._plan(self.epoch)

    def _plan(self, epoch: int) -> list[list[int]]:
        """This epoch's batches, made once: `len()` must count exactly what iteration yields.

        Keeping repeated texts apart can take more batches than n / batch_size, and the Trainer runs only
        `len()` batches an epoch: a length that counted full batches silently skipped the extra ones."""
        if self._planned is not None and self._planned[0] == epoch:
            return self._planned[1]
        generator = torch.Generator()
        generator.manual_seed(self.seed + epoch)
        order = torch.randperm(len(self.texts), generator=generator).tolist()
        pool_size = self.batch_size * self.pool_batches
        batches: list[list[int]] = []
        for start in range(0, len(order), pool_size):
            pool = sorted(order[start : start + pool_size], key=self.lengths.__getitem__)
            batches.extend(self._batches_without_duplicates(pool))
        plan = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        self._planned = (epoch, plan)
        return plan

    def _batches_without_duplicates(self, pool: list[int]) -> list[list[int]]:
        """Greedy fill in length order; an example whose text is already in the batch waits for the next."""
        batches: list[list[int]] = []
        waiting = list(pool)
        while waiting:
            batch: list[int] = []
            seen: set[str] = set()
            rest: list[int] = []
            for index in waiting:
                texts = set(self.texts[index])
                if len(batch) < self.batch_size and not (texts & seen):
                    batch.append(index)
                    seen |= texts
                else:
                    rest.append(index)
            if len(batch) < self.batch_size and self.drop_last:
                break
            batches.append(batch)
            waiting = rest
        return batches

    def __len__(self) -> int:
        # The Trainer reads it once, before the first epoch: a later epoch that needs a batch more than the
        # first (another shuffle, other repeats side by side) leaves its last batch to the next epoch's order.
        return len(self._plan(self.epoch))


class GroupedBatchSampler(LengthBucketBatchSampler):
    """Batches that draw from as few groups (companies) as the batch size allows.

    In a random batch most negatives come from other companies, and a generic question ("When does the
    Company's fiscal year end?") then learns to push away another company's passage on the same topic:
    a false negative. Here each epoch shuffles the groups' order and each group's rows, cuts the
    concatenation into batches (repeated texts still kept apart), sorts each batch by length (cached
    losses' mini-batches pad less; the loss ignores order) and shuffles the batches. A row whose anchor
    has no group forms its own. Not in sentence-transformers: its GROUP_BY_LABEL needs a label column,
    which MNRL would read as an input."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        drop_last: bool,
        valid_label_columns=None,
        generator: torch.Generator | None = None,
        seed: int = 0,
        anchor_groups: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(dataset, batch_size, drop_last, valid_label_columns, generator, seed)
        anchors = dataset[dataset.column_names[0]]
        groups = anchor_groups or {}
        self.groups = [groups.get(a, f"\0row{i}") for i, a in enumerate(anchors)]

    def _plan(self, epoch: int) -> list[list[int]]:
        if self._planned is not None and self._planned[0] == epoch:
            return self._planned[1]
        generator = torch.Generator()
        generator.manual_seed(self.seed + epoch)
        members: dict[str, list[int]] = {}
        for row in torch.randperm(len(self.groups), generator=generator).tolist():
            members.setdefault(self.groups[row], []).append(row)
        names = list(members)
        order = [row for g in torch.randperm(len(names), generator=generator).tolist() for row in members[names[g]]]
        batches = [sorted(b, key=self.lengths.__getitem__) for b in self._batches_without_duplicates(order)]
        plan = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        self._planned = (epoch, plan)
        return plan
