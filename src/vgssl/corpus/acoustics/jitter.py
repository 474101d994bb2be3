"""Per-utterance speaking-rate and pitch jitter, applied through espeak's rate and pitch settings.

A speaker does not say every sentence at the same rate and pitch. The builder draws a jitter per utterance
and synthesises with the jittered voice settings (before any of the waveform transforms).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vgssl.corpus.acoustics.config import AcousticsConfig

# espeak-ng accepts rates of 80-450 words per minute and pitch 0-100.
ESPEAK_RATE_LIMITS = (80, 450)
ESPEAK_PITCH_LIMITS = (0, 100)


@dataclass(frozen=True)
class VoiceJitter:
    rate_factor: float  # multiplies the speaker's rate in words per minute
    pitch_offset: float  # added to the speaker's pitch, in espeak pitch units (0-100 scale)

    def jittered_rate(self, rate: int) -> int:
        return int(np.clip(round(rate * self.rate_factor), *ESPEAK_RATE_LIMITS))

    def jittered_pitch(self, pitch: int) -> int:
        return int(np.clip(round(pitch + self.pitch_offset), *ESPEAK_PITCH_LIMITS))

    def to_json(self) -> dict[str, float]:
        return {"rate_factor": self.rate_factor, "pitch_offset": self.pitch_offset}


def draw_voice_jitter(*, config: AcousticsConfig, rng: np.random.Generator) -> VoiceJitter:
    return VoiceJitter(
        rate_factor=float(rng.uniform(*config.rate_jitter_factor_range)),
        pitch_offset=float(rng.uniform(*config.pitch_jitter_offset_range)),
    )
