"""Frozen, pretrained image features for every corpus image: the built-in corpus's detector features.

`write_image_features` samples pretraining scenes from a seed stream of their own (`stream(seed,
"image-pretraining", part)`, a namespace no split uses), drops any that equals a corpus scene by its JSON
(with continuous positions none is expected; the card counts them), renders them like the corpus images,
trains a `SceneEncoder` on their labels (`vgssl.corpus.image_pretrain`), measures it on a held-out part of
the pretraining scenes, and writes the features of every corpus image (train, valid and test) in the
`ImageFeatureStore` matrix layout:

    image_features/features.npy          (N, 384) float32 pooled embeddings: the default
    image_features/index.txt             the image id of row i on line i
    image_features/regions/features.npy  (N, 9, 128) float32: the cells of the encoder's 3 × 3 map
    image_features/regions/index.txt
    image_features/encoder.json          the card: architecture, pretraining images, held-out accuracy, dims

A VGS+ run uses them with `grounding.image_input: features`, `grounding.feature_dim: 384` and
`captions.image_features: CORPUS/image_features`. Pooled is the default: captions name spatial relations,
and the region features carry no position, which `FeatureImageEncoder`'s attention pooling does not add.

Corpus images are rendered from their scenes at the corpus's image size (the PNGs hold the same pixels) and
box-filtered to the encoder's input size, exactly like the pretraining images. Torch runs on one thread
(`FeatureSettings.threads`): on a busy 2-core machine two threads were 5× slower, and a fixed thread count
keeps the features bit-identical for a seed. Everything written is a deterministic function of the seed,
the corpus scenes and the settings; the wall time goes to the corpus card's `build` block.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from vgssl.atomic import atomic_write_json, atomic_write_text
from vgssl.corpus.images import render_scene
from vgssl.corpus.plan import SPLITS, stream
from vgssl.corpus.scenes import Scene, sample_scene
from vgssl.errors import VgsslError

if TYPE_CHECKING:
    from vgssl.corpus.image_pretrain import PretrainSettings
    from vgssl.corpus.plan import CorpusPlan

FEATURES_DIR = "image_features"
REGIONS_DIR = "regions"
ENCODER_CARD = "encoder.json"
FEATURES_FORMAT = "vgssl-image-features-v1"
SEED_NAMESPACE = "image-pretraining"


class ImageFeaturesError(VgsslError):
    """Pretraining or writing the image features cannot proceed (bad settings, unreadable corpus)."""


def _default_pretrain() -> PretrainSettings:
    from vgssl.corpus.image_pretrain import PretrainSettings

    return PretrainSettings()


@dataclass(frozen=True)
class FeatureSettings:
    """How many pretraining scenes, at which input size and on how many threads; `pretrain` is the encoder.

    `pretrain_images` scenes are seen once each (`pretrain.epochs` 1); `heldout_images` more measure accuracy.
    """

    pretrain_images: int = 45_000
    heldout_images: int = 1000
    input_size: int = 48
    threads: int = 1
    pretrain: PretrainSettings = field(default_factory=_default_pretrain)

    def __post_init__(self) -> None:
        if self.pretrain_images < 2 or self.heldout_images < 1:
            raise ImageFeaturesError(
                f"need at least 2 pretraining and 1 held-out image, got {self.pretrain_images} and "
                f"{self.heldout_images}"
            )
        if not 16 <= self.input_size <= 256:
            raise ImageFeaturesError(f"input_size must be between 16 and 256 pixels, got {self.input_size}")
        if self.threads < 1:
            raise ImageFeaturesError(f"threads must be at least 1, got {self.threads}")


# Corpora of at most TINY_CORPUS_IMAGES images (the --tiny preset has 33) pretrain on fewer scenes: seconds.
TINY_CORPUS_IMAGES = 100
TINY_PRETRAIN_IMAGES = 2000


def settings_for(num_images: int) -> FeatureSettings:
    """The default settings for a corpus of `num_images` images (all splits)."""
    if num_images <= TINY_CORPUS_IMAGES:
        return FeatureSettings(pretrain_images=TINY_PRETRAIN_IMAGES, heldout_images=300)
    return FeatureSettings()


@dataclass(frozen=True)
class FeatureResult:
    card: dict[str, Any]  # what encoder.json holds
    seconds: float

    def summary(self) -> dict[str, Any]:
        """What the corpus card repeats (deterministic: no time)."""
        accuracy = self.card["heldout_accuracy"]
        return {
            "path": FEATURES_DIR,
            "default": "pooled",
            "feature_dim": self.card["feature_dim"],
            "regions_shape": self.card["regions"]["shape"],
            "pretraining_images": self.card["pretraining"]["images"],
            "heldout_description_accuracy": accuracy["description_exact"],
            "heldout_chance_description_accuracy": accuracy["chance"]["description_exact"],
            "config": self.card["config"],
        }


def scene_key(scene: Scene) -> str:
    """A scene's canonical JSON: two scenes are the same scene exactly when their keys are equal."""
    return json.dumps(scene.to_json(), sort_keys=True)


