"""Pretrained image features of the built-in corpus: disjoint scenes, determinism, coverage, learning."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from vgssl.corpus import image_pretrain
from vgssl.corpus.build import build_corpus
from vgssl.corpus.card import read_card
from vgssl.corpus.image_features import (
    ENCODER_CARD,
    FEATURES_DIR,
    REGIONS_DIR,
    TINY_PRETRAIN_IMAGES,
    FeatureSettings,
    corpus_scenes,
    pretraining_scenes,
    render_images,
    scene_key,
    write_image_features,
)
from vgssl.corpus.plan import SPLITS, plan_corpus
from vgssl.corpus.scenes import Scene
from vgssl.corpus.spec import make_spec
from vgssl.data.images import FeatureShapeError, ImageFeatureStore

SMALL = FeatureSettings(pretrain_images=256, heldout_images=64)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny"
    build_corpus(make_spec(tiny=True, clean=True), path, workers=2, progress=False, log=lambda _: None)
    return path


def test_pretraining_scenes_are_disjoint_from_every_split(corpus: Path) -> None:
    card = json.loads((corpus / FEATURES_DIR / ENCODER_CARD).read_text())
    pretraining = card["pretraining"]
    corpus_keys = {scene_key(scene) for _, scene in corpus_scenes(corpus)}
    assert len(corpus_keys) == sum(read_card(corpus)["images"].values())
    train, _ = pretraining_scenes(card["seed"], pretraining["images"], "train", set())
    heldout, _ = pretraining_scenes(card["seed"], pretraining["heldout_images"], "heldout", set())
    train_keys, heldout_keys = {scene_key(s) for s in train}, {scene_key(s) for s in heldout}
    assert len(train_keys) == pretraining["images"] == TINY_PRETRAIN_IMAGES
    assert not corpus_keys & train_keys and not corpus_keys & heldout_keys and not train_keys & heldout_keys
    assert pretraining["draws_dropped_as_equal_to_a_corpus_scene"] == 0
    # The guard itself: a draw equal to an excluded scene is dropped and replaced by the next draw.
    first = scene_key(train[0])
    again, dropped = pretraining_scenes(card["seed"], 3, "train", {first})
    assert dropped == 1 and first not in {scene_key(s) for s in again}
    assert [scene_key(s) for s in again] == [scene_key(s) for s in train[1:4]]


def test_features_cover_every_image_of_every_split_with_the_card_dim(corpus: Path) -> None:
    summary = read_card(corpus)["image_features"]
    encoder_card = json.loads((corpus / FEATURES_DIR / ENCODER_CARD).read_text())
    dim = summary["feature_dim"]
    assert dim == encoder_card["feature_dim"] == encoder_card["config"]["grounding.feature_dim"]
    pooled = ImageFeatureStore(corpus / FEATURES_DIR, dim=dim)
    regions = ImageFeatureStore(corpus / FEATURES_DIR / REGIONS_DIR, dim=encoder_card["regions"]["shape"][-1])
    assert pooled.layout == regions.layout == "matrix"
    for split in SPLITS:
        data = json.loads((corpus / f"captions_{split}.json").read_text())["data"]
        assert data
        for entry in data:
            vector = pooled.read(entry["image_id"])
            assert vector.shape == (dim,) and vector.dtype == np.float32 and np.isfinite(vector).all()
            assert list(regions.read(entry["image_id"]).shape) == encoder_card["regions"]["shape"]
    with pytest.raises(FeatureShapeError, match=r"grounding\.feature_dim"):
        ImageFeatureStore(corpus / FEATURES_DIR, dim=dim + 1)


def test_same_seed_gives_identical_features_and_another_seed_differs(tmp_path: Path) -> None:
    plan = plan_corpus(make_spec(tiny=True))
    images = [(image.image_id, image.scene) for image in plan.images]
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        write_image_features(images, tmp_path / name, seed=seed, image_size=64, settings=SMALL)
    files = ["features.npy", "index.txt", ENCODER_CARD, f"{REGIONS_DIR}/features.npy"]
    for file in files:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    assert not np.array_equal(
        np.load(tmp_path / "a" / "features.npy"), np.load(tmp_path / "c" / "features.npy")
    )


def test_pretrained_encoder_beats_the_majority_baseline_on_held_out_scenes() -> None:
    """The tiny setting's training, measured on held-out scenes against a baseline computed here."""
    train, _ = pretraining_scenes(0, TINY_PRETRAIN_IMAGES, "train", set())
    heldout, _ = pretraining_scenes(0, 300, "heldout", set())

    def render(scenes: Sequence[Scene]) -> np.ndarray:
        return render_images(scenes, image_size=64, input_size=48)

    with image_pretrain.torch_threads(1):
        model, losses = image_pretrain.train_encoder(train, render, seed=0)
        _, pooled, predicted = image_pretrain.encode(model, render(heldout))
    assert pooled.shape == (300, image_pretrain.PretrainSettings().embed_dim)
    truth = np.stack([image_pretrain.scene_targets(s) for s in heldout])
    train_truth = np.stack([image_pretrain.scene_targets(s) for s in train])
    model_accuracy = (predicted == truth).mean(0)
    majority = [Counter(column.tolist()).most_common(1)[0][0] for column in train_truth.T]
    chance = (truth == np.array(majority)[None, :]).mean(0)
    colour, size = image_pretrain.HEAD_INDEX["slot0_colour"], image_pretrain.HEAD_INDEX["slot0_size"]
    assert model_accuracy[colour] > 2 * chance[colour]  # 8 colours: chance about 1/8
    assert model_accuracy[size] > chance[size] + 0.05
    assert model_accuracy.mean() > chance.mean() + 0.03
    assert np.isfinite(losses).all()
