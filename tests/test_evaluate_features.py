import json
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import torch

from vgssl.audio.features import deltas, mfcc
from vgssl.audio.frames import frame_count
from vgssl.audio.io import write_wav
from vgssl.cli import main
from vgssl.data.manifest import ManifestEntry, write_manifest
from vgssl.evaluate.features import BaselineModel, UnsupportedModelError, load_feature_model

LENGTHS = [399, 400, 719, 720, 16_000, 16_123]


def _reference_static_mfcc(wav: np.ndarray, frame: int) -> np.ndarray:
    """13 MFCCs of one frame, straight from the textbook: numpy FFT, mel triangles, scipy's DCT-II."""
    emphasised = np.append(wav[0], wav[1:] - 0.97 * wav[:-1])
    segment = emphasised[320 * frame : 320 * frame + 400] * np.hamming(400)
    power = np.abs(np.fft.rfft(segment, 512)) ** 2
    mel = lambda hz: 1127.0 * np.log(1.0 + hz / 700.0)  # noqa: E731
    bins = mel(np.linspace(0.0, 8000.0, 257))
    edges = np.linspace(mel(20.0), mel(8000.0), 42)
    bank = np.stack(
        [
            np.clip(np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), 0.0, None)
            for lo, mid, hi in zip(edges[:-2], edges[1:-1], edges[2:], strict=True)
        ]
    )
    return scipy.fft.dct(np.log(np.maximum(bank @ power, 1e-10)), type=2, norm="ortho")[:13]


def test_mfcc_matches_a_direct_numpy_dct_of_log_mel_energies() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    ours = mfcc(torch.from_numpy(wav), normalize=False)
    assert ours.shape == (frame_count(wav.size), 39)
    for frame in (0, 7, ours.shape[0] - 1):
        expected = _reference_static_mfcc(wav.astype(np.float64), frame)
        np.testing.assert_allclose(ours[frame, :13].numpy(), expected, rtol=1e-4, atol=2e-3)


def test_deltas_of_a_ramp_are_its_slope_and_normalised_mfcc_is_standardised() -> None:
    ramp = torch.arange(20, dtype=torch.float32)[:, None] * torch.tensor([[0.5, -2.0]])
    first = deltas(ramp)
    torch.testing.assert_close(first[2:-2], torch.tensor([[0.5, -2.0]]).expand(16, 2))
    torch.testing.assert_close(deltas(first)[4:-4], torch.zeros(12, 2))
    features = mfcc(torch.randn(16_000), normalize=True)
    torch.testing.assert_close(features.mean(0), torch.zeros(39), atol=1e-4, rtol=0)
    torch.testing.assert_close(features.std(0, unbiased=False), torch.ones(39), atol=1e-3, rtol=0)


def _tiny_hf(tmp_path: Path, *, model_type: str = "wav2vec2", norm: str = "layer") -> Path:
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model

    config_class, model_class = {
        "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),
        "hubert": (HubertConfig, HubertModel),
    }[model_type]
    config = config_class(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm=norm,
        do_stable_layer_norm=norm == "layer",
    )  # fmt: skip
    torch.manual_seed(0)
    directory = tmp_path / f"hf-{model_type}-{norm}"
    model_class(config).save_pretrained(directory)
    return directory


def _tiny_vgssl(tmp_path: Path) -> Path:
    from vgssl.model.config import ModelConfig
    from vgssl.model.pretrained import CHECKPOINT_FORMAT
    from vgssl.model.wav2vec2 import Wav2Vec2

    config = ModelConfig(
        dim=32, layers=2, heads=2, ffn_dim=64, pos_conv_groups=4, codevector_dim=32, final_dim=32
    )
    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    model = Wav2Vec2(config)
    torch.save(
        {"format": CHECKPOINT_FORMAT, "model_config": config.model_dump(), "model": model.state_dict()}, path
    )
    return path


def test_every_model_kind_yields_the_same_frame_count(tmp_path: Path) -> None:
    models = [
        BaselineModel("mfcc"),
        BaselineModel("fbank"),
        load_feature_model(str(_tiny_hf(tmp_path))),
        load_feature_model(str(_tiny_vgssl(tmp_path))),
    ]
    lengths = torch.tensor(LENGTHS)
    wav = torch.randn(len(LENGTHS), max(LENGTHS)) * 0.1
    padding = torch.arange(max(LENGTHS))[None, :] >= lengths[:, None]
    expected = [frame_count(n) for n in LENGTHS]
    assert expected[:4] == [0, 1, 1, 2]
    for model in models:
        with torch.inference_mode():
            hidden, frames = model.encode(wav * ~padding, padding)
        assert frames.tolist() == expected, model.describe()
        assert hidden[0].shape[:2] == (len(LENGTHS), max(expected))


