"""Log-mel filterbanks and MFCCs on the shared 50 Hz frame grid (vgssl.audio.frames): one implementation.

`log_mel` computes log mel energies of short-time power spectra (512-point FFT of 400-sample windows). Its
`LogMelSettings` say which: the mel filters, the taper, the hop and offset of the analysis windows, the log
floor. The hop divides the 320-sample frame hop, so each 20 ms frame stacks `320 // hop` windows and an
utterance of N samples always has `frame_count(N)` frames. Two settings are in use, and their numbers are
those of the two implementations this module replaced:

* `MODEL_LOG_MEL`, the model's fbank front-end: 80 mels (HTK filters, triangles on the Hz axis, 20–8000 Hz),
  25 ms Hann windows every 10 ms, two per frame, the grid shifted 120 samples early so that frame i is centred
  at 0.01 + 0.02 i s, log(energy + 1e-6). `fbank_features` adds the per-utterance normalisation of each bin
  over valid mel frames: the 160 numbers per frame the front-end's Linear reads, and the `fbank` baseline.
* `MFCC_LOG_MEL`, the MFCC baseline: pre-emphasis 0.97, Hamming windows every 20 ms on the frame's own
  samples [320 i, 320 i + 400), 40 mels (Kaldi filters, triangles on the mel axis, 20–8000 Hz),
  log(max(energy, 1e-10)). `mfcc` adds the orthonormal DCT-II (13 coefficients, c0 included) and HTK
  regression Δ and ΔΔ over ±2 frames: 39 dimensions, optionally mean/variance normalised per utterance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from vgssl.audio.batch import valid_mask
from vgssl.audio.frames import HOP_SAMPLES, SAMPLE_RATE, WINDOW_SAMPLES, frame_count, frame_counts

FFT_SIZE = 512
FBANK_MELS = 80
MFCC_MELS = 40
MFCC_COEFFICIENTS = 13
DELTA_WIDTH = 2
NORM_EPS = 1e-5  # added to the variance by the per-utterance normalisation of log-mel bins
MFCC_STD_FLOOR = 1e-5  # the MFCC baseline's normalisation floors the standard deviation instead

MelScale = Literal["kaldi", "htk"]
FbankNormalization = Literal["utterance", "none"]


@dataclass(frozen=True, kw_only=True)
class LogMelSettings:
    """How `log_mel` analyses a waveform; the two in use are `MODEL_LOG_MEL` and `MFCC_LOG_MEL`."""

    num_mels: int
    # kaldi: 1127 ln(1 + f / 700), triangles linear on the mel axis. htk: 2595 log10(1 + f / 700), triangles
    # linear in Hz between mel-spaced edges. The same scale; the two filter shapes differ slightly.
    mel_scale: MelScale
    window: Literal["hann", "hamming"]  # symmetric (periodic=False), WINDOW_SAMPLES long
    hop: int  # samples between analysis windows; divides HOP_SAMPLES (one 20 ms frame = 320 // hop windows)
    offset: int  # where window 0 starts, in samples; samples outside the audio read as zeros
    floor: float
    floor_mode: Literal["clamp", "add"]  # log(max(energy, floor)) or log(energy + floor)
    low_hz: float = 20.0
    high_hz: float = SAMPLE_RATE / 2
    pre_emphasis: float = 0.0  # x[n] − p·x[n − 1] over each row before windowing (x[−1] taken as x[0])

    def __post_init__(self) -> None:
        if self.hop < 1 or HOP_SAMPLES % self.hop:
            raise ValueError(f"hop {self.hop} must divide the frame hop of {HOP_SAMPLES} samples")

    @property
    def windows_per_frame(self) -> int:
        return HOP_SAMPLES // self.hop

    @property
    def dim(self) -> int:
        """Numbers per 20 ms frame: the stacked windows' mel energies."""
        return self.windows_per_frame * self.num_mels


MODEL_LOG_MEL = LogMelSettings(
    num_mels=FBANK_MELS,
    mel_scale="htk",
    window="hann",
    hop=160,
    offset=-120,  # windows 2i and 2i + 1 span samples 320 i − 120 … 320 i + 440, centred at 320 i + 160
    floor=1e-6,
    floor_mode="add",
)
MFCC_LOG_MEL = LogMelSettings(
    num_mels=MFCC_MELS,
    mel_scale="kaldi",
    window="hamming",
    hop=HOP_SAMPLES,
    offset=0,
    floor=1e-10,
    floor_mode="clamp",
    pre_emphasis=0.97,
)


def model_log_mel_settings(num_mels: int = FBANK_MELS) -> LogMelSettings:
    """`MODEL_LOG_MEL` with another number of mel bins (the model config's `fbank_bins`)."""
    return MODEL_LOG_MEL if num_mels == MODEL_LOG_MEL.num_mels else replace(MODEL_LOG_MEL, num_mels=num_mels)


