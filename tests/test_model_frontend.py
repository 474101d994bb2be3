"""Front-ends: frame-count convention, log-mel known answer, padding invariance of the features."""

from __future__ import annotations

import math

import pytest
import torch

from vgssl.audio.features import mel_filterbank
from vgssl.model.config import ModelConfig
from vgssl.model.frontend import ConvFrontend, FbankFrontend

SMALL_CONV = [(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2  # wav2vec 2.0's kernels and strides


def expected_frames(num_samples: int) -> int:
    return max(0, (num_samples - 400) // 320 + 1)


@pytest.mark.parametrize("frontend", ["conv", "fbank"])
def test_frame_count_is_the_wav2vec2_convention(frontend: str) -> None:
    config = ModelConfig(frontend=frontend, conv_layers=SMALL_CONV, dim=32, heads=2, pos_conv_groups=4)
    module = ConvFrontend(config) if frontend == "conv" else FbankFrontend(config)
    lengths = torch.arange(0, 20_000, 7)
    assert module.frame_lengths(lengths).tolist() == [expected_frames(n) for n in lengths.tolist()]
    for num_samples in (399, 400, 719, 720, 16_000, 16_239, 16_240):
        features = module(torch.randn(2, num_samples))
        assert features.shape == (2, expected_frames(num_samples), module.output_dim)


def test_log_mel_peaks_at_the_frequency_of_a_tone() -> None:
    config = ModelConfig(frontend="fbank", dim=32, heads=2, pos_conv_groups=4)
    frontend = FbankFrontend(config)
    time = torch.arange(16_000) / 16_000
    tone = torch.sin(2 * math.pi * 1000.0 * time).unsqueeze(0)
    log_mel = frontend.log_mel(tone)  # (1, T, 2 · 80): two stacked 10 ms frames
    first_half = log_mel[0, :, :80].mean(0)
    filters = mel_filterbank(80, mel_scale="htk", fft_size=512, sample_rate=16_000, low_hz=20.0)
    centre_hz = (filters.argmax(0).float() * 16_000 / 512)[first_half.argmax()]
    assert abs(float(centre_hz) - 1000.0) <= 2 * 16_000 / 512
    assert log_mel.shape == (1, 49, 160)


@pytest.mark.parametrize("frame", [0, 7, 47])
def test_fbank_frame_t_is_centred_at_fastabx_frame_time(frame: int) -> None:
    config = ModelConfig(frontend="fbank", dim=32, heads=2, pos_conv_groups=4)
    wav = torch.zeros(1, 15_600)  # 48 frames
    centre = round((0.01 + 0.02 * frame) * 16_000)
    wav[0, centre - 20 : centre + 20] = torch.randn(40)
    energy = FbankFrontend(config).log_mel(wav)[0].exp().sum(-1)
    # Only frame t's 35 ms span (320·t − 120 … 320·t + 440) holds the burst; its neighbours stay silent.
    neighbours = [index for index in (frame - 1, frame + 1) if 0 <= index < 48]
    assert int(energy.argmax()) == frame
    assert all(float(energy[index]) < 1e-6 * float(energy[frame]) for index in neighbours)


def test_mel_filters_cover_the_spectrum_once() -> None:
    filters = mel_filterbank(80, mel_scale="htk", fft_size=512, sample_rate=16_000, low_hz=20.0)
    assert filters.shape == (257, 80)
    # Adjacent triangles overlap so that, between the first and last centre, their sum is exactly 1.
    centres = filters.argmax(0)
    inner = filters[int(centres[0]) + 1 : int(centres[-1])].sum(1)
    assert torch.allclose(inner, torch.ones_like(inner), atol=1e-5)


@pytest.mark.parametrize(("frontend", "norm"), [("conv", "group"), ("conv", "layer"), ("fbank", "group")])
def test_features_of_an_utterance_do_not_depend_on_batch_padding(frontend: str, norm: str) -> None:
    torch.manual_seed(0)
    config = ModelConfig(
        frontend=frontend, conv_layers=SMALL_CONV, conv_norm=norm, dim=32, heads=2, pos_conv_groups=4
    )
    module = ConvFrontend(config) if frontend == "conv" else FbankFrontend(config)
    short, long = torch.randn(5_000), torch.randn(9_000)
    batch = torch.zeros(2, 9_000)
    batch[0, :5_000], batch[1] = short, long
    alone = module(short.unsqueeze(0), torch.tensor([5_000]))
    padded = module(batch, torch.tensor([5_000, 9_000]))
    frames = expected_frames(5_000)
    assert torch.allclose(padded[0, :frames], alone[0], atol=1e-5)


@pytest.mark.parametrize("normalization", ["utterance", "none"])
def test_fbank_normalisation_is_blind_to_padding(normalization: str) -> None:
    torch.manual_seed(0)
    config = ModelConfig(
        frontend="fbank", fbank_normalization=normalization, dim=32, heads=2, pos_conv_groups=4
    )
    module = FbankFrontend(config)
    short, long = 3.0 * torch.randn(5_000), torch.randn(9_000)
    batch = torch.zeros(2, 9_000)
    batch[0, :5_000], batch[1] = short, long
    alone = module.features(short.unsqueeze(0), torch.tensor([5_000]))
    padded = module.features(batch, torch.tensor([5_000, 9_000]))
    frames = expected_frames(5_000)
    assert torch.allclose(padded[0, :frames], alone[0], atol=1e-4)
    assert not torch.allclose(padded[0, :frames], padded[1, :frames], atol=1e-2)  # the comparison can fail


def test_fbank_utterance_normalisation_standardises_each_bin_over_valid_frames() -> None:
    torch.manual_seed(1)
    config = ModelConfig(frontend="fbank", dim=32, heads=2, pos_conv_groups=4)
    module = FbankFrontend(config)
    wav = torch.zeros(2, 16_000)
    wav[0, :8_000] = 5.0 * torch.randn(8_000)  # a loud half second, then padding
    wav[1] = 0.01 * torch.randn(16_000)
    features = module.features(wav, torch.tensor([8_000, 16_000]))
    raw = module.log_mel(wav)
    for row, frames in enumerate((expected_frames(8_000), expected_frames(16_000))):
        mel = features[row, :frames].reshape(2 * frames, 80)
        assert torch.allclose(mel.mean(0), torch.zeros(80), atol=1e-4)
        assert torch.allclose(mel.var(0, unbiased=False), torch.ones(80), atol=1e-3)
        assert bool((features[row, frames:] == 0).all())
    # The two inputs differed in level by about 54 dB: the raw log-mel shows it, the normalised one not.
    frames = expected_frames(8_000)
    assert float(raw[0, :frames].mean() - raw[1, :frames].mean()) > 10.0


def test_waveform_normalisation_is_blind_to_padding_and_level() -> None:
    from vgssl.model.wav2vec2 import Wav2Vec2

    torch.manual_seed(2)
    config = ModelConfig(
        frontend="conv", conv_layers=SMALL_CONV, normalize_waveform=True, dim=32, layers=1, heads=2,
        pos_conv_groups=4, pos_conv_kernel=8, codevector_dim=16, final_dim=16, codebook_entries=8,
    )  # fmt: skip
    model = Wav2Vec2(config).eval()
    short = torch.randn(6_000) + 0.5
    batch = torch.zeros(2, 9_000)
    batch[0, :6_000], batch[1] = short, torch.randn(9_000)
    padding = torch.zeros(2, 9_000, dtype=torch.bool)
    padding[0, 6_000:] = True
    alone, _ = model.encode(short.unsqueeze(0))
    louder, _ = model.encode(40.0 * short.unsqueeze(0) - 3.0)
    padded, _ = model.encode(batch, padding)
    frames = expected_frames(6_000)
    for one, loud, in_batch in zip(alone, louder, padded, strict=True):
        assert torch.allclose(in_batch[0, :frames], one[0], atol=1e-4)
        assert torch.allclose(loud, one, atol=1e-3)
