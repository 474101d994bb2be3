"""`vgssl image-features`: features of a local transformers vision model, checked against the model itself,
resumed after an interruption, and trained on by a VGS+ run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tiny_models import TINY_MODEL
from vgssl.cli import main
from vgssl.corpus.build import build_corpus
from vgssl.corpus.spec import make_spec
from vgssl.data.images import ImageFeatureStore
from vgssl.prepare import feature_chunks
from vgssl.train.metrics import read_metrics

SPLITS = ("train", "valid", "test")
TINY_GROUNDING = {"joint_dim": 32, "pool_heads": 2}  # features in: no image CNN settings


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny"
    build_corpus(make_spec(tiny=True), path, workers=2, progress=False, log=lambda _: None)
    return path


def save_model(directory: Path, model: torch.nn.Module, *, processor: bool = True) -> Path:
    from transformers import ViTImageProcessor

    torch.manual_seed(0)
    model.save_pretrained(directory)
    if processor:
        ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    return save_model(tmp_path_factory.mktemp("vit"), ViTModel(config))


def captions(corpus: Path) -> list[str]:
    return [str(corpus / f"captions_{split}.json") for split in SPLITS]


def image_ids(corpus: Path) -> list[str]:
    return [
        entry["image_id"]
        for split in SPLITS
        for entry in json.loads((corpus / f"captions_{split}.json").read_text())["data"]
    ]


def direct(model_dir: Path, paths: list[Path]):
    """The model's own outputs on the images: what the features must equal."""
    from transformers import AutoImageProcessor, AutoModel

    processor = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    images = [Image.open(path).convert("RGB") for path in paths]
    with torch.inference_mode():
        return model(**processor(images=images, return_tensors="pt"))


def features(*argv: object) -> int:
    return main(["image-features", *[str(a) for a in argv], "--no-progress"])


def test_features_of_every_image_equal_a_direct_forward_of_the_model(
    corpus: Path, vit: Path, tmp_path: Path
) -> None:
    out = tmp_path / "features"
    assert (
        features(*captions(corpus), "--model", vit, "--out", out, "--batch-size", 4, "--chunk-size", 10) == 0
    )
    ids = image_ids(corpus)
    assert (out / "index.txt").read_text().split() == ids == (out / "regions/index.txt").read_text().split()
    pooled, regions = np.load(out / "features.npy"), np.load(out / "regions/features.npy")
    assert pooled.shape == (len(ids), 32) and regions.shape == (len(ids), 16, 32)
    assert pooled.dtype == np.float32 and not (out / ".partial").exists()

    rows = [0, 13, len(ids) - 1]
    entries = {
        e["image_id"]: e
        for s in SPLITS
        for e in json.loads((corpus / f"captions_{s}.json").read_text())["data"]
    }
    output = direct(vit, [corpus / entries[ids[row]]["image"] for row in rows])
    np.testing.assert_allclose(pooled[rows], output.pooler_output.numpy(), atol=1e-5)
    np.testing.assert_allclose(regions[rows], output.last_hidden_state[:, 1:].numpy(), atol=1e-5)

    card = json.loads((out / "encoder.json").read_text())
    weights = hashlib.sha256((vit / "model.safetensors").read_bytes()).hexdigest()
    encoder = card["encoder"]
    assert encoder["weights_sha256"] == {"model.safetensors": weights} and encoder["model_dir"] == str(vit)
    assert (encoder["config_class"], encoder["model_type"], encoder["model_class"]) == (
        "ViTConfig",
        "vit",
        "ViTModel",
    )
    assert card["images"] == len(ids) and card["feature_dim"] == 32 and card["dtype"] == "float32"
    assert card["pooled"]["pooling"] == "pooler_output of ViTModel"
    assert card["regions"]["shape"] == [16, 32] and "4 x 4 patch tokens" in card["regions"]["meaning"]
    assert card["config"] == {
        "grounding.image_input": "features",
        "grounding.feature_dim": 32,
        "captions.image_features": str(out),
    }
    store = ImageFeatureStore(out, dim=32)
    np.testing.assert_array_equal(store.read(ids[13]), pooled[13])
    assert main(["check-images", captions(corpus)[0], "--image-features", str(out), "--dim", "32"]) == 0


def test_mean_pooling_a_region_grid_half_precision_and_a_cnn(corpus: Path, vit: Path, tmp_path: Path) -> None:
    from transformers import ResNetConfig, ResNetModel

    out = tmp_path / "mean"
    options = ["--pooling", "mean", "--region-grid", 2, "--dtype", "float16"]
    assert features(captions(corpus)[2], "--model", vit, "--out", out, *options) == 0
    first = json.loads((corpus / "captions_test.json").read_text())["data"][0]
    tokens = direct(vit, [corpus / first["image"]]).last_hidden_state[0, 1:]  # (16, 32): a 4 x 4 grid
    grid = tokens.reshape(2, 2, 2, 2, 32).mean(dim=(1, 3)).reshape(4, 32)  # 2 x 2 cells of 2 x 2 patches
    pooled, regions = np.load(out / "features.npy"), np.load(out / "regions/features.npy")
    assert pooled.dtype == regions.dtype == np.float16 and regions.shape[1:] == (4, 32)
    np.testing.assert_allclose(pooled[0], tokens.mean(0).numpy(), atol=2e-3)
    np.testing.assert_allclose(regions[0], grid.numpy(), atol=2e-3)

    torch.manual_seed(0)
    cnn = ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"))
    resnet = save_model(tmp_path / "resnet", cnn)
    assert features(captions(corpus)[2], "--model", resnet, "--out", tmp_path / "cnn", "--no-regions") == 0
    output = direct(resnet, [corpus / first["image"]])
    np.testing.assert_allclose(
        np.load(tmp_path / "cnn/features.npy")[0], output.pooler_output.flatten(1)[0].numpy(), atol=1e-5
    )
    assert not (tmp_path / "cnn/regions").exists()
    assert (
        features(captions(corpus)[2], "--model", resnet, "--out", tmp_path / "cnn2", "--chunk-size", 3) == 0
    )
    assert np.load(tmp_path / "cnn2/regions/features.npy").shape[1:] == (
        output.last_hidden_state.shape[2] ** 2,
        16,
    )


