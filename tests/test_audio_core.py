"""The audio core: the frame convention, padded batches, one log-mel behind the front-end and baselines."""

from __future__ import annotations

import ast
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import vgssl.corpus
from vgssl.audio import frames
from vgssl.audio.batch import pad_waveforms, valid_mask
from vgssl.audio.features import (
    MFCC_LOG_MEL,
    MODEL_LOG_MEL,
    LogMelSettings,
    fbank_features,
    log_mel,
    mel_filterbank,
    mfcc,
)
from vgssl.audio.frames import frame_count, frame_counts, frame_time
from vgssl.evaluate.features import BaselineModel
from vgssl.model.config import ModelConfig
from vgssl.model.frontend import ConvFrontend, FbankFrontend

SMALL_CONV = [(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2  # wav2vec 2.0's kernels and strides
TINY = {"dim": 32, "heads": 2, "pos_conv_groups": 4}
BOUNDARIES = [0, 1, 399, 400, 401, 719, 720, 721, 1039, 1040, 5_000, 16_000, 16_399, 16_400]


# --- the frame convention -------------------------------------------------------------------------------


def test_the_frame_convention_constants() -> None:
    assert (frames.SAMPLE_RATE, frames.FRAME_RATE) == (16_000, 50)
    assert (frames.WINDOW_SAMPLES, frames.HOP_SAMPLES, frames.SAMPLES_PER_FRAME) == (400, 320, 320)
    assert frames.FRAME_SHIFT == 0.02


@pytest.mark.parametrize(
    ("num_samples", "expected"),
    [(0, 0), (399, 0), (400, 1), (719, 1), (720, 2), (16_000, 49), (16_399, 50), (16_400, 51)],
)
def test_frame_count_known_answers(num_samples: int, expected: int) -> None:
    assert frame_count(num_samples) == expected
    assert int(frame_counts(torch.tensor(num_samples))) == expected


def test_frame_count_of_other_sample_rates_counts_the_resampled_audio() -> None:
    assert frame_count(8_000, sample_rate=8_000) == frame_count(16_000) == 49
    assert frame_count(22_050, 22_050) == 49
    assert frame_count(199, sample_rate=8_000) == 0  # 398 samples at 16 kHz


def test_frame_counts_is_frame_count_and_a_conv_output_length() -> None:
    lengths = torch.arange(0, 5_000)
    assert frame_counts(lengths).tolist() == [frame_count(n) for n in range(5_000)]
    conv = torch.nn.Conv1d(1, 1, 10, stride=5)
    for n in (10, 14, 15, 101):
        assert conv(torch.zeros(1, 1, n)).shape[-1] == int(frame_counts(torch.tensor(n), window=10, hop=5))
    assert int(frame_counts(torch.tensor(3), window=10, hop=5)) == 0


def test_frame_time_is_fastabx_half_shift_plus_index_shifts() -> None:
    assert frame_time(0) == 0.01 and frame_time(1) == 0.03
    assert math.isclose(frame_time(49), 0.99)
    assert np.allclose(frame_time(np.arange(100)), 0.01 + 0.02 * np.arange(100), atol=1e-15)


@pytest.mark.parametrize("frontend", ["conv", "fbank"])
def test_frame_count_is_the_length_of_both_front_ends(frontend: str) -> None:
    config = ModelConfig(frontend=frontend, conv_layers=SMALL_CONV, **TINY)
    module = ConvFrontend(config) if frontend == "conv" else FbankFrontend(config)
    lengths = torch.arange(0, 40_000, 13)
    assert module.frame_lengths(lengths).tolist() == [frame_count(n) for n in lengths.tolist()]
    for num_samples in BOUNDARIES:
        with torch.no_grad():
            assert module(torch.randn(1, num_samples)).shape[1] == frame_count(num_samples)


# --- padded batches -------------------------------------------------------------------------------------


def test_pad_waveforms_right_pads_float32_with_a_mask_and_lengths() -> None:
    waves = [np.arange(3, dtype=np.float32), np.zeros(0, np.float32), torch.ones(5, dtype=torch.float64)]
    wav, padding_mask, lengths = pad_waveforms(waves)
    assert wav.dtype == torch.float32 and wav.shape == (3, 5) and padding_mask.dtype == torch.bool
    assert wav[0].tolist() == [0, 1, 2, 0, 0] and wav[1].tolist() == [0] * 5 and wav[2].tolist() == [1] * 5
    assert lengths.tolist() == [3, 0, 5]
    assert torch.equal(padding_mask, ~valid_mask(lengths, 3, 5, torch.device("cpu")))
    empty = pad_waveforms([])
    assert empty.wav.shape == (0, 0) and empty.padding_mask.shape == (0, 0) and empty.lengths.shape == (0,)
    with pytest.raises(ValueError, match="mono"):
        pad_waveforms([np.zeros((2, 4), np.float32)])


# --- one log-mel ----------------------------------------------------------------------------------------


def test_the_two_log_mel_settings() -> None:
    assert (MODEL_LOG_MEL.num_mels, MODEL_LOG_MEL.windows_per_frame, MODEL_LOG_MEL.dim) == (80, 2, 160)
    assert (MFCC_LOG_MEL.num_mels, MFCC_LOG_MEL.windows_per_frame, MFCC_LOG_MEL.dim) == (40, 1, 40)
    with pytest.raises(ValueError, match="divide"):
        replace(MODEL_LOG_MEL, hop=150)
    silence = torch.zeros(1, 1_000)  # 2 frames
    assert torch.equal(log_mel(silence, MODEL_LOG_MEL), torch.full((1, 2, 160), math.log(1e-6)))
    assert torch.equal(log_mel(silence[0], MFCC_LOG_MEL), torch.full((2, 40), math.log(1e-10)))
    assert log_mel(torch.zeros(3, 399), MODEL_LOG_MEL).shape == (3, 0, 160)
    assert log_mel(torch.zeros(2, 3, 720), MFCC_LOG_MEL).shape == (2, 3, 2, 40)  # any leading dims


def test_log_mel_windows_read_zeros_outside_the_audio_and_match_a_direct_computation() -> None:
    settings = LogMelSettings(
        num_mels=8, mel_scale="htk", window="hann", hop=160, offset=-120, floor=1e-6, floor_mode="add"
    )
    wav = torch.randn(1_040, generator=torch.Generator().manual_seed(3), dtype=torch.float64)  # 3 frames
    padded = torch.cat([torch.zeros(120, dtype=torch.float64), wav, torch.zeros(200, dtype=torch.float64)])
    ours = log_mel(wav, settings)
    filters = mel_filterbank(8, mel_scale="htk").double()
    taper = torch.hann_window(400, periodic=False, dtype=torch.float64)
    for window in range(6):
        segment = padded[160 * window : 160 * window + 400] * taper
        expected = torch.log(torch.fft.rfft(segment, n=512).abs().square() @ filters + 1e-6)
        torch.testing.assert_close(ours[window // 2, 8 * (window % 2) : 8 * (window % 2) + 8], expected)


def test_analysis_tensors_made_under_inference_mode_still_serve_training() -> None:
    settings = replace(MODEL_LOG_MEL, num_mels=23)  # a fresh cache entry
    with torch.inference_mode():
        log_mel(torch.randn(1, 800), settings)
    wav = torch.randn(1, 800, requires_grad=True)
    log_mel(wav, settings).sum().backward()
    assert wav.grad is not None and bool(torch.isfinite(wav.grad).all())


# --- the fbank baseline is the model's input ------------------------------------------------------------


def _model_input(config: ModelConfig, wav: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    """What the Linear of a Wav2Vec2 model's fbank front-end reads during `encode`."""
    from vgssl.model.wav2vec2 import Wav2Vec2

    torch.manual_seed(0)
    model = Wav2Vec2(config)
    captured = []
    model.frontend.projection.register_forward_pre_hook(lambda _, args: captured.append(args[0].clone()))
    model.encode(wav, padding_mask)
    return captured[0]


def test_fbank_baseline_is_the_model_front_end_input_alone_and_padded_in_a_batch() -> None:
    config = ModelConfig(
        layers=1, ffn_dim=64, pos_conv_kernel=8, codevector_dim=16, final_dim=16, codebook_entries=8, **TINY
    )
    assert config.frontend == "fbank" and config.fbank_normalization == "utterance"
    frontend = FbankFrontend(config)
    generator = torch.Generator().manual_seed(5)
    lengths = [400, 3_333, 9_000, 12_345]
    waves = [0.1 * torch.randn(n, generator=generator) for n in lengths]
    waves[1] = 4.0 * waves[1]  # the per-utterance normalisation must not see the other rows' levels
    wav, padding_mask, num_samples = pad_waveforms(waves)
    wav = wav + 0.5 * padding_mask  # non-zero padding: the model zeroes it, the baseline never reads it
    baseline = BaselineModel("fbank")
    with torch.inference_mode():
        batched, batch_frames = baseline.encode(wav, padding_mask)
        in_model = _model_input(config, wav, padding_mask)
        in_batch = frontend.features(wav.masked_fill(padding_mask, 0.0), num_samples)
    assert batched[0].shape == (4, frame_count(max(lengths)), 160)
    assert batch_frames.tolist() == [frame_count(n) for n in lengths]
    for row, wave in enumerate(waves):
        valid = frame_count(lengths[row])
        with torch.inference_mode():
            alone, frames_alone = baseline.encode(wave[None], torch.zeros(1, len(wave), dtype=torch.bool))
            front_alone = frontend.features(wave[None], torch.tensor([len(wave)]))
        assert torch.equal(alone[0], front_alone)
        assert torch.equal(alone[0][0], fbank_features(wave[None])[0])
        assert int(frames_alone[0]) == valid
        assert torch.equal(batched[0][row, :valid], alone[0][0])
        assert bool((batched[0][row, valid:] == 0).all())
        torch.testing.assert_close(in_batch[row, :valid], alone[0][0], atol=1e-5, rtol=0)
        torch.testing.assert_close(in_model[row, :valid], alone[0][0], atol=1e-5, rtol=0)
    assert "160" in baseline.describe()["details"]


def test_mfcc_baseline_frames_follow_the_convention() -> None:
    for n in BOUNDARIES:
        assert mfcc(torch.randn(n), normalize=True).shape == (frame_count(n), 39)


def test_the_corpus_package_does_not_import_evaluate() -> None:
    for path in Path(vgssl.corpus.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("vgssl.evaluate"), f"{path} imports {node.module}"
            if isinstance(node, ast.Import):
                assert all(not a.name.startswith("vgssl.evaluate") for a in node.names), path
