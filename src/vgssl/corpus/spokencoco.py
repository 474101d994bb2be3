"""SpokenCOCO-style caption sets: images with spoken captions, and the images or image features they use.

Caption JSON (the built-in corpus's `captions_{split}.json`, or a real SpokenCOCO file):

    {"data": [{"image": "images/train/train-00001.png", "image_id": "train-00001",
               "captions": [{"wav": "audio/en/train/en-train-s00-c00001.wav", "uttid": "en-train-s00-c00001",
                             "lang": "en", "speaker": "s00", "text": "..."}, ...]}, ...]}

Only `image`, `captions` and each caption's `wav` are required. A missing `image_id` is the image file's
stem, a missing `uttid` the wav's stem, a missing `lang` the reader's `default_language` (real SpokenCOCO
has no language field). Paths are relative to the JSON's directory unless `audio_root` / `image_root` say
otherwise (real SpokenCOCO keeps its wavs and the COCO images in different trees).

Precomputed image features (made by any external encoder) come in one of two layouts, both a directory:

* one file per image: `DIR/{image_id}.npy` or `DIR/{image_id}.pt`;
* one matrix plus an index: `DIR/features.npy` (or `DIR/features.pt`) whose row i belongs to the image id on
  line i of `DIR/index.txt` (UTF-8, one id per line).

Each image's features are float arrays of shape (D,) — one embedding vector — or (R, D) — R region
features (FaST-VGS+ used R = 36 Faster R-CNN regions). Every image of a set must have the same shape, and D
must equal the dimension the model was configured with; anything else is a `FeatureShapeError`.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vgssl.errors import VgsslError

LOGGER = logging.getLogger(__name__)

FEATURE_MATRIX_NAMES = ("features.npy", "features.pt")
FEATURE_INDEX_NAME = "index.txt"
FEATURE_FILE_EXTENSIONS = (".npy", ".pt")
# Pixels are scaled to [0, 1] and standardised with the ImageNet channel statistics, the convention of
# every torchvision-style image encoder, so that external encoders and ours see comparable inputs.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

OnMissing = Literal["fail", "skip"]


class CaptionSetError(VgsslError):
    """A caption JSON cannot be read or an entry is malformed; the message names the file and entry."""


class MissingCaptionFileError(CaptionSetError):
    """A caption's wav or an entry's image does not exist (with `on_missing: fail`)."""


class BadImageError(VgsslError):
    """An image file exists but cannot be decoded."""


class FeatureShapeError(VgsslError):
    """Precomputed image features do not have the shape the model expects, or differ between images."""


class MissingFeaturesError(VgsslError):
    """A feature set has no features for some image of a caption set, or is not a feature set at all."""


@dataclass(frozen=True)
class Caption:
    uttid: str
    wav: Path
    language: str
    image_id: str
    speaker: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class CaptionedImage:
    image_id: str
    image: Path
    captions: tuple[Caption, ...]


@dataclass(frozen=True)
class CaptionSet:
    source: Path
    images: tuple[CaptionedImage, ...]
    # What `on_missing: skip` left out: "missing_wav" (captions), "missing_image" (images, their captions
    # included).
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def captions(self) -> list[Caption]:
        return [caption for image in self.images for caption in image.captions]

    @property
    def languages(self) -> list[str]:
        return sorted({caption.language for caption in self.captions})

    def summary(self) -> str:
        counts = Counter(caption.language for caption in self.captions)
        per_language = ", ".join(f"{language} {counts[language]}" for language in sorted(counts))
        text = f"{self.source}: {len(self.images)} images, captions {per_language or 'none'}"
        if any(self.skipped.values()):
            text += "; skipped " + ", ".join(
                f"{count} {why}" for why, count in sorted(self.skipped.items()) if count
            )
        return text


def read_caption_set(
    path: str | os.PathLike[str],
    *,
    languages: Sequence[str] | None = None,
    default_language: str | None = None,
    audio_root: str | os.PathLike[str] | None = None,
    image_root: str | os.PathLike[str] | None = None,
    on_missing: OnMissing = "fail",
    require_image_files: bool = True,
) -> CaptionSet:
    """Read a caption JSON, keep the captions in `languages` (all if None) and check their files exist.

    A missing wav or image raises `MissingCaptionFileError` naming the entry, or with `on_missing="skip"`
    drops the caption (missing wav) or the image and its captions (missing image) and counts it in `skipped`.
    `require_image_files=False` skips the image check, for models that read precomputed image features.
    Images left without captions in the wanted languages are dropped.
    """
    source = Path(path)
    entries = _load_entries(source)
    audio_base = Path(audio_root) if audio_root is not None else source.parent
    image_base = Path(image_root) if image_root is not None else source.parent
    wanted = set(languages) if languages is not None else None
    skipped = {"missing_wav": 0, "missing_image": 0}
    images: list[CaptionedImage] = []
    seen_images: dict[str, int] = {}
    seen_captions: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = f"{source}: data[{index}]"
        image_path, image_id, raw_captions = _entry_fields(entry, where)
        if image_id in seen_images:
            raise CaptionSetError(
                f"{where}: image id {image_id!r} already appears in data[{seen_images[image_id]}]; "
                "merge their captions into one entry"
            )
        seen_images[image_id] = index
        captions = []
        for number, raw in enumerate(raw_captions):
            caption = _parse_caption(
                raw, f"{where}.captions[{number}]", image_id, audio_base, default_language
            )
            if wanted is not None and caption.language not in wanted:
                continue
            if caption.uttid in seen_captions:
                raise CaptionSetError(
                    f"{where}: caption uttid {caption.uttid!r} already appears in "
                    f"data[{seen_captions[caption.uttid]}]; utterance ids must be unique"
                )
            seen_captions[caption.uttid] = index
            if not caption.wav.is_file():
                if on_missing == "fail":
                    raise MissingCaptionFileError(
                        f"{where} (image {image_id}): the wav of caption {caption.uttid} does not exist: "
                        f"{caption.wav}. Fix the path or the audio root, or skip such captions "
                        "(on_missing: skip)"
                    )
                skipped["missing_wav"] += 1
                continue
            captions.append(caption)
        image = (image_base / image_path).resolve()
        if require_image_files and not image.is_file():
            if on_missing == "fail":
                raise MissingCaptionFileError(
                    f"{where}: the image of entry {image_id} does not exist: {image}. Fix the path or the "
                    "image root, or skip such entries (on_missing: skip)"
                )
            skipped["missing_image"] += 1
            continue
        if captions:
            images.append(CaptionedImage(image_id=image_id, image=image, captions=tuple(captions)))
    if any(skipped.values()):
        LOGGER.warning(
            "%s: skipped %d captions whose wav is missing and %d images that are missing",
            source,
            skipped["missing_wav"],
            skipped["missing_image"],
        )
    return CaptionSet(source=source, images=tuple(images), skipped=skipped)


def _load_entries(source: Path) -> list[Any]:
    if not source.is_file():
        raise CaptionSetError(
            f"caption file {source} does not exist; build a corpus with `vgssl synth` or check the path"
        )
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CaptionSetError(f"{source} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise CaptionSetError(
            f'{source} is not a SpokenCOCO-style caption file: expected {{"data": [...]}} at the top level'
        )
    return document["data"]


def _entry_fields(entry: Any, where: str) -> tuple[str, str, list[Any]]:
    if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
        raise CaptionSetError(f'{where}: an entry needs an "image" path (a string)')
    captions = entry.get("captions")
    if not isinstance(captions, list):
        raise CaptionSetError(f'{where}: an entry needs a "captions" list')
    image_id = entry.get("image_id")
    image_id = str(image_id) if image_id is not None else Path(entry["image"]).stem
    return entry["image"], image_id, captions


def _parse_caption(
    raw: Any, where: str, image_id: str, audio_base: Path, default_language: str | None
) -> Caption:
    if not isinstance(raw, dict) or not isinstance(raw.get("wav"), str):
        raise CaptionSetError(f'{where} (image {image_id}): a caption needs a "wav" path (a string)')
    language = raw.get("lang") or default_language
    if language is None:
        raise CaptionSetError(
            f'{where} (image {image_id}): the caption has no "lang" field; give the set\'s language '
            "(default_language / --language)"
        )
    return Caption(
        uttid=str(raw.get("uttid") or Path(raw["wav"]).stem),
        wav=(audio_base / raw["wav"]).resolve(),
        language=str(language),
        image_id=image_id,
        speaker=raw.get("speaker"),
        text=raw.get("text"),
    )


# --- pixels -----------------------------------------------------------------------------------------------


class PixelImages:
    """Images read as float32 (3, size, size) arrays, standardised with the ImageNet statistics.

    An image of another size is scaled (shorter side to `size`, bicubic) and centre-cropped; the first time
    that happens is logged, so a mismatch between a corpus and a model is visible without flooding the log.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._resize_logged = False

    def load(self, image: CaptionedImage) -> np.ndarray:
        return self.read(image.image)

    def read(self, path: Path) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as opened:
                picture = opened.convert("RGB")
        except (OSError, UnidentifiedImageError) as error:
            raise BadImageError(f"cannot read image {path}: {error}") from None
        if picture.size != (self.size, self.size):
            if not self._resize_logged:
                LOGGER.info(
                    "images are resized to %d x %d pixels (e.g. %s is %d x %d); later resizes are not logged",
                    self.size,
                    self.size,
                    path,
                    *picture.size,
                )
                self._resize_logged = True
            picture = _scale_and_crop(picture, self.size)
        pixels = np.asarray(picture, dtype=np.float32) / 255.0
        return ((pixels - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).copy()


def _scale_and_crop(picture: Any, size: int) -> Any:
    from PIL import Image

    width, height = picture.size
    scale = size / min(width, height)
    scaled = picture.resize(
        (max(size, round(width * scale)), max(size, round(height * scale))), Image.Resampling.BICUBIC
    )
    left = (scaled.width - size) // 2
    top = (scaled.height - size) // 2
    return scaled.crop((left, top, left + size, top + size))


# --- precomputed features -----------------------------------------------------------------------------------


class ImageFeatureStore:
    """Precomputed image features in one of the two layouts of the module docstring, checked on read."""

    def __init__(self, root: str | os.PathLike[str], *, dim: int | None = None) -> None:
        self.root = Path(root)
        self.dim = dim
        self.shape: tuple[int, ...] | None = None  # per image, fixed by the first image read
        self._matrix: np.ndarray | None = None
        self._rows: dict[str, int] = {}
        if not self.root.is_dir():
            raise MissingFeaturesError(
                f"image features {self.root} is not a directory; give a directory of per-image .npy/.pt "
                f"files or one holding {FEATURE_MATRIX_NAMES[0]} and {FEATURE_INDEX_NAME}"
            )
        matrix_path = next((self.root / n for n in FEATURE_MATRIX_NAMES if (self.root / n).is_file()), None)
        if matrix_path is not None:
            self._open_matrix(matrix_path)

    @property
    def layout(self) -> Literal["matrix", "files"]:
        return "matrix" if self._matrix is not None else "files"

    def _open_matrix(self, matrix_path: Path) -> None:
        index_path = self.root / FEATURE_INDEX_NAME
        if not index_path.is_file():
            raise MissingFeaturesError(
                f"{matrix_path} has no index: write the image id of row i on line i of {index_path}"
            )
        ids = [line.strip() for line in index_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        matrix = _load_array(matrix_path)
        if matrix.ndim not in (2, 3):
            raise FeatureShapeError(
                f"{matrix_path} has shape {tuple(matrix.shape)}; expected (N, D) vectors or (N, R, D) regions"
            )
        if len(ids) != len(matrix):
            raise MissingFeaturesError(
                f"{index_path} lists {len(ids)} image ids but {matrix_path} has {len(matrix)} rows"
            )
        duplicates = [image_id for image_id, count in Counter(ids).items() if count > 1]
        if duplicates:
            raise MissingFeaturesError(f"{index_path} lists image ids more than once: {duplicates[:5]}")
        self._matrix = matrix
        self._rows = {image_id: row for row, image_id in enumerate(ids)}
        self._check_shape(tuple(matrix.shape[1:]), matrix_path)

    def has(self, image_id: str) -> bool:
        if self._matrix is not None:
            return image_id in self._rows
        return self._file_of(image_id) is not None

    def _file_of(self, image_id: str) -> Path | None:
        return next(
            (
                self.root / f"{image_id}{ext}"
                for ext in FEATURE_FILE_EXTENSIONS
                if (self.root / f"{image_id}{ext}").is_file()
            ),
            None,
        )

    def load(self, image: CaptionedImage) -> np.ndarray:
        return self.read(image.image_id)

    def read(self, image_id: str) -> np.ndarray:
        """The (D,) or (R, D) float32 features of `image_id`."""
        if self._matrix is not None:
            if image_id not in self._rows:
                raise MissingFeaturesError(
                    f"image {image_id} is not in {self.root / FEATURE_INDEX_NAME}; recompute the features"
                )
            return np.asarray(self._matrix[self._rows[image_id]], dtype=np.float32)
        path = self._file_of(image_id)
        if path is None:
            raise MissingFeaturesError(
                f"no features for image {image_id} in {self.root} (looked for {image_id}.npy and "
                f"{image_id}.pt); recompute the features"
            )
        features = _load_array(path)
        self._check_shape(tuple(features.shape), path)
        return np.asarray(features, dtype=np.float32)

    def _check_shape(self, shape: tuple[int, ...], where: Path) -> None:
        if len(shape) not in (1, 2):
            raise FeatureShapeError(
                f"{where}: features of shape {shape}; expected (D,) vectors or (R, D) region features"
            )
        if self.dim is not None and shape[-1] != self.dim:
            raise FeatureShapeError(
                f"{where}: image features have dimension {shape[-1]} but the model expects {self.dim} "
                "(grounding.feature_dim); use features of that encoder or change the config"
            )
        if self.shape is None:
            self.shape = shape
        elif shape != self.shape:
            raise FeatureShapeError(
                f"{where}: features of shape {shape}, but earlier images have {self.shape}; every image of a "
                "set needs the same shape"
            )


def _load_array(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        import torch

        tensor = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # numpy and torch raise many types for corrupt files
        raise MissingFeaturesError(f"cannot read image features {path}: {error}") from None
    if not isinstance(tensor, torch.Tensor):
        raise FeatureShapeError(f"{path} holds a {type(tensor).__name__}, not a tensor of image features")
    return tensor.float().numpy()


ImageSource = PixelImages | ImageFeatureStore


@dataclass(frozen=True)
class FeatureCheck:
    """How a feature set covers a caption set."""

    images: int
    found: int
    missing: list[str]  # image ids without features
    shape: tuple[int, ...] | None

    @property
    def complete(self) -> bool:
        return not self.missing


def check_features(caption_set: CaptionSet, store: ImageFeatureStore) -> FeatureCheck:
    """Read every image's features once: their presence, and one shape of the configured dimension."""
    missing = []
    for image in caption_set.images:
        if not store.has(image.image_id):
            missing.append(image.image_id)
            continue
        store.read(image.image_id)
    return FeatureCheck(
        images=len(caption_set.images),
        found=len(caption_set.images) - len(missing),
        missing=missing,
        shape=store.shape,
    )
