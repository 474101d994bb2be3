"""Length-bucketed, distributed, resumable batches.

Utterances of similar length go together so that little of a batch is padding, and a batch holds as many of
them as fit a budget of samples *including* padding (batch size × longest utterance), which bounds memory.
The batches of an epoch are made once for all ranks from (seed, epoch) alone, shuffled, cut to a multiple of
world_size × accumulation, and dealt out: rank r takes batches r, r + W, r + 2W, … So every rank gets disjoint
batches and the same number of them, and the k-th micro-batch of step s on rank r is global batch
(s × M + k) × W + r, whatever W and M are. Resuming means skipping the batches already consumed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from vgssl.errors import VgsslError


class TooFewBatchesError(VgsslError):
    """An epoch gives fewer batches than the ranks and accumulation need for a single step."""


def make_batches(lengths: Sequence[int], *, max_batch_samples: int, seed: int, epoch: int) -> list[list[int]]:
    """All of an epoch's batches (lists of indices into `lengths`), in training order."""
    rng = np.random.default_rng([seed, epoch])
    lengths_array = np.asarray(lengths, dtype=np.int64)
    if (lengths_array > max_batch_samples).any():
        raise ValueError(f"an utterance is longer than the batch budget of {max_batch_samples} samples")
    # A random permutation before a stable sort breaks ties (many utterances are cropped to the same length)
    # differently every epoch, so batches are not the same groups each epoch.
    permutation = rng.permutation(len(lengths_array))
    order = permutation[np.argsort(lengths_array[permutation], kind="stable")]
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order.tolist():
        # Ascending order: the newest utterance is the longest, so it sets the padded size.
        if current and (len(current) + 1) * lengths_array[index] > max_batch_samples:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return [batches[i] for i in rng.permutation(len(batches))]


class BucketBatchSampler:
    """This rank's batches of an epoch from a start position: a `batch_sampler` for a DataLoader."""

    def __init__(
        self,
        lengths: Sequence[int],
        *,
        max_batch_samples: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        accumulation: int = 1,
        drop_uneven: bool = True,
    ) -> None:
        """`drop_uneven=False` keeps the remainder batches (validation: ranks need not step together)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.lengths = list(lengths)
        self.max_batch_samples = max_batch_samples
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.accumulation = accumulation
        self.drop_uneven = drop_uneven
        self.epoch = 0
        self.start = 0
        self._cached: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int, *, start: int = 0) -> None:
        """Iterate over `epoch`, skipping this rank's first `start` batches (already consumed)."""
        self.epoch = epoch
        self.start = start

    def rank_batches(self, epoch: int) -> list[list[int]]:
        if self._cached is not None and self._cached[0] == epoch:
            return self._cached[1]
        batches = make_batches(
            self.lengths, max_batch_samples=self.max_batch_samples, seed=self.seed, epoch=epoch
        )
        if self.drop_uneven:
            group = self.world_size * self.accumulation
            if len(batches) < group:
                raise TooFewBatchesError(
                    f"an epoch makes only {len(batches)} batches, fewer than world size {self.world_size} × "
                    f"accumulation {self.accumulation}; add audio, or lower data.batch_seconds or "
                    "optim.accumulation"
                )
            batches = batches[: len(batches) - len(batches) % group]
        self._cached = (epoch, batches[self.rank :: self.world_size])
        return self._cached[1]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.rank_batches(self.epoch)[self.start :]

    def __len__(self) -> int:
        return len(self.rank_batches(self.epoch)) - self.start