def _audio_corpus(tmp_path: Path, seconds: list[float]) -> Path:
    rng = np.random.default_rng(1)
    entries = []
    for index, duration in enumerate(seconds):
        relpath = f"spk{index % 2}/utt{index}.wav"
        samples = round(duration * 16000)
        write_wav(tmp_path / "audio" / relpath, 0.1 * rng.standard_normal(samples).astype(np.float32))
        entries.append(ManifestEntry(relpath, samples, "en", f"spk{index % 2}"))
    write_manifest(tmp_path / "test.tsv", tmp_path / "audio", entries)
    return tmp_path / "test.tsv"


def test_extract_writes_per_layer_tensors_skips_existing_and_records_the_model(tmp_path: Path) -> None:
    manifest = _audio_corpus(tmp_path, [0.5, 1.3, 0.8])
    out = tmp_path / "feats"
    assert main(["extract", "mfcc", str(manifest), str(out)]) == 0
    tensor = torch.load(out / "0" / "spk1" / "utt1.pt", weights_only=True)
    assert tensor.dtype == torch.float32 and tensor.is_contiguous()
    assert tensor.shape == (frame_count(round(1.3 * 16000)), 39)
    assert tensor.untyped_storage().nbytes() == tensor.numel() * 4  # holds its own frames only
    card = json.loads((out / "features.json").read_text())
    assert card["model"]["name"] == "mfcc" and card["layers"] == [0] and card["frame_rate"] == 50

    stamp = (out / "0" / "spk1" / "utt1.pt").stat().st_mtime_ns
    assert main(["extract", "mfcc", str(manifest), str(out)]) == 0
    assert (out / "0" / "spk1" / "utt1.pt").stat().st_mtime_ns == stamp
    assert main(["extract", "mfcc", str(manifest), str(out), "--overwrite"]) == 0
    assert (out / "0" / "spk1" / "utt1.pt").stat().st_mtime_ns != stamp
    assert main(["extract", "fbank", str(manifest), str(out)]) == 2  # another model: refused


@pytest.mark.parametrize("norm", ["layer", "group"])
def test_batched_hf_extraction_equals_one_utterance_at_a_time(tmp_path: Path, norm: str) -> None:
    from transformers import Wav2Vec2Model

    from vgssl.audio.io import read_audio

    manifest = _audio_corpus(tmp_path, [0.5, 1.3, 0.8])
    model_dir = _tiny_hf(tmp_path, norm=norm)
    out = tmp_path / "feats"
    assert (
        main(["extract", str(model_dir), str(manifest), str(out), "--layers", "0,2", "--device", "cpu"]) == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["0", "2", "features.json"]
    reference = Wav2Vec2Model.from_pretrained(model_dir).eval()
    for index in range(3):
        wav = torch.from_numpy(read_audio(tmp_path / "audio" / f"spk{index % 2}/utt{index}.wav"))[None]
        with torch.inference_mode():
            output = reference(wav, output_hidden_states=True)
        # the last layer is the encoder's output (after the final LayerNorm in the pre-LN layout)
        expected = [*output.hidden_states[:-1], output.last_hidden_state]
        for layer in (0, 2):
            ours = torch.load(out / str(layer) / f"spk{index % 2}/utt{index}.pt", weights_only=True)
            torch.testing.assert_close(ours, expected[layer][0], atol=1e-5, rtol=1e-4)


def test_vgssl_checkpoint_extraction_equals_model_encode(tmp_path: Path) -> None:
    from vgssl.audio.io import read_audio
    from vgssl.model.pretrained import load_model

    manifest = _audio_corpus(tmp_path, [0.6, 1.1])
    checkpoint = _tiny_vgssl(tmp_path)
    out = tmp_path / "feats"
    assert main(["extract", str(checkpoint), str(manifest), str(out), "--device", "cpu"]) == 0
    assert json.loads((out / "features.json").read_text())["layers"] == [0, 1, 2]
    model = load_model(checkpoint)
    wav = torch.from_numpy(read_audio(tmp_path / "audio" / "spk1/utt1.wav"))[None]
    with torch.inference_mode():
        hidden, _ = model.encode(wav)
    torch.testing.assert_close(torch.load(out / "2" / "spk1/utt1.pt", weights_only=True), hidden[2][0])


def test_extract_resolves_item_file_keys_against_the_corpus_audio_dir(tmp_path: Path) -> None:
    _audio_corpus(tmp_path, [0.5, 0.7])
    items = tmp_path / "items" / "en_test_phoneme.item"
    items.parent.mkdir()
    items.write_text(
        "#file onset offset #phone prev-phone next-phone speaker\nspk1/utt1 0.1 0.2 a b c spk1\n"
    )
    out = tmp_path / "feats"
    assert main(["extract", "mfcc-raw", str(items), str(out)]) == 0
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.pt")] == ["0/spk1/utt1.pt"]
    items.write_text(items.read_text() + "nowhere/x 0.1 0.2 a b c spk1\n")
    assert main(["extract", "mfcc-raw", str(items), str(out)]) == 2


def test_unsupported_models_are_named_errors_that_say_what_was_found(tmp_path: Path) -> None:
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(UnsupportedModelError, match="model_type 'bert'"):
        load_feature_model(str(bert))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsupportedModelError, match="empty directory"):
        load_feature_model(str(tmp_path / "empty"))
    (tmp_path / "noise.pt").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UnsupportedModelError, match="neither a vgssl checkpoint"):
        load_feature_model(str(tmp_path / "noise.pt"))
    with pytest.raises(UnsupportedModelError, match="no such file"):
        load_feature_model(str(tmp_path / "missing"))


