"""Front-ends: waveform (B, N) at 16 kHz -> local features (B, T, C) at 50 Hz.

Both front-ends give the same frame count, floor((N - 400) / 320) + 1 (zero below 400 samples), so item
slicing and every evaluation is identical whichever produced the features.

* `conv`: the wav2vec 2.0 waveform CNN (no padding). Frame t sees samples 320·t … 320·t + 400, centred at
  0.0125 + 0.02·t s.
* `fbank`: an 80-bin log-mel filterbank computed in torch (25 ms Hann window, 10 ms hop), two mel frames
  stacked into one 20 ms frame, then a Linear. The mel grid is shifted so that frame t sees samples
  320·t − 120 … 320·t + 440, centred exactly at 0.01 + 0.02·t s, the frame times fastabx assumes. The
  first frame reaches 120 samples before the audio and the last up to 40 samples past it; both read zeros,
  the same zeros an utterance alone or padded in a batch sees, because the model zeroes padding first.

Padding: `num_samples` gives each utterance's valid length (right padding). Every statistic over time — the
first conv layer's group norm, the per-utterance normalisation of the waveform (`normalize_waveform`) or of
the log-mel bins (`fbank_normalization: utterance`) — covers valid samples or frames only, so an utterance's
features do not depend on the batch it is in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgssl.model.config import SAMPLE_RATE, SAMPLES_PER_FRAME, ModelConfig

FBANK_WINDOW = 400  # 25 ms
FBANK_HOP = 160  # 10 ms
FBANK_LEAD = 120  # samples before frame t's 320·t start where its first mel window begins (centring)
FBANK_FFT = 512
FBANK_LOW_HZ = 20.0
LOG_FLOOR = 1e-6
NORM_EPS = 1e-5
WAVEFORM_NORM_EPS = 1e-7  # transformers' Wav2Vec2FeatureExtractor uses this for `do_normalize`


def valid_mask(lengths: Tensor | None, batch: int, steps: int, device: torch.device) -> Tensor:
    """(B, steps) True where a step is inside its utterance; all True without lengths."""
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    return torch.arange(steps, device=device) < lengths.to(device)[:, None]


def normalize_over_time(x: Tensor, valid: Tensor, *, eps: float) -> Tensor:
    """(B, T, C) or (B, T): zero mean and unit variance per utterance (and channel) over its valid steps.

    Statistics in fp32; invalid steps come out as zeros.
    """
    mask = valid if x.ndim == 2 else valid.unsqueeze(-1)
    values = x.float().masked_fill(~mask, 0.0)
    count = valid.sum(1).clamp(min=1).to(values.dtype)
    count = count[:, None] if x.ndim == 2 else count[:, None, None]
    mean = values.sum(1, keepdim=True) / count
    var = ((values - mean).masked_fill(~mask, 0.0).square().sum(1, keepdim=True) / count).clamp(min=0.0)
    return ((values - mean) * torch.rsqrt(var + eps)).masked_fill(~mask, 0.0).to(x.dtype)


def normalize_waveform(wav: Tensor, num_samples: Tensor | None) -> Tensor:
    """Zero mean, unit variance per utterance over its valid samples (transformers' `do_normalize`)."""
    with torch.autocast(wav.device.type, enabled=False):
        valid = valid_mask(num_samples, wav.shape[0], wav.shape[-1], wav.device)
        return normalize_over_time(wav.float(), valid, eps=WAVEFORM_NORM_EPS)


def conv_frame_count(num_samples: Tensor, kernel: int, stride: int) -> Tensor:
    """Output length of an unpadded 1-d convolution, never negative."""
    return torch.div(num_samples - kernel, stride, rounding_mode="floor").add(1).clamp(min=0)


class _GradScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """Identity in the forward pass; multiplies the gradient by `scale` in the backward pass."""
    return x if scale == 1.0 else _GradScale.apply(x, scale)


class ChannelGroupNorm(nn.Module):
    """GroupNorm with one group per channel (wav2vec 2.0's first conv layer), blind to padded frames.

    nn.GroupNorm averages over the whole time axis, padding included, which makes an utterance's features
    depend on how much padding its batch added; here the statistics cover valid frames only.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        if lengths is None or bool((lengths >= x.shape[-1]).all()):
            return F.group_norm(x, x.shape[1], self.weight, self.bias, NORM_EPS)
        # Padded frames are zeroed, so plain sums cover valid frames only. One pass for the sums and one
        # fused multiply-add keep this layer (the largest activation of the model) about as cheap as
        # F.group_norm, where the textbook masked (x - mean) formulation took several full passes.
        dtype = x.dtype
        valid = (torch.arange(x.shape[-1], device=x.device) < lengths[:, None]).unsqueeze(1)
        x = x.float().masked_fill(~valid, 0.0)
        count = lengths.clamp(min=1).to(x.dtype)[:, None, None]
        mean = x.sum(-1, keepdim=True) / count
        var = (x.square().sum(-1, keepdim=True) / count - mean.square()).clamp(min=0.0)
        scale = self.weight[:, None] * torch.rsqrt(var + NORM_EPS)
        return torch.addcmul(self.bias[:, None] - mean * scale, x, scale).to(dtype)


class ConvBlock(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, *, norm: str | None, bias: bool
    ) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, bias=bias)
        nn.init.kaiming_normal_(self.conv.weight)
        self.norm: nn.Module | None
        if norm == "group":
            self.norm = ChannelGroupNorm(out_channels)
        elif norm == "layer":
            self.norm = nn.LayerNorm(out_channels, eps=NORM_EPS)
        else:
            self.norm = None

    def forward(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        x = self.conv(x)
        if isinstance(self.norm, ChannelGroupNorm):
            x = self.norm(x, lengths)
        elif self.norm is not None:
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return F.gelu(x)


class ConvFrontend(nn.Module):
    """The wav2vec 2.0 feature encoder: group norm on the first layer only, or layer norm on every layer."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        blocks = []
        in_channels = 1
        for index, (channels, kernel, stride) in enumerate(config.conv_layers):
            norm = "layer" if config.conv_norm == "layer" else ("group" if index == 0 else None)
            blocks.append(ConvBlock(in_channels, channels, kernel, stride, norm=norm, bias=config.conv_bias))
            in_channels = channels
        self.layers = nn.ModuleList(blocks)
        self.output_dim = in_channels

    def frame_lengths(self, num_samples: Tensor) -> Tensor:
        for block in self.layers:
            num_samples = conv_frame_count(num_samples, block.kernel, block.stride)
        return num_samples

    def forward(self, wav: Tensor, num_samples: Tensor | None = None) -> Tensor:
        if int(self.frame_lengths(torch.tensor(wav.shape[-1]))) == 0:  # shorter than one receptive field
            return wav.new_zeros(wav.shape[0], 0, self.output_dim)
        x = wav.unsqueeze(1)
        lengths = num_samples
        for block in self.layers:
            lengths = None if lengths is None else conv_frame_count(lengths, block.kernel, block.stride)
            x = block(x, lengths)
        return x.transpose(1, 2)


def mel_filterbank(num_bins: int, *, fft_size: int, sample_rate: int, low_hz: float) -> Tensor:
    """(fft_size // 2 + 1, num_bins) triangular filters, evenly spaced on the HTK mel scale."""

    def to_mel(hz: Tensor) -> Tensor:
        return 2595.0 * torch.log10(1.0 + hz / 700.0)

    def to_hz(mel: Tensor) -> Tensor:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    fft_hz = torch.linspace(0.0, sample_rate / 2, fft_size // 2 + 1, dtype=torch.float64)
    edges_mel = torch.linspace(
        float(to_mel(torch.tensor(low_hz))), float(to_mel(torch.tensor(sample_rate / 2))), num_bins + 2
    )
    edges = to_hz(edges_mel.double())
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (fft_hz[:, None] - lower) / (centre - lower)
    falling = (upper - fft_hz[:, None]) / (upper - centre)
    return torch.minimum(rising, falling).clamp(min=0.0).float()


class FbankFrontend(nn.Module):
    """Log-mel filterbank, two 10 ms frames stacked to 20 ms, then Linear to `dim` channels."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.num_bins = config.fbank_bins
        self.normalization = config.fbank_normalization
        # Buffers are derived from the constants, so they stay out of the state dict.
        self.register_buffer("window", torch.hann_window(FBANK_WINDOW, periodic=False), persistent=False)
        filters = mel_filterbank(
            config.fbank_bins, fft_size=FBANK_FFT, sample_rate=SAMPLE_RATE, low_hz=FBANK_LOW_HZ
        )
        self.register_buffer("filters", filters, persistent=False)
        self.projection = nn.Linear(2 * config.fbank_bins, config.dim)
        self.output_dim = config.dim

    def frame_lengths(self, num_samples: Tensor) -> Tensor:
        return conv_frame_count(num_samples, FBANK_WINDOW, SAMPLES_PER_FRAME)

    def log_mel(self, wav: Tensor) -> Tensor:
        """(B, N) -> (B, T, 2 · bins) stacked log-mel frames, computed in fp32 whatever the autocast."""
        num_frames = int(self.frame_lengths(torch.tensor(wav.shape[-1])))
        batch = wav.shape[0]
        if num_frames == 0:
            return wav.new_zeros(batch, 0, 2 * self.num_bins, dtype=torch.float32)
        needed = (2 * num_frames - 1) * FBANK_HOP + FBANK_WINDOW - FBANK_LEAD
        with torch.autocast(wav.device.type, enabled=False):
            wav = F.pad(wav.float(), (FBANK_LEAD, max(0, needed - wav.shape[-1])))
            frames = wav.unfold(-1, FBANK_WINDOW, FBANK_HOP)[:, : 2 * num_frames]
            power = torch.fft.rfft(frames * self.window, n=FBANK_FFT).abs().square()
            log_mel = torch.log(power @ self.filters + LOG_FLOOR)
        return log_mel.reshape(batch, num_frames, 2 * self.num_bins)

    def features(self, wav: Tensor, num_samples: Tensor | None = None) -> Tensor:
        """(B, N) -> (B, T, 2 · bins): the stacked log-mel frames the projection reads, normalised as set.

        Every frame reads only its own window, so padding cannot leak into valid frames; the per-utterance
        statistics cover each utterance's valid mel frames only.
        """
        stacked = self.log_mel(wav)
        if self.normalization == "none":
            return stacked
        batch, num_frames, _ = stacked.shape
        lengths = None if num_samples is None else self.frame_lengths(num_samples)
        valid = valid_mask(lengths, batch, num_frames, wav.device).repeat_interleave(2, dim=1)
        mel = stacked.reshape(batch, 2 * num_frames, self.num_bins)
        mel = normalize_over_time(mel, valid, eps=NORM_EPS)
        return mel.reshape(batch, num_frames, 2 * self.num_bins)

    def forward(self, wav: Tensor, num_samples: Tensor | None = None) -> Tensor:
        return self.projection(self.features(wav, num_samples))


def build_frontend(config: ModelConfig) -> ConvFrontend | FbankFrontend:
    return ConvFrontend(config) if config.frontend == "conv" else FbankFrontend(config)