def pretraining_scenes(seed: int, count: int, part: str, exclude: set[str]) -> tuple[list[Scene], int]:
    """`count` scenes of the pretraining namespace whose keys are not in `exclude` (each kept key is added to
    it, so parts drawn one after the other are disjoint), and the number of draws dropped."""
    rng = stream(seed, SEED_NAMESPACE, part)
    scenes: list[Scene] = []
    dropped = 0
    while len(scenes) < count:
        scene = sample_scene(rng)
        key = scene_key(scene)
        if key in exclude:
            dropped += 1
            continue
        exclude.add(key)
        scenes.append(scene)
    return scenes, dropped


def render_images(scenes: Sequence[Scene], *, image_size: int, input_size: int) -> np.ndarray:
    """(N, input_size, input_size, 3) uint8: scenes rendered at `image_size`, box-filtered to `input_size`."""
    out = np.empty((len(scenes), input_size, input_size, 3), dtype=np.uint8)
    for row, scene in enumerate(scenes):
        picture = render_scene(scene, size=image_size)
        if image_size != input_size:
            picture = picture.resize((input_size, input_size), Image.Resampling.BOX)
        out[row] = np.asarray(picture)
    return out


def corpus_scenes(corpus: str | os.PathLike[str]) -> list[tuple[str, Scene]]:
    """(image id, scene) of every image of a built corpus, read from its `captions_{split}.json`."""
    pairs = []
    for split in SPLITS:
        path = Path(corpus) / f"captions_{split}.json"
        if not path.is_file():
            raise ImageFeaturesError(f"{path} does not exist: is {corpus} a corpus built by `vgssl synth`?")
        for entry in json.loads(path.read_text(encoding="utf-8"))["data"]:
            if "scene" not in entry:
                raise ImageFeaturesError(f"{path}: image {entry.get('image_id')} has no scene labels")
            pairs.append((entry["image_id"], Scene.from_json(entry["scene"])))
    return pairs