def mel_filterbank(
    num_mels: int,
    *,
    mel_scale: MelScale,
    low_hz: float = 20.0,
    high_hz: float = SAMPLE_RATE / 2,
    fft_size: int = FFT_SIZE,
    sample_rate: int = SAMPLE_RATE,
) -> Tensor:
    """(fft_size // 2 + 1, num_mels) float32 triangular filters, edges evenly spaced in mel from low to high.

    The edges are spaced in float32 and the triangles drawn in float64, exactly as both original
    implementations did, so that their features are unchanged.
    """
    if mel_scale == "kaldi":
        return _kaldi_filters(num_mels, low_hz, high_hz, fft_size, sample_rate)
    if mel_scale == "htk":
        return _htk_filters(num_mels, low_hz, high_hz, fft_size, sample_rate)
    raise ValueError(f"mel_scale must be 'kaldi' or 'htk', not {mel_scale!r}")


def _kaldi_filters(num_mels: int, low_hz: float, high_hz: float, fft_size: int, sample_rate: int) -> Tensor:
    def to_mel(hz: Tensor) -> Tensor:
        return 1127.0 * torch.log1p(hz / 700.0)

    bin_mels = to_mel(torch.linspace(0, sample_rate / 2, fft_size // 2 + 1, dtype=torch.float64))
    edges = torch.linspace(
        float(to_mel(torch.tensor(low_hz))), float(to_mel(torch.tensor(high_hz))), num_mels + 2
    ).double()
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mels[:, None] - left) / (centre - left)
    falling = (right - bin_mels[:, None]) / (right - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def _htk_filters(num_mels: int, low_hz: float, high_hz: float, fft_size: int, sample_rate: int) -> Tensor:
    def to_mel(hz: Tensor) -> Tensor:
        return 2595.0 * torch.log10(1.0 + hz / 700.0)

    def to_hz(mel: Tensor) -> Tensor:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    fft_hz = torch.linspace(0.0, sample_rate / 2, fft_size // 2 + 1, dtype=torch.float64)
    edges_mel = torch.linspace(
        float(to_mel(torch.tensor(low_hz))), float(to_mel(torch.tensor(high_hz))), num_mels + 2
    )
    edges = to_hz(edges_mel.double())
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (fft_hz[:, None] - lower) / (centre - lower)
    falling = (upper - fft_hz[:, None]) / (upper - centre)
    return torch.minimum(rising, falling).clamp(min=0.0).float()


@cache
def _analysis(settings: LogMelSettings, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(taper, filters) for `settings`, made on the CPU and cached per device and dtype.

    Cached so that a model on a GPU does not copy them there at every step; made outside inference mode so
    that a first call under `torch.inference_mode()` does not leave tensors that training cannot use.
    """
    with torch.inference_mode(False):
        make_window = torch.hann_window if settings.window == "hann" else torch.hamming_window
        taper = make_window(WINDOW_SAMPLES, periodic=False, dtype=dtype).to(device)
        filters = mel_filterbank(
            settings.num_mels, mel_scale=settings.mel_scale, low_hz=settings.low_hz, high_hz=settings.high_hz
        ).to(device, dtype)
    return taper, filters


def log_mel(wav: Tensor, settings: LogMelSettings) -> Tensor:
    """(..., N) waveform at 16 kHz -> (..., T, settings.dim) log mel energies, T = frame_count(N).

    Computed in float64 for a float64 waveform and in float32 for any other, autocast off. Frame i stacks
    windows i·w … i·w + w − 1 (w = settings.windows_per_frame); window k starts at sample offset + k·hop, and
    any of its samples outside [0, N) is zero, which is what a padded row holds after its utterance too.
    """
    *leading, num_samples = wav.shape
    num_frames = frame_count(num_samples)
    dtype = torch.float64 if wav.dtype == torch.float64 else torch.float32
    if num_frames == 0:  # MKL's FFT refuses an empty batch
        return wav.new_zeros((*leading, 0, settings.dim), dtype=dtype)
    num_windows = num_frames * settings.windows_per_frame
    before = max(0, -settings.offset)
    end = settings.offset + (num_windows - 1) * settings.hop + WINDOW_SAMPLES
    after = max(0, end - num_samples)
    taper, filters = _analysis(settings, wav.device, dtype)
    with torch.autocast(wav.device.type, enabled=False):
        rows = wav.to(dtype).reshape(-1, num_samples)
        if settings.pre_emphasis:
            rows = torch.cat([rows[:, :1], rows[:, 1:] - settings.pre_emphasis * rows[:, :-1]], dim=1)
        rows = F.pad(rows, (before, after))[:, before + settings.offset :]
        windows = rows.unfold(-1, WINDOW_SAMPLES, settings.hop)[:, :num_windows]
        power = torch.fft.rfft(windows * taper, n=FFT_SIZE).abs().square()
        energies = power @ filters
        if settings.floor_mode == "add":
            logs = torch.log(energies + settings.floor)
        else:
            logs = torch.log(torch.clamp(energies, min=settings.floor))
    return logs.reshape(*leading, num_frames, settings.dim)


def normalize_over_time(x: Tensor, valid: Tensor, *, eps: float) -> Tensor:
    """(B, T, C) or (B, T): zero mean and unit variance per utterance (and channel) over its valid steps.

    Statistics in fp32, the variance plus `eps` under the square root; invalid steps come out as zeros.
    """
    mask = valid if x.ndim == 2 else valid.unsqueeze(-1)
    values = x.float().masked_fill(~mask, 0.0)
    count = valid.sum(1).clamp(min=1).to(values.dtype)
    count = count[:, None] if x.ndim == 2 else count[:, None, None]
    mean = values.sum(1, keepdim=True) / count
    var = ((values - mean).masked_fill(~mask, 0.0).square().sum(1, keepdim=True) / count).clamp(min=0.0)
    return ((values - mean) * torch.rsqrt(var + eps)).masked_fill(~mask, 0.0).to(x.dtype)


def fbank_features(
    wav: Tensor,
    num_samples: Tensor | None = None,
    *,
    num_mels: int = FBANK_MELS,
    normalization: FbankNormalization = "utterance",
) -> Tensor:
    """(B, N) -> (B, T, 2 · num_mels) fp32: the model's fbank input, i.e. what its front-end's Linear reads.

    `MODEL_LOG_MEL` energies, two 10 ms windows per 20 ms frame, then (`utterance`) each bin standardised
    over the utterance's valid mel windows. `num_samples` (B,) gives right-padded rows' valid lengths; the
    padding must be zeros, as the model makes it. Every window reads only its own samples and the statistics
    cover valid frames only, so a row's features do not depend on its batch.
    """
    settings = model_log_mel_settings(num_mels)
    stacked = log_mel(wav.float(), settings)
    if normalization == "none":
        return stacked
    batch, num_frames, _ = stacked.shape
    lengths = None if num_samples is None else frame_counts(num_samples)
    steps = settings.windows_per_frame
    valid = valid_mask(lengths, batch, num_frames, wav.device).repeat_interleave(steps, dim=1)
    mel = stacked.reshape(batch, steps * num_frames, num_mels)
    mel = normalize_over_time(mel, valid, eps=NORM_EPS)
    return mel.reshape(batch, num_frames, settings.dim)


@cache
def _dct_matrix(num_inputs: int, num_outputs: int) -> Tensor:
    """(num_inputs, num_outputs) orthonormal DCT-II basis."""
    n = torch.arange(num_inputs, dtype=torch.float64)
    k = torch.arange(num_outputs, dtype=torch.float64)
    basis = torch.cos(math.pi / num_inputs * (n[:, None] + 0.5) * k[None, :]) * math.sqrt(2.0 / num_inputs)
    basis[:, 0] /= math.sqrt(2.0)
    return basis.float()


def deltas(features: Tensor, *, width: int = DELTA_WIDTH) -> Tensor:
    """HTK regression deltas over ±`width` frames along time, edges replicated: (T, D) -> (T, D)."""
    if features.shape[0] == 0:
        return features.clone()
    padded = torch.cat([features[:1].expand(width, -1), features, features[-1:].expand(width, -1)])
    length = features.shape[0]
    total = sum(
        n * (padded[width + n : width + n + length] - padded[width - n : width - n + length])
        for n in range(1, width + 1)
    )
    return total / (2 * sum(n * n for n in range(1, width + 1)))


def mfcc(wav: Tensor, *, normalize: bool) -> Tensor:
    """(T, 39) MFCC + Δ + ΔΔ of a 1-D waveform, optionally mean/variance normalised over the utterance."""
    log_energies = log_mel(wav, MFCC_LOG_MEL)
    cepstra = log_energies @ _dct_matrix(MFCC_MELS, MFCC_COEFFICIENTS).to(wav.device, log_energies.dtype)
    first = deltas(cepstra)
    features = torch.cat([cepstra, first, deltas(first)], dim=1)
    if normalize and features.shape[0] > 0:
        std = features.std(dim=0, unbiased=False, keepdim=True).clamp(min=MFCC_STD_FLOOR)
        features = (features - features.mean(dim=0, keepdim=True)) / std
    return features