def test_an_interrupted_run_resumes_from_its_chunks(
    corpus: Path, vit: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    reference = tmp_path / "reference"
    assert features(*captions(corpus), "--model", vit, "--out", reference, "--batch-size", 8) == 0
    encode = feature_chunks.encode_chunk
    calls: list[int] = []

    def interrupted_after_two_chunks(*args, **kwargs):
        calls.append(len(args[1]))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return encode(*args, **kwargs)

    monkeypatch.setattr(feature_chunks, "encode_chunk", interrupted_after_two_chunks)
    out = tmp_path / "features"
    argv = [*captions(corpus), "--model", vit, "--out", out, "--batch-size", 8, "--chunk-size", 8]
    assert features(*argv) == 130
    assert sorted(p.name for p in (out / ".partial").glob("pooled-*")) == [
        "pooled-000000.npy",
        "pooled-000001.npy",
    ]
    assert not (out / "features.npy").exists() and not (out / "encoder.json").exists()

    # Other options on the unfinished work are refused; the same command (a smaller batch is allowed: it
    # changes only the speed) finishes it from chunk 2.
    assert features(*argv, "--pooling", "mean") == 2
    assert "other options" in capsys.readouterr().err
    calls.clear()
    monkeypatch.setattr(
        feature_chunks, "encode_chunk", lambda *a, **k: calls.append(len(a[1])) or encode(*a, **k)
    )
    assert features(*argv, "--batch-size", 3) == 0
    chunks = (len(image_ids(corpus)) + 7) // 8
    assert len(calls) == chunks - 2
    for name in ("features.npy", "regions/features.npy"):
        np.testing.assert_allclose(np.load(out / name), np.load(reference / name), atol=1e-5)
    assert not (out / ".partial").exists()

    assert features(*argv) == 2  # finished features are not overwritten ...
    assert "already holds image features" in capsys.readouterr().err
    assert features(*argv, "--overwrite", "--no-regions") == 0  # ... unless asked to
    assert not (out / "regions/features.npy").exists()


def test_bad_inputs_are_named_errors(
    corpus: Path, vit: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from transformers import ViTConfig, ViTModel

    bare = save_model(tmp_path / "bare", ViTModel(ViTConfig.from_pretrained(vit)), processor=False)
    assert features(captions(corpus)[2], "--model", bare, "--out", tmp_path / "a") == 2
    assert "has no preprocessor_config.json" in capsys.readouterr().err
    assert features(captions(corpus)[2], "--model", tmp_path / "none", "--out", tmp_path / "a") == 2
    assert "is not a directory" in capsys.readouterr().err

    document = json.loads((corpus / "captions_test.json").read_text())
    for entry in document["data"]:
        entry["image"] = str(corpus / entry["image"])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    document["data"][3]["image"] = str(broken)
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(document))
    assert features(path, "--model", vit, "--out", tmp_path / "b") == 2
    err = capsys.readouterr().err
    assert f"cannot read image {broken}" in err and "captions.json: data[3]" in err

    document["data"][5]["image"] = str(tmp_path / "missing.png")
    path.write_text(json.dumps(document))
    assert features(path, "--model", vit, "--out", tmp_path / "b") == 2
    err = capsys.readouterr().err
    assert "missing.png (" in err and "captions.json: data[5]" in err and "do not exist" in err
    path.write_text(json.dumps({"images": []}))
    assert features(path, "--model", vit, "--out", tmp_path / "b") == 2
    assert 'expected {"data": [...]}' in capsys.readouterr().err


def test_a_vgs_run_trains_from_the_features(corpus: Path, vit: Path, tmp_path: Path) -> None:
    out = tmp_path / "features"
    assert features(*captions(corpus), "--model", vit, "--out", out) == 0
    card = json.loads((out / "encoder.json").read_text())
    manifests = corpus / "manifests"
    config = {
        "run_dir": str(tmp_path / "run"),
        "max_steps": 4,
        "model": dict(TINY_MODEL),
        "data": {
            "train": [{"manifest": str(manifests / f"{lang}_train.tsv")} for lang in ("en", "fr")],
            "valid": [{"manifest": str(manifests / "en_valid.tsv")}],
            "max_seconds": 2.0,
            "batch_seconds": 8.0,
        },
        "optim": {"lr": 0.002, "warmup_steps": 2},
        "checkpoint": {"every": 2, "keep_last": 1},
        "logging": {"every": 1, "valid_every": 2, "tensorboard": False, "progress": False},
        "grounding": {
            **TINY_GROUNDING,
            "image_input": card["config"]["grounding.image_input"],
            "feature_dim": card["config"]["grounding.feature_dim"],
        },
        "captions": {
            "train": [{"captions": captions(corpus)[0]}],
            "valid": {"captions": captions(corpus)[1]},
            "image_features": card["config"]["captions.image_features"],
            "pairs_per_batch": 4,
        },
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path)]) == 0
    records = [r for r in read_metrics(tmp_path / "run/metrics.jsonl") if r["split"] == "train"]
    assert [r["step"] for r in records][-1] == 4
    assert all(np.isfinite(r["vg_loss"]) and r["vg_loss"] > 0 for r in records)
