"""Per-speaker timbre: a fixed spectral tilt and formant-like peaking bands drawn from the speaker's seed.

espeak's voice variants differ mostly in F0 and a few formant settings; a per-speaker filter makes speakers
also differ in voice quality (tilt: breathy/dark versus bright) and vocal-tract colour (bands in the F1, F2
and F3 zones), as real speakers do. The same speaker gets the same filter in every utterance and language.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vgssl.corpus.acoustics.config import AcousticsConfig
from vgssl.corpus.acoustics.spectral import (
    PeakingBand,
    filter_zero_phase,
    frequency_grid,
    peaking_gain,
    tilt_gain,
)


@dataclass(frozen=True)
class SpeakerTimbre:
    tilt_db_per_octave: float
    bands: tuple[PeakingBand, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "tilt_db_per_octave": self.tilt_db_per_octave,
            "bands": [band.to_json() for band in self.bands],
        }


def draw_speaker_timbre(seed: int | Sequence[int], *, config: AcousticsConfig) -> SpeakerTimbre:
    """The timbre of the speaker whose own seed is `seed` (e.g. `(corpus_seed, speaker_index)`).

    Drawn from a generator of its own, so a speaker's timbre does not depend on which utterances or
    workers come first.
    """
    rng = np.random.default_rng(seed)
    tilt = float(rng.uniform(*config.timbre_tilt_db_per_octave_range))
    bands = tuple(
        PeakingBand(
            centre_hz=float(rng.uniform(*zone)),
            gain_db=float(rng.uniform(*config.timbre_band_gain_db_range)),
            width_octaves=float(rng.uniform(*config.timbre_band_width_octaves_range)),
        )
        for zone in config.timbre_band_centre_hz_ranges
    )
    return SpeakerTimbre(tilt_db_per_octave=tilt, bands=bands)


def apply_timbre(audio: np.ndarray, sample_rate: int, timbre: SpeakerTimbre) -> np.ndarray:
    """Filter with the speaker's tilt and bands (zero phase: alignments do not move)."""
    _, frequencies = frequency_grid(audio.shape[0], sample_rate)
    gain = tilt_gain(frequencies, timbre.tilt_db_per_octave) * peaking_gain(frequencies, timbre.bands)
    return filter_zero_phase(audio, sample_rate, gain)
