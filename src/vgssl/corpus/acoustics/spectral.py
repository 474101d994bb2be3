"""Zero-phase filtering by a magnitude response, and the response shapes the transforms combine.

Filtering multiplies the spectrum of the zero-padded utterance by a real, non-negative gain. A real gain
has zero phase, so nothing moves in time and the phone alignments stay exact. The padding holds the
filter's (two-sided) ringing so that it does not wrap around onto the other end of the utterance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

# 64 ms holds the ringing of the narrowest band and steepest slope used here to well below -60 dB.
_RINGING_PAD_S = 0.064
# Tilt is pinned below this frequency so that a negative tilt cannot boost the DC region without bound.
_TILT_FLOOR_HZ = 100.0
_TILT_REFERENCE_HZ = 1000.0
_BUTTERWORTH_ORDER = 4


@dataclass(frozen=True)
class PeakingBand:
    """A bell-shaped gain in dB on a log-frequency axis (Gaussian in octaves around `centre_hz`)."""

    centre_hz: float
    gain_db: float
    width_octaves: float

    def to_json(self) -> dict[str, float]:
        return {"centre_hz": self.centre_hz, "gain_db": self.gain_db, "width_octaves": self.width_octaves}


def frequency_grid(num_samples: int, sample_rate: int) -> tuple[int, np.ndarray]:
    """The padded FFT length used by `filter_zero_phase` for this many samples, and its rfft frequencies."""
    padded = scipy.fft.next_fast_len(num_samples + round(_RINGING_PAD_S * sample_rate), real=True)
    return padded, np.fft.rfftfreq(padded, d=1.0 / sample_rate)


def filter_zero_phase(audio: np.ndarray, sample_rate: int, gain: np.ndarray) -> np.ndarray:
    """Filter with a linear magnitude `gain` given on `frequency_grid(len(audio), sample_rate)`."""
    padded, _ = frequency_grid(audio.shape[0], sample_rate)
    spectrum = scipy.fft.rfft(audio, n=padded)
    return scipy.fft.irfft(spectrum * gain, n=padded)[: audio.shape[0]]


def peaking_gain(frequencies: np.ndarray, bands: tuple[PeakingBand, ...]) -> np.ndarray:
    """Linear gain of a sum (in dB) of peaking bands; 0 dB far from every centre and at DC."""
    gain_db = np.zeros_like(frequencies)
    positive = frequencies > 0
    for band in bands:
        octaves = np.log2(frequencies[positive] / band.centre_hz) / band.width_octaves
        gain_db[positive] += band.gain_db * np.exp(-0.5 * octaves**2)
    return 10.0 ** (gain_db / 20.0)


def tilt_gain(frequencies: np.ndarray, db_per_octave: float) -> np.ndarray:
    """Linear gain of a spectral tilt, 0 dB at 1 kHz, constant below 100 Hz."""
    octaves = np.log2(np.maximum(frequencies, _TILT_FLOOR_HZ) / _TILT_REFERENCE_HZ)
    return 10.0 ** (db_per_octave * octaves / 20.0)


def band_pass_gain(frequencies: np.ndarray, *, highpass_hz: float, lowpass_hz: float) -> np.ndarray:
    """Magnitude of 4th-order Butterworth high-pass and low-pass filters in series (24 dB/octave)."""
    order = 2 * _BUTTERWORTH_ORDER
    lowpass = 1.0 / np.sqrt(1.0 + (frequencies / lowpass_hz) ** order)
    with np.errstate(divide="ignore"):
        highpass = 1.0 / np.sqrt(1.0 + (highpass_hz / frequencies) ** order)
    return lowpass * highpass
