"""Image features from a local transformers vision checkpoint: the image side of VGS+ on real caption sets.

FaST-VGS+ reads frozen features of a pretrained image model, never pixels. `VisionEncoder` loads such a model
from a LOCAL directory (`transformers.AutoModel` / `AutoImageProcessor`, `local_files_only=True`: nothing is
downloaded) — a CLIP vision tower (`CLIPVisionModel`, or the vision half of a whole `CLIPModel`), DINOv2, ViT,
ResNet or any model whose output has a `last_hidden_state` — and gives per image:

* pooled, (D,): the model's `pooler_output` (`--pooling auto` when it has one: CLIP's and DINOv2's
  layer-normed CLS token, ViT's tanh pooler, ResNet's global average) or the mean of the patch tokens
  (`mean`; `auto` for models without a pooler) or the first token (`cls`);
* regions, (R, D): the patch tokens of `last_hidden_state` (CLS and register tokens dropped), or a CNN's last
  spatial map flattened row-major; `region_grid` G average-pools the patch grid to G × G (FaST-VGS+ used 36
  detector regions: G = 6).

The directory must hold the processor's `preprocessor_config.json` next to the model: the features are only
as good as the preprocessing the model was trained with, so there is no silent fallback. Weights are hashed
(SHA-256 per weight file) into the feature card, so features of two checkpoints cannot be confused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np

from vgssl.errors import VgsslError

Pooling = Literal["auto", "pooler", "mean", "cls"]
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
PROCESSOR_CONFIG = "preprocessor_config.json"


class VisionModelError(VgsslError):
    """The vision model directory cannot be loaded or does not give the features asked for."""


class ImageListError(VgsslError):
    """A caption JSON's images cannot be listed: a malformed file, a clashing image id or a missing image."""


class UnreadableImageError(VgsslError):
    """An image file exists but cannot be decoded."""


@dataclass(frozen=True)
class ImageRecord:
    image_id: str
    path: Path
    where: str  # "CAPTIONS.json: data[i]" of its first entry


