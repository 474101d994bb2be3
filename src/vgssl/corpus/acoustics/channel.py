"""The recording channel: band-limiting (telephone-like to wideband) and a random peaking EQ.

Both are zero-phase and applied in one pass, so the channel moves nothing in time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vgssl.corpus.acoustics.config import AcousticsConfig
from vgssl.corpus.acoustics.spectral import (
    PeakingBand,
    band_pass_gain,
    filter_zero_phase,
    frequency_grid,
    peaking_gain,
)


@dataclass(frozen=True)
class Channel:
    band: tuple[float, float] | None  # (high-pass cutoff, low-pass cutoff) in Hz, or no band-limiting
    eq_bands: tuple[PeakingBand, ...]

    @property
    def is_identity(self) -> bool:
        return self.band is None and not self.eq_bands

    def to_json(self) -> dict[str, Any]:
        return {
            "highpass_hz": None if self.band is None else self.band[0],
            "lowpass_hz": None if self.band is None else self.band[1],
            "eq_bands": [band.to_json() for band in self.eq_bands],
        }


def draw_channel(*, config: AcousticsConfig, rng: np.random.Generator) -> Channel:
    limits = rng.random() < config.band_limit_probability
    band = (
        float(rng.uniform(*config.highpass_cutoff_hz_range)),
        float(rng.uniform(*config.lowpass_cutoff_hz_range)),
    )
    equalises = rng.random() < config.random_eq_probability
    low, high = config.random_eq_band_count_range
    eq_bands = tuple(
        PeakingBand(
            # Centres are uniform in log frequency, like the ear's (and the EQ's) resolution.
            centre_hz=float(np.exp(rng.uniform(*np.log(config.random_eq_centre_hz_range)))),
            gain_db=float(rng.uniform(*config.random_eq_gain_db_range)),
            width_octaves=float(rng.uniform(*config.random_eq_width_octaves_range)),
        )
        for _ in range(int(rng.integers(low, high + 1)))
    )
    return Channel(band=band if limits else None, eq_bands=eq_bands if equalises else ())


def apply_channel(audio: np.ndarray, sample_rate: int, channel: Channel) -> np.ndarray:
    if channel.is_identity:
        return audio
    _, frequencies = frequency_grid(audio.shape[0], sample_rate)
    gain = peaking_gain(frequencies, channel.eq_bands)
    if channel.band is not None:
        gain *= band_pass_gain(frequencies, highpass_hz=channel.band[0], lowpass_hz=channel.band[1])
    return filter_zero_phase(audio, sample_rate, gain)
