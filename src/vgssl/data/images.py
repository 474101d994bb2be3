"""The images of a caption set: pixels for an image encoder, or precomputed image features.

Precomputed image features (made by any external encoder) come in one of two layouts, both a directory:

* one file per image: `DIR/{image_id}.npy` or `DIR/{image_id}.pt`;
* one matrix plus an index: `DIR/features.npy` (or `DIR/features.pt`) whose row i belongs to the image id on
  line i of `DIR/index.txt` (UTF-8, one id per line).

Each image's features are float arrays of shape (D,) — one embedding vector — or (R, D) — R region
features (FaST-VGS+ used R = 36 Faster R-CNN regions). Every image of a set must have the same shape, and D
must equal the dimension the model was configured with; anything else is a `FeatureShapeError`.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vgssl.data.captions import CaptionedImage, CaptionSet
from vgssl.errors import VgsslError

LOGGER = logging.getLogger(__name__)

FEATURE_MATRIX_NAMES = ("features.npy", "features.pt")
FEATURE_INDEX_NAME = "index.txt"
FEATURE_FILE_EXTENSIONS = (".npy", ".pt")
# Pixels are scaled to [0, 1] and standardised with the ImageNet channel statistics, the convention of
# every torchvision-style image encoder, so that external encoders and ours see comparable inputs.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class BadImageError(VgsslError):
    """An image file exists but cannot be decoded."""


class FeatureShapeError(VgsslError):
    """Precomputed image features do not have the shape the model expects, or differ between images."""


class MissingFeaturesError(VgsslError):
    """A feature set has no features for some image of a caption set, or is not a feature set at all."""


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
