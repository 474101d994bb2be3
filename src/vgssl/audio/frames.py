"""THE frame convention of vgssl, defined once: 16 kHz audio, 50 Hz frames, 400-sample windows, hop 320.

Every model, baseline, item file and evaluation in vgssl counts and places frames this way, so an ABX item
slices the same frames whichever features it is scored on:

* An utterance of N samples at 16 kHz has `floor((N − 400) / 320) + 1` frames, 0 below 400 samples: what
  the wav2vec 2.0 waveform CNN (kernels 10, 3, 3, 3, 3, 2, 2; strides 5, 2, 2, 2, 2, 2, 2; no padding)
  yields, and what every other front-end is built to yield too (`frame_count`, `frame_counts`).
* Frame i stands at `0.01 + 0.02 i` s (`frame_time`): fastabx's Δt/2 + i·Δt, the time an item's onset and
  offset are compared with. The conv front-end's window for frame i, samples [320 i, 320 i + 400), is
  centred 2.5 ms later; the fbank front-end's grid is shifted to sit exactly on this time.

Torch-free on purpose: the corpus builder imports it. `frame_counts` works on tensors through their methods.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

SAMPLE_RATE = 16_000
FRAME_RATE = 50
FRAME_SHIFT = 1.0 / FRAME_RATE  # seconds between frames
WINDOW_SAMPLES = 400  # 25 ms: the samples under one frame (the conv front-end's receptive field)
HOP_SAMPLES = SAMPLE_RATE // FRAME_RATE  # 320 = 20 ms
SAMPLES_PER_FRAME = HOP_SAMPLES
# Written into features.json, corpus cards and reports: the rule above in words.
FRAME_COUNT_RULE = "floor((N - 400) / 320) + 1 frames for N samples at 16 kHz"


def frame_count(num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Frames of an utterance of `num_samples` samples (0 when shorter than one 25 ms window).

    At another `sample_rate` the length is first converted to 16 kHz samples (rounded), as reading the file
    with `vgssl.audio.io.read_audio` resamples it.
    """
    samples = num_samples if sample_rate == SAMPLE_RATE else round(num_samples * SAMPLE_RATE / sample_rate)
    return max(0, (samples - WINDOW_SAMPLES) // HOP_SAMPLES + 1)


def frame_counts(num_samples: Tensor, *, window: int = WINDOW_SAMPLES, hop: int = HOP_SAMPLES) -> Tensor:
    """`frame_count` of a tensor of lengths; with `window`/`hop`, the output length of one unpadded conv."""
    return (num_samples - window).div(hop, rounding_mode="floor").add(1).clamp(min=0)


def frame_time(index: int) -> float:
    """Seconds at which frame `index` stands: 0.01 + 0.02·index (works on numpy arrays of indices too)."""
    return (index + 0.5) / FRAME_RATE


def frames_inside(onset: float, offset: float, num_frames: int) -> int:
    """Frames fastabx takes for [onset, offset], or 0 when it would reach past the file's last frame.

    fastabx slices frames ceil(onset * 50 - 0.5) to floor(offset * 50 - 0.5) inclusive (the frame centres
    inside the segment) and refuses an item whose slice ends after the features do.
    """
    onset, offset = round(onset, 4), round(offset, 4)  # the precision written to item files
    first = math.ceil(onset * FRAME_RATE - 0.5 - 1e-9)
    last = math.floor(offset * FRAME_RATE - 0.5 + 1e-9)
    if first < 0 or last >= num_frames:
        return 0
    return max(0, last - first + 1)
