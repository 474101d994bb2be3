"""Room reverberation with synthetic impulse responses, and RT60 measured back from an impulse response.

An impulse response is a direct path (a unit impulse at sample 0) followed, after a short gap, by Gaussian
noise whose energy decays by 60 dB in RT60 seconds — the statistical model of a diffuse late field. The
direct-to-reverberant energy ratio sets how far away the talker sounds.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.signal

from vgssl.corpus.acoustics.errors import AcousticsInputError

_DECAY_60_DB = np.log(1000.0)  # amplitude falls by 10^3 (energy by 10^6) in one RT60
# The tail runs to -72 dB: the truncation then bends the Schroeder curve only below the T30 fit range.
_TAIL_LENGTH_IN_RT60 = 1.2
_TAIL_START_RANGE_S = (0.002, 0.008)  # first reflections arrive a few ms after the direct sound
_FIT_RANGES_DB = {"T20": (-5.0, -25.0), "T30": (-5.0, -35.0)}


def synthetic_impulse_response(
    *, rt60_s: float, direct_to_reverberant_db: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """An impulse response with a unit direct path at sample 0 and an exponentially decaying noise tail."""
    if rt60_s <= 0:
        raise AcousticsInputError(f"rt60_s must be > 0 seconds, got {rt60_s}")
    tail_start = round(rng.uniform(*_TAIL_START_RANGE_S) * sample_rate)
    tail_length = max(1, round(_TAIL_LENGTH_IN_RT60 * rt60_s * sample_rate))
    time = np.arange(tail_length) / sample_rate
    tail = rng.standard_normal(tail_length) * np.exp(-_DECAY_60_DB * time / rt60_s)
    tail *= np.sqrt(10.0 ** (-direct_to_reverberant_db / 10.0) / np.sum(tail**2))
    impulse_response = np.zeros(tail_start + tail_length)
    impulse_response[0] = 1.0
    impulse_response[tail_start:] = tail
    return impulse_response


def measure_rt60(
    impulse_response: np.ndarray, sample_rate: int, *, method: Literal["T20", "T30"] = "T30"
) -> float:
    """RT60 from Schroeder backward integration, extrapolating a least-squares line fitted from -5 dB
    to -25 dB (T20) or -35 dB (T30) of the energy decay curve, as in ISO 3382."""
    energy = np.asarray(impulse_response, dtype=np.float64) ** 2
    decay = np.cumsum(energy[::-1])[::-1]
    with np.errstate(divide="ignore"):
        decay_db = 10.0 * np.log10(decay / decay[0])
    upper_db, lower_db = _FIT_RANGES_DB[method]
    in_range = (decay_db <= upper_db) & (decay_db >= lower_db)
    if np.count_nonzero(in_range) < 2:
        raise AcousticsInputError(
            f"the impulse response does not decay from {upper_db} to {lower_db} dB: cannot measure {method}"
        )
    time = np.flatnonzero(in_range) / sample_rate
    slope_db_per_s = np.polyfit(time, decay_db[in_range], deg=1)[0]
    return float(-60.0 / slope_db_per_s)


def apply_reverb(audio: np.ndarray, impulse_response: np.ndarray) -> np.ndarray:
    """Convolve with `impulse_response` (direct path at sample 0), keeping the input's length.

    The reverberant tail past the end of the input is cut off, so the output has exactly the input's number
    of samples and every alignment time stays valid (the direct path adds no delay).
    """
    return scipy.signal.fftconvolve(audio, impulse_response)[: audio.shape[0]]
