"""Choose utterances up to a number of hours, with every speaker contributing about equally.

A study's "1 h of English" should be 1 h from many voices, not 1 h from the first three speakers a
directory listing happens to return: speaker variety is what separates phone information from speaker
information in ABX. So the selection takes whole utterances (a cut utterance would no longer match its
transcript) in a fair round-robin over the speakers: the next utterance always comes from the speaker with
the least audio chosen so far (ties broken by a speaker order shuffled with the seed), and it stops at the
budget. Balancing seconds rather than utterance counts keeps a speaker with long utterances from taking more
than its share. The same entries in the same order with the same seed give the same selection.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from vgssl.audio.frames import SAMPLE_RATE
from vgssl.errors import BadOptionError


class Selectable(Protocol):
    """What the selection needs of an entry (`vgssl.data.manifest.ManifestEntry` is one)."""

    @property
    def speaker(self) -> str | None: ...

    @property
    def num_samples(self) -> int: ...


def select_by_hours[E: Selectable](
    entries: Sequence[E], *, hours: float | None, seed: int, sample_rate: int = SAMPLE_RATE
) -> list[E]:
    """The entries chosen for `hours` of audio (all of them when `hours` is None), in their input order.

    The total is within half an utterance of the budget: the utterance that would cross it is taken only if
    that brings the total closer. At least one utterance is taken. When the entries hold less than `hours`,
    all are returned (the caller says so). Entries without a speaker count as one speaker."""
    if hours is None:
        return list(entries)
    if not math.isfinite(hours) or hours <= 0:
        raise BadOptionError(f"hours must be a positive number (or omitted for everything), got {hours}")
    budget = hours * 3600 * sample_rate
    rng = random.Random(seed)
    by_speaker: dict[str, list[int]] = {}
    for index, entry in enumerate(entries):
        by_speaker.setdefault(entry.speaker or "", []).append(index)
    speakers = sorted(by_speaker)  # the shuffle then depends only on which speakers there are and the seed
    rng.shuffle(speakers)
    queues: dict[str, deque[int]] = {}
    for speaker in speakers:
        order = by_speaker[speaker]
        rng.shuffle(order)
        queues[speaker] = deque(order)
    heap = [(0, rank, speaker) for rank, speaker in enumerate(speakers)]
    chosen: list[int] = []
    total = 0
    while heap and total < budget:
        taken, rank, speaker = heapq.heappop(heap)
        index = queues[speaker].popleft()
        length = entries[index].num_samples
        if chosen and total + length > budget and total + length - budget > budget - total:
            break  # this utterance would overshoot by more than stopping short
        chosen.append(index)
        total += length
        if queues[speaker]:
            heapq.heappush(heap, (taken + length, rank, speaker))
    return [entries[index] for index in sorted(chosen)]
