"""Front-ends: waveform (B, N) at 16 kHz -> local features (B, T, C) at 50 Hz.

Both front-ends give the frame count of vgssl's frame convention (vgssl.audio.frames), floor((N − 400) /
320) + 1 (zero below 400 samples), so item slicing and every evaluation is identical whichever produced the
features.

* `conv`: the wav2vec 2.0 waveform CNN (no padding). Frame t sees samples 320·t … 320·t + 400, centred at
  0.0125 + 0.02·t s.
* `fbank`: the log-mel features of `vgssl.audio.features.fbank_features` (`MODEL_LOG_MEL`: 80 mels, 25 ms
  Hann windows every 10 ms, two stacked into one 20 ms frame, normalised per utterance as configured), then a
  Linear. The mel grid is shifted so that frame t sees samples 320·t − 120 … 320·t + 440, centred exactly at
  0.01 + 0.02·t s, the frame times fastabx assumes. The first frame reaches 120 samples before the audio and
  the last up to 40 samples past it; both read zeros, the same zeros an utterance alone or padded in a batch
  sees, because the model zeroes padding first. The `fbank` evaluation baseline is these features.

Padding: `num_samples` gives each utterance's valid length (right padding). Every statistic over time — the
first conv layer's group norm, the per-utterance normalisation of the waveform (`normalize_waveform`) or of
the log-mel bins (`fbank_normalization: utterance`) — covers valid samples or frames only, so an utterance's
features do not depend on the batch it is in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgssl.audio.batch import valid_mask
from vgssl.audio.features import fbank_features, log_mel, model_log_mel_settings, normalize_over_time
from vgssl.audio.frames import frame_counts
from vgssl.model.config import ModelConfig

NORM_EPS = 1e-5
WAVEFORM_NORM_EPS = 1e-7  # transformers' Wav2Vec2FeatureExtractor uses this for `do_normalize`


def normalize_waveform(wav: Tensor, num_samples: Tensor | None) -> Tensor:
    """Zero mean, unit variance per utterance over its valid samples (transformers' `do_normalize`)."""
    with torch.autocast(wav.device.type, enabled=False):
        valid = valid_mask(num_samples, wav.shape[0], wav.shape[-1], wav.device)
        return normalize_over_time(wav.float(), valid, eps=WAVEFORM_NORM_EPS)


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
            num_samples = frame_counts(num_samples, window=block.kernel, hop=block.stride)
        return num_samples

    def forward(self, wav: Tensor, num_samples: Tensor | None = None) -> Tensor:
        if int(self.frame_lengths(torch.tensor(wav.shape[-1]))) == 0:  # shorter than one receptive field
            return wav.new_zeros(wav.shape[0], 0, self.output_dim)
        x = wav.unsqueeze(1)
        lengths = num_samples
        for block in self.layers:
            if lengths is not None:
                lengths = frame_counts(lengths, window=block.kernel, hop=block.stride)
            x = block(x, lengths)
        return x.transpose(1, 2)


class FbankFrontend(nn.Module):
    """Log-mel filterbank, two 10 ms frames stacked to 20 ms, then Linear to `dim` channels."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.num_bins = config.fbank_bins
        self.normalization = config.fbank_normalization
        self.settings = model_log_mel_settings(config.fbank_bins)  # no parameters: not in the state dict
        self.projection = nn.Linear(self.settings.dim, config.dim)
        self.output_dim = config.dim

    def frame_lengths(self, num_samples: Tensor) -> Tensor:
        return frame_counts(num_samples)

    def log_mel(self, wav: Tensor) -> Tensor:
        """(B, N) -> (B, T, 2 · bins) stacked log-mel frames, computed in fp32 whatever the autocast."""
        return log_mel(wav.float(), self.settings)

    def features(self, wav: Tensor, num_samples: Tensor | None = None) -> Tensor:
        """(B, N) -> (B, T, 2 · bins): the stacked log-mel frames the projection reads, normalised as set.

        `vgssl.audio.features.fbank_features`, which the `fbank` evaluation baseline computes too.
        """
        return fbank_features(wav, num_samples, num_mels=self.num_bins, normalization=self.normalization)

    def forward(self, wav: Tensor, num_samples: Tensor | None = None) -> Tensor:
        return self.projection(self.features(wav, num_samples))


def build_frontend(config: ModelConfig) -> ConvFrontend | FbankFrontend:
    return ConvFrontend(config) if config.frontend == "conv" else FbankFrontend(config)