def _write_matrix(root: Path, matrix: np.ndarray, ids: Sequence[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "features.npy", matrix, allow_pickle=False)
    atomic_write_text(root / "index.txt", "".join(f"{image_id}\n" for image_id in ids))


def write_image_features(
    images: Sequence[tuple[str, Scene]],
    out: str | os.PathLike[str],
    *,
    seed: int,
    image_size: int,
    settings: FeatureSettings | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> FeatureResult:
    """Pretrain the encoder on scenes disjoint from `images` (image id, scene) and write their features."""
    from vgssl.corpus import image_pretrain

    started = time.perf_counter()
    settings = settings or settings_for(len(images))
    pretrain = settings.pretrain
    ids = [image_id for image_id, _ in images]
    if len(set(ids)) != len(ids):
        raise ImageFeaturesError("image ids repeat; every corpus image needs its own id")
    exclude = {scene_key(scene) for _, scene in images}
    train_scenes, dropped = pretraining_scenes(seed, settings.pretrain_images, "train", exclude)
    heldout_scenes, dropped_heldout = pretraining_scenes(seed, settings.heldout_images, "heldout", exclude)

    def render(scenes: Sequence[Scene]) -> np.ndarray:
        return render_images(scenes, image_size=image_size, input_size=settings.input_size)

    log(
        f"pretraining the image encoder on {len(train_scenes)} scenes of its own at "
        f"{settings.input_size} px, then encoding {len(images)} corpus images"
    )
    torch_seed = int(stream(seed, SEED_NAMESPACE, "torch").integers(2**31))
    with image_pretrain.torch_threads(settings.threads):
        model, losses = image_pretrain.train_encoder(
            train_scenes, render, seed=torch_seed, settings=pretrain, log=log
        )
        _, _, predicted = image_pretrain.encode(model, render(heldout_scenes))
        regions, pooled, _ = image_pretrain.encode(model, render([scene for _, scene in images]))
    heldout = image_pretrain.accuracy(
        predicted,
        np.stack([image_pretrain.scene_targets(s) for s in heldout_scenes]),
        np.stack([image_pretrain.scene_targets(s) for s in train_scenes]),
    )
    root = Path(out)
    _write_matrix(root, pooled, ids)
    _write_matrix(root / REGIONS_DIR, regions, ids)
    card = _card(settings, model, pooled, regions, image_size=image_size, seed=seed, num_images=len(ids)) | {
        "pretraining": {
            "seed_namespace": f"stream(seed, {SEED_NAMESPACE!r}, 'train' | 'heldout' | 'torch')",
            "images": len(train_scenes),
            "heldout_images": len(heldout_scenes),
            "draws_dropped_as_equal_to_a_corpus_scene": dropped + dropped_heldout,
            "settings": {**asdict(pretrain), "input_size": settings.input_size, "threads": settings.threads},
            "loss_per_epoch": [round(loss, 4) for loss in losses],
        },
        "heldout_accuracy": heldout.to_json(),
    }
    atomic_write_json(root / ENCODER_CARD, card)
    seconds = round(time.perf_counter() - started, 1)
    log(
        f"image features written in {seconds} s; held-out description accuracy "
        f"{100 * heldout.description:.1f} % (majority baseline {100 * heldout.chance_description:.1f} %)"
    )
    return FeatureResult(card, seconds)


def _card(
    settings: FeatureSettings,
    model: Any,
    pooled: np.ndarray,
    regions: np.ndarray,
    *,
    image_size: int,
    seed: int,
    num_images: int,
) -> dict[str, Any]:
    from vgssl.corpus.image_pretrain import CELL_HEADS, HEADS

    pretrain = settings.pretrain
    dim = int(pooled.shape[1])
    return {
        "format": FEATURES_FORMAT,
        "default": "pooled",
        "feature_dim": dim,
        "images": num_images,
        "pooled": {"files": "features.npy + index.txt", "shape": [dim]},
        "regions": {
            "files": f"{REGIONS_DIR}/features.npy + {REGIONS_DIR}/index.txt",
            "shape": list(regions.shape[1:]),
            "meaning": "the cells of the last block's map in row-major order; they carry no position",
        },
        "encoder": {
            "architecture": (
                f"{len(pretrain.channels)} x [conv 3x3, batch norm (not in block 1), ReLU, max pool 2x2], "
                f"channels {list(pretrain.channels)}; adaptive average pool to "
                f"{pretrain.grid}x{pretrain.grid} (the regions); flatten; linear -> {pretrain.embed_dim} "
                "+ ReLU (the pooled embedding); "
                f"linear heads on the embedding {dict(HEADS)}; a linear head per region "
                f"(objectness, {dict(CELL_HEADS)})"
            ),
            "parameters": sum(p.numel() for p in model.parameters()),
            "input": f"scenes rendered at {image_size} px, box-filtered to {settings.input_size} px, "
            "ImageNet-standardised",
            "targets": "per spatial slot (top-to-bottom for 'above', left-to-right for 'left of' and "
            "'next to', else quadrant reading order) shape, colour, size and count with a 'none' class; the "
            "relation of slot 0 to slot 1; the number of groups; per region cell the object centred in it",
        },
        "seed": seed,
        "config": {
            "grounding.image_input": "features",
            "grounding.feature_dim": dim,
            "captions.image_features": f"CORPUS/{FEATURES_DIR}",
        },
    }


def write_corpus_image_features(
    plan: CorpusPlan, root: str | os.PathLike[str], *, log: Callable[[str], None] = lambda _: None
) -> FeatureResult:
    """The features of every image of `plan`, in `root / image_features` (what `build_corpus` calls)."""
    return write_image_features(
        [(image.image_id, image.scene) for image in plan.images],
        Path(root) / FEATURES_DIR,
        seed=plan.spec.seed,
        image_size=plan.spec.image_size,
        log=log,
    )
