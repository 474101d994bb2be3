"""Span masking for the masked contrastive objective (wav2vec 2.0's recipe, padding-aware).

Per utterance of L valid frames: round(mask_prob · L / mask_length) span starts (probabilistic rounding, so
the expected count is exact), drawn without replacement from the positions where a whole span fits; spans
may overlap, so about half of the frames end up masked at 0.65 / 10. Then, if fewer than `min_masks` frames
are masked, random unmasked valid frames are added until there are `min_masks`. Padding is never masked.

Randomness comes from `generator` (a CPU torch.Generator) or else the global CPU RNG, which the trainer seeds.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vgssl.errors import VgsslError


class UtteranceTooShortError(VgsslError):
    """An utterance has fewer valid frames than the minimum number of masked frames."""


def compute_span_mask(
    frame_lengths: Tensor,
    num_frames: int,
    *,
    mask_prob: float,
    mask_length: int,
    min_masks: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(B,) valid frame counts -> (B, num_frames) bool mask on the CPU, True = masked."""
    lengths = frame_lengths.cpu().tolist()
    too_short = [(index, length) for index, length in enumerate(lengths) if length < min_masks]
    if too_short:
        listing = ", ".join(f"item {index}: {length} frames" for index, length in too_short)
        raise UtteranceTooShortError(
            f"cannot mask at least min_masks={min_masks} frames in utterances that are too short "
            f"({listing}). Filter out clips shorter than {min_masks} frames (about "
            f"{(min_masks - 1) * 320 + 400} samples at 16 kHz) before batching."
        )
    mask = torch.zeros(len(lengths), num_frames, dtype=torch.bool)
    for row, length in zip(mask, lengths, strict=True):
        expected_spans = mask_prob * length / mask_length
        num_spans = int(expected_spans + float(torch.rand((), generator=generator)))
        span = min(mask_length, length)
        num_starts = length - span + 1
        starts = torch.randperm(num_starts, generator=generator)[: min(num_spans, num_starts)]
        covered = (starts[:, None] + torch.arange(span)).flatten()
        row[covered] = True
        shortfall = min_masks - int(row[:length].sum())
        if shortfall > 0:
            unmasked = (~row[:length]).nonzero().squeeze(1)
            row[unmasked[torch.randperm(len(unmasked), generator=generator)[:shortfall]]] = True
    return mask