def _save_tiny_checkpoint(path: Path, *, seed: int, step: int) -> None:
    from vgssl.model.config import ModelConfig
    from vgssl.model.pretrained import CHECKPOINT_FORMAT
    from vgssl.model.wav2vec2 import Wav2Vec2

    config = ModelConfig(
        dim=32, layers=2, heads=2, ffn_dim=64, pos_conv_groups=4, codevector_dim=32, final_dim=32
    )
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "step": step, **Wav2Vec2(config).checkpoint_entries()}, path)


def test_features_of_a_run_trained_further_are_a_different_model(tmp_path: Path, capsys) -> None:
    manifest = _audio_corpus(tmp_path, [1.0, 1.5])
    run, out = tmp_path / "run", tmp_path / "features"
    _save_tiny_checkpoint(run / "checkpoints" / "last.pt", seed=0, step=10)
    assert main(["extract", str(run), str(manifest), str(out), "--device", "cpu"]) == 0
    before = {p.name: p.read_bytes() for p in (out / "1").rglob("*.pt")}
    card = json.loads((out / "features.json").read_text())
    assert card["model"]["checkpoint"]["step"] == 10 and len(card["model"]["checkpoint"]["sha256"]) == 64

    _save_tiny_checkpoint(run / "checkpoints" / "last.pt", seed=1, step=20)  # same path, trained further
    capsys.readouterr()
    assert main(["extract", str(run), str(manifest), str(out), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "(step 10, sha256" in error and "(step 20, sha256" in error and "--overwrite" in error
    assert {p.name: p.read_bytes() for p in (out / "1").rglob("*.pt")} == before  # nothing touched

    assert main(["extract", str(run), str(manifest), str(out), "--device", "cpu", "--overwrite"]) == 0
    assert json.loads((out / "features.json").read_text())["model"]["checkpoint"]["step"] == 20
    assert {p.name: p.read_bytes() for p in (out / "1").rglob("*.pt")} != before


def test_overwrite_replaces_every_layer_and_abx_reads_layers_from_the_card(tmp_path: Path) -> None:
    from vgssl.evaluate.abx import layer_dirs

    manifest = _audio_corpus(tmp_path, [1.0, 1.5])
    out = tmp_path / "features"
    checkpoint = _tiny_vgssl(tmp_path)
    assert main(["extract", str(checkpoint), str(manifest), str(out), "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["0", "1", "2"]
    assert main(["extract", "mfcc", str(manifest), str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["0"]  # no layer of the old model left
    assert list(layer_dirs(out)) == [0]
    (out / "7").mkdir()  # a stray directory is not a layer of the model the card describes
    assert list(layer_dirs(out)) == [0]
