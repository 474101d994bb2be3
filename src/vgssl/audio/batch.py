"""Variable-length waveforms as one right-padded batch: the layout every vgssl model reads.

A batch is `wav` (B, N) float32, each utterance at the start of its row and zeros after it, with
`padding_mask` (B, N) True on the padding and `lengths` (B,) the valid samples. Models zero the padding and
keep every statistic over valid samples or frames only, so an utterance's features do not depend on the
batch it is in (frame counts follow vgssl.audio.frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor


class PaddedWaveforms(NamedTuple):
    wav: Tensor  # (B, N) float32, zeros after each utterance
    padding_mask: Tensor  # (B, N) bool, True = padding
    lengths: Tensor  # (B,) int64 valid samples per row


def pad_waveforms(waves: Sequence[np.ndarray | Tensor]) -> PaddedWaveforms:
    """Right-pad 1-D waveforms (numpy or CPU tensors, cast to float32) to the longest; none gives (0, 0)."""
    for index, wave in enumerate(waves):
        if wave.ndim != 1:
            raise ValueError(f"waveform {index} has shape {tuple(wave.shape)}; expected one mono channel")
    lengths = [int(wave.shape[0]) for wave in waves]
    longest = max(lengths, default=0)
    wav = torch.zeros(len(waves), longest, dtype=torch.float32)
    padding_mask = torch.ones(len(waves), longest, dtype=torch.bool)
    for row, (wave, length) in enumerate(zip(waves, lengths, strict=True)):
        wav[row, :length] = torch.as_tensor(wave)
        padding_mask[row, :length] = False
    return PaddedWaveforms(wav, padding_mask, torch.tensor(lengths, dtype=torch.long))


def valid_mask(lengths: Tensor | None, batch: int, steps: int, device: torch.device) -> Tensor:
    """(B, steps) True where a step is inside its utterance; all True without lengths."""
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    return torch.arange(steps, device=device) < lengths.to(device)[:, None]