def collect_images(caption_files: Sequence[Path], *, image_root: Path | None = None) -> list[ImageRecord]:
    """Every image of the caption JSONs once, in order of first appearance (the features' row order).

    Image ids and paths follow `vgssl.data.captions` (a missing `image_id` is the file's stem; paths are
    relative to the JSON's directory unless `image_root`). A missing image is an `ImageListError` naming it
    and its entry, before any model is loaded."""
    records: dict[str, ImageRecord] = {}
    for source in caption_files:
        try:
            document = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ImageListError(f"cannot read caption file {source}: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("data"), list):
            raise ImageListError(
                f'{source} is not a caption file: expected {{"data": [...]}} at the top level'
            )
        base = image_root if image_root is not None else Path(source).parent
        for index, entry in enumerate(document["data"]):
            where = f"{source}: data[{index}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
                raise ImageListError(f'{where}: an entry needs an "image" path (a string)')
            image_id = entry.get("image_id")
            image_id = str(image_id) if image_id is not None else PurePosixPath(entry["image"]).stem
            path = Path(base, entry["image"]).absolute()
            known = records.get(image_id)
            if known is None:
                records[image_id] = ImageRecord(image_id, path, where)
            elif known.path != path:
                raise ImageListError(
                    f"{where}: image id {image_id} is {path}, but {known.where} gave {known.path}; one id "
                    "must be one image"
                )
    missing = [record for record in records.values() if not record.path.is_file()]
    if missing:
        shown = "; ".join(f"{record.path} ({record.where})" for record in missing[:3])
        raise ImageListError(
            f"{len(missing)} of {len(records)} images do not exist, e.g. {shown}. Fix the paths or "
            "--image-root, or drop those entries from the caption JSON"
        )
    return list(records.values())


def weights_digest(model_dir: Path) -> dict[str, str]:
    """SHA-256 of every weight file of the checkpoint directory, by file name."""
    files = sorted(
        {path for pattern in WEIGHT_PATTERNS for path in model_dir.glob(pattern) if path.is_file()}
    )
    if not files:
        raise VisionModelError(
            f"{model_dir} holds no weight file ({', '.join(WEIGHT_PATTERNS)}); save the model there with "
            "`model.save_pretrained(DIR)`"
        )
    digests = {}
    for path in files:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
        digests[path.name] = digest.hexdigest()
    return digests


def read_image(record: ImageRecord) -> Any:
    """The image as an RGB PIL image, or an `UnreadableImageError` naming it and its JSON entry."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(record.path) as opened:
            return opened.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise UnreadableImageError(
            f"cannot read image {record.path} (image {record.image_id}, {record.where}): {error}. Replace "
            "the file, or drop the entry from the caption JSON"
        ) from None


class VisionEncoder:
    """A frozen local transformers vision model and its image processor, in eval mode on one device."""

    def __init__(
        self, model_dir: Path, *, device: str, pooling: Pooling = "auto", region_grid: int | None = None
    ) -> None:
        import torch

        try:
            from transformers import AutoImageProcessor, AutoModel
        except ImportError:
            raise VisionModelError(
                "image features need transformers, an optional dependency: pip install 'vgssl[hf]'"
            ) from None
        self.model_dir = model_dir
        if not (model_dir / "config.json").is_file():
            raise VisionModelError(
                f"{model_dir} is not a transformers checkpoint directory (no config.json); give the "
                "directory `save_pretrained` wrote"
            )
        if not (model_dir / PROCESSOR_CONFIG).is_file():
            raise VisionModelError(
                f"{model_dir} has no {PROCESSOR_CONFIG}: without the model's own preprocessing its features "
                "mean little. Save the processor next to the model: "
                "`AutoImageProcessor.from_pretrained(NAME).save_pretrained(DIR)`"
            )
        try:
            self.processor = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
            model = AutoModel.from_pretrained(model_dir, local_files_only=True)
        except (OSError, ValueError, KeyError) as error:
            raise VisionModelError(f"cannot load {model_dir} with transformers: {error}") from None
        self.model = model
        # A whole CLIP-like model: use its vision tower (its text half needs inputs we do not have).
        self.backbone = getattr(model, "vision_model", model)
        self.device = torch.device(device)
        self.backbone.to(self.device).eval()
        self.pooling = pooling
        self.region_grid = region_grid
        self.pooling_used: str | None = None  # what "auto" became, known after the first batch
        self.regions_meaning: str | None = None

    def preprocess(self, images: Sequence[Any]) -> Any:
        return self.processor(images=list(images), return_tensors="pt")["pixel_values"]

    def encode(self, pixel_values: Any) -> tuple[np.ndarray, np.ndarray]:
        """(B, D) pooled and (B, R, D') region features, float32."""
        import torch

        with torch.inference_mode():
            pixels = pixel_values.to(self.device, dtype=next(self.backbone.parameters()).dtype)
            output = self.backbone(pixel_values=pixels)
            hidden = output.last_hidden_state
            tokens, grid = self._patch_tokens(hidden, pixels)
            pooled = self._pool(output, hidden, tokens)
            regions = self._regions(tokens, grid)
        return pooled.float().cpu().numpy(), regions.float().cpu().numpy()

    def _patch_tokens(self, hidden: Any, pixels: Any) -> tuple[Any, tuple[int, int] | None]:
        """(B, N, D) patch tokens and their (rows, columns) grid if known."""
        if hidden.ndim == 4:  # a CNN's (B, C, h, w) map
            self.regions_meaning = "the last feature map's cells, row-major"
            return hidden.flatten(2).transpose(1, 2), (hidden.shape[2], hidden.shape[3])
        if hidden.ndim != 3:
            raise VisionModelError(f"{self.model_dir}: last_hidden_state of shape {tuple(hidden.shape)}")
        config = getattr(self.backbone, "config", None)
        patch = getattr(config, "patch_size", None)
        if isinstance(patch, (list, tuple)):
            patch = patch[0]
        if isinstance(patch, int) and patch > 0:
            rows, columns = pixels.shape[-2] // patch, pixels.shape[-1] // patch
            prefix = hidden.shape[1] - rows * columns
            if prefix >= 0:
                self.regions_meaning = (
                    f"the {rows} x {columns} patch tokens of last_hidden_state, row-major (the {prefix} "
                    "leading CLS/register token(s) dropped)"
                )
                return hidden[:, prefix:], (rows, columns)
        self.regions_meaning = "every token of last_hidden_state (the patch grid is unknown)"
        return hidden, None

    def _pool(self, output: Any, hidden: Any, tokens: Any) -> Any:
        pooler = getattr(output, "pooler_output", None)
        choice = self.pooling
        if choice == "auto":
            choice = "pooler" if pooler is not None else "mean"
        if choice == "pooler":
            if pooler is None:
                raise VisionModelError(
                    f"{type(self.backbone).__name__} gives no pooler_output; use --pooling mean or cls"
                )
            self.pooling_used = f"pooler_output of {type(self.backbone).__name__}"
            return pooler.flatten(1)
        if choice == "cls":
            if hidden.ndim != 3 or tokens.shape[1] == hidden.shape[1]:
                raise VisionModelError(
                    f"{type(self.backbone).__name__} has no CLS token in front of its patch tokens; use "
                    "--pooling mean or pooler"
                )
            self.pooling_used = "the first (CLS) token of last_hidden_state"
            return hidden[:, 0]
        self.pooling_used = "mean of the patch tokens of last_hidden_state"
        return tokens.mean(dim=1)

    def _regions(self, tokens: Any, grid: tuple[int, int] | None) -> Any:
        import torch

        if self.region_grid is None:
            return tokens
        if grid is None:
            raise VisionModelError(
                f"--region-grid needs a patch grid, and {type(self.backbone).__name__}'s tokens have none; "
                "leave --region-grid out"
            )
        batch, _, dim = tokens.shape
        spatial = tokens.transpose(1, 2).reshape(batch, dim, *grid)
        pooled = torch.nn.functional.adaptive_avg_pool2d(spatial, self.region_grid)
        self.regions_meaning = (
            f"the {grid[0]} x {grid[1]} patch tokens average-pooled to a {self.region_grid} x "
            f"{self.region_grid} grid, row-major"
        )
        return pooled.flatten(2).transpose(1, 2)

    def describe(self) -> dict[str, Any]:
        """The checkpoint, for the feature card: what it is and which bytes it was."""
        import torch
        import transformers

        config = self.model.config
        return {
            "source": "transformers",
            "model_dir": str(self.model_dir),
            "model_class": type(self.model).__name__,
            "backbone_class": type(self.backbone).__name__,
            "config_class": type(config).__name__,
            "model_type": getattr(config, "model_type", None),
            "weights_sha256": weights_digest(self.model_dir),
            "processor_class": type(self.processor).__name__,
            "processor": json.loads(self.processor.to_json_string()),
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
            "device": str(self.device),
        }
