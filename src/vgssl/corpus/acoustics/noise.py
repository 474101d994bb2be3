"""Additive noise: white, pink (1/f power) and babble, mixed into speech at an exact SNR.

Every generator returns float64 noise of unit RMS, so the level is set only by `mix_at_snr`.
SNR here is the power of the whole clean utterance (pauses included) over the power of the scaled noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.fft

from vgssl.corpus.acoustics.errors import AcousticsInputError

NoiseType = Literal["white", "pink", "babble"]


def _unit_rms(signal: np.ndarray) -> np.ndarray:
    return signal / np.sqrt(np.mean(signal**2))


def white_noise(num_samples: int, *, rng: np.random.Generator) -> np.ndarray:
    return _unit_rms(rng.standard_normal(num_samples))


def pink_noise(num_samples: int, *, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectral density proportional to 1/f (no DC)."""
    spectrum = scipy.fft.rfft(rng.standard_normal(num_samples))
    frequency_index = np.arange(spectrum.shape[0], dtype=np.float64)
    spectrum[0] = 0.0
    spectrum[1:] /= np.sqrt(frequency_index[1:])
    return _unit_rms(scipy.fft.irfft(spectrum, n=num_samples))


def babble_noise(
    num_samples: int, *, pool: Sequence[np.ndarray], talkers: int, rng: np.random.Generator
) -> np.ndarray:
    """The sum of `talkers` utterances from `pool`, each at equal level, looped and started at a random point.

    `pool` holds utterances of text that is not in the corpus split being built, at the same sample rate.
    Talkers are distinct utterances when the pool is large enough.
    """
    if not pool:
        raise AcousticsInputError(
            "babble noise needs a pool of other utterances: pass babble_pool, or give babble weight 0"
        )
    chosen = rng.choice(len(pool), size=talkers, replace=len(pool) < talkers)
    babble = np.zeros(num_samples)
    for index in chosen:
        utterance = np.asarray(pool[index], dtype=np.float64)
        if utterance.ndim != 1 or not np.any(utterance):
            raise AcousticsInputError(
                f"babble pool utterance {index} is not a non-silent 1-D waveform (shape {utterance.shape})"
            )
        start = int(rng.integers(utterance.shape[0]))
        looped = np.resize(np.roll(utterance, -start), num_samples)
        babble += _unit_rms(looped)
    return _unit_rms(babble)


def make_noise(
    noise_type: NoiseType,
    num_samples: int,
    *,
    rng: np.random.Generator,
    babble_pool: Sequence[np.ndarray] = (),
    babble_talkers: int = 1,
) -> np.ndarray:
    match noise_type:
        case "white":
            return white_noise(num_samples, rng=rng)
        case "pink":
            return pink_noise(num_samples, rng=rng)
        case "babble":
            return babble_noise(num_samples, pool=babble_pool, talkers=babble_talkers, rng=rng)


def signal_to_noise_db(speech: np.ndarray, noise: np.ndarray) -> float:
    """10·log10(speech power / noise power)."""
    speech_power = np.mean(np.asarray(speech, dtype=np.float64) ** 2)
    noise_power = np.mean(np.asarray(noise, dtype=np.float64) ** 2)
    return float(10.0 * np.log10(speech_power / noise_power))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`speech + g·noise` with g chosen so that `signal_to_noise_db(speech, g·noise) == snr_db`.

    Silent speech is returned unchanged (no SNR is defined for it).
    """
    if speech.shape != noise.shape:
        raise AcousticsInputError(
            f"speech and noise must have the same shape to be mixed, got {speech.shape} and {noise.shape}"
        )
    speech = np.asarray(speech, dtype=np.float64)
    speech_power = np.mean(speech**2)
    noise_power = np.mean(np.asarray(noise, dtype=np.float64) ** 2)
    if speech_power == 0:
        return speech
    if noise_power == 0:
        raise AcousticsInputError("the noise is silent (all zeros): it cannot be scaled to any SNR")
    gain = np.sqrt(speech_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return speech + gain * noise
