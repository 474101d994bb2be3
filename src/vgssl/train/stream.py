"""One resumable stream of training batches, for the audio-only batches and for the caption batches alike.

A stream yields the micro-batches of one step at a time (`accumulation` of them), epoch after epoch. Its
position — (epoch, micro-batches of that epoch this rank has consumed) — is what a checkpoint stores, so a
resumed run continues with exactly the batch it would have had next: the dataset's crops and the sampler's
order are functions of (seed, epoch), and the sampler starts at the stored position.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader

from vgssl.errors import VgsslError
from vgssl.train.data import Batch


class EmptyBatchError(VgsslError):
    """Every utterance of a micro-batch was unreadable, so there is nothing to train on."""


class EpochSampler(Protocol):
    """A batch sampler with a deterministic order per epoch (`BucketBatchSampler`, `PairBatchSampler`)."""

    def set_epoch(self, epoch: int, *, start: int = 0) -> None: ...

    def rank_batches(self, epoch: int) -> list[list[int]]: ...


@dataclass(frozen=True)
class LoaderOptions:
    num_workers: int
    pin_memory: bool


class BatchStream[B]:
    """The micro-batches of each step from `dataset` in `sampler`'s order, resumable from (epoch, position).

    `audio_of` gives a batch's audio part (a caption batch's `.audio`); `inspect` sees each micro-batch's
    audio as it arrives (to report or refuse its unreadable files). A step whose micro-batch kept no
    utterance raises `EmptyBatchError`: a rank that raises ends the whole torchrun job.
    """

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        sampler: EpochSampler,
        *,
        collate: Callable[[Sequence[Any]], B],
        accumulation: int,
        loader: LoaderOptions,
        audio_of: Callable[[B], Batch],
        inspect: Callable[[Batch], None],
    ) -> None:
        self.dataset, self.sampler, self.collate = dataset, sampler, collate
        self.accumulation, self.loader = accumulation, loader
        self.audio_of, self.inspect = audio_of, inspect
        self.epoch = 0
        self.position = 0  # micro-batches of `epoch` this rank has consumed

    def steps(self) -> Iterator[list[B]]:
        """The micro-batches of each step, from the current position on, forever."""
        while True:
            self.dataset.set_epoch(self.epoch)
            self.sampler.set_epoch(self.epoch, start=self.position)
            epoch_length = len(self.sampler.rank_batches(self.epoch))
            micro_batches: list[B] = []
            for batch in self._loader():
                self.position += 1
                self.inspect(self.audio_of(batch))
                micro_batches.append(batch)
                if len(micro_batches) == self.accumulation:
                    self._refuse_empty(micro_batches)
                    if self.position == epoch_length:
                        # Advance before the step so a checkpoint written after it resumes at the next epoch.
                        self.epoch, self.position = self.epoch + 1, 0
                    yield micro_batches
                    micro_batches = []

    def _loader(self) -> DataLoader:
        return data_loader(self.dataset, self.sampler, collate=self.collate, options=self.loader)

    def _refuse_empty(self, micro_batches: Sequence[B]) -> None:
        for batch in micro_batches:
            audio = self.audio_of(batch)
            if len(audio) == 0:
                names = ", ".join(problem.utt_id for problem in audio.problems)
                raise EmptyBatchError(
                    f"every utterance of a micro-batch (epoch {self.epoch}, micro-batch {self.position} of "
                    f"this rank) was unreadable ({names}); fix or remove these files"
                )


def data_loader(
    dataset: torch.utils.data.Dataset,
    sampler: EpochSampler,
    *,
    collate: Callable[[Sequence[Any]], Any],
    options: LoaderOptions,
) -> DataLoader:
    """A DataLoader over `sampler`'s batches of the epoch and start it was last set to."""
    return DataLoader(
        dataset,
        batch_sampler=sampler,  # type: ignore[arg-type]  # a torch batch sampler by duck typing
        collate_fn=collate,
        num_workers=options.num_workers,
        pin_memory=options.pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if options.num_workers else None,
    )
