"""Audio files batched by length: longest first, each batch's padded size within a budget of seconds.

Torch-free, so that the extraction command and the study can list and plan utterances without loading torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vgssl.audio.frames import SAMPLE_RATE


@dataclass(frozen=True)
class Utterance:
    key: str  # relative path without extension: the feature file's name and the item file's #file
    path: Path
    num_samples: int  # at 16 kHz; used to batch by length


def length_batches(
    utterances: Sequence[Utterance], *, batch_seconds: float, batchable: bool
) -> list[list[Utterance]]:
    """Longest first; a batch's padded size (rows × longest) stays within `batch_seconds` of audio."""
    ordered = sorted(utterances, key=lambda u: (-u.num_samples, u.key))
    budget = batch_seconds * SAMPLE_RATE
    batches: list[list[Utterance]] = []
    for utterance in ordered:
        current = batches[-1] if batches else None
        if batchable and current and (len(current) + 1) * current[0].num_samples <= budget:
            current.append(utterance)
        else:
            batches.append([utterance])
    return batches
