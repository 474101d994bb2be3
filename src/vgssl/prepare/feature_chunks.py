"""Resumable feature extraction: images encoded in chunks under a work directory, then published atomically.

`write_image_features` writes, in `OUT`, the `ImageFeatureStore` matrix layout (`vgssl.data.images`) that
`grounding.image_input: features` reads, as the built-in corpus's `image_features/` has it:

    OUT/features.npy           (N, D) pooled features, row i = the image id on line i of OUT/index.txt
    OUT/index.txt
    OUT/regions/features.npy   (N, R, D') patch-level features (unless regions are off)
    OUT/regions/index.txt
    OUT/encoder.json           the card, written last: a directory without it is unfinished

While it runs, every `chunk_size` images go to `OUT/.partial/{pooled,regions}-{k}.npy` (each file atomic)
next to `OUT/.partial/plan.json` (the image ids' digest, the weights' digests and the options): a re-run of
the same command skips the chunks already there; a re-run with other images, weights or options is refused
(`--overwrite` starts over). The final files are assembled from the chunks into temporary siblings and
renamed into place, then the work directory is removed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vgssl.atomic import atomic_path, atomic_write_json, atomic_write_text
from vgssl.errors import OutputExistsError, VgsslError
from vgssl.prepare.vision_features import (
    ImageRecord,
    Pooling,
    UnreadableImageError,
    VisionEncoder,
    read_image,
)

FEATURES_FORMAT = "vgssl-image-features-v1"  # the built-in corpus's encoder.json has the same core fields
CARD_NAME = "encoder.json"
REGIONS_DIR = "regions"
WORK_DIR = ".partial"
OUTPUTS = ("features.npy", "index.txt", f"{REGIONS_DIR}/features.npy", f"{REGIONS_DIR}/index.txt", CARD_NAME)


class ResumeMismatchError(VgsslError):
    """An unfinished extraction in OUT was started with other images, weights or options."""


@dataclass(frozen=True)
class FeatureOptions:
    pooling: Pooling = "auto"
    regions: bool = True
    region_grid: int | None = None
    dtype: Literal["float32", "float16"] = "float32"
    batch_size: int = 32
    chunk_size: int = 2048  # images per resumable chunk
    workers: int = 0  # DataLoader processes decoding and preprocessing images


class _Images:
    """A torch Dataset of (index, image or error message): a worker cannot raise a named error itself."""

    def __init__(self, records: Sequence[ImageRecord]) -> None:
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[int, Any]:
        try:
            return index, read_image(self.records[index])
        except UnreadableImageError as error:
            return index, str(error)


class _Preprocess:
    """The DataLoader's collate: the processor on a batch of images (in the worker), or the first error."""

    def __init__(self, encoder: VisionEncoder) -> None:
        self.processor = encoder.processor

    def __call__(self, batch: list[tuple[int, Any]]) -> tuple[Any, str | None]:
        errors = [item for _, item in batch if isinstance(item, str)]
        if errors:
            return None, errors[0]
        return self.processor(images=[image for _, image in batch], return_tensors="pt")["pixel_values"], None


def _plan(records: Sequence[ImageRecord], weights: dict[str, str], options: FeatureOptions) -> dict[str, Any]:
    ids = "".join(f"{record.image_id}\t{record.path}\n" for record in records)
    return {
        "images": len(records),
        "images_sha256": hashlib.sha256(ids.encode()).hexdigest(),
        "weights_sha256": weights,
        # Batch size and workers change only the speed: a resumed run may lower them (e.g. after running
        # out of GPU memory).
        "options": {k: v for k, v in asdict(options).items() if k not in ("workers", "batch_size")},
    }


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def _start(out: Path, plan: dict[str, Any], *, overwrite: bool) -> Path:
    """The work directory, resumed when its plan is this one, else fresh. Unfinished work of another plan
    and finished outputs are refused without `overwrite`. Existing outputs lose their card at once: from
    then on they are unfinished until this run's card replaces it."""
    work = out / WORK_DIR
    plan_path = work / "plan.json"
    started = json.loads(plan_path.read_text(encoding="utf-8")) if plan_path.is_file() else None
    resuming = started == plan
    if started is not None and not resuming:
        if not overwrite:
            changed = sorted(key for key in plan if started.get(key) != plan[key])
            raise ResumeMismatchError(
                f"{work} holds an unfinished extraction started with other {', '.join(changed)}; re-run the "
                "command that started it to finish it, or pass --overwrite to start over"
            )
        shutil.rmtree(work)
    finished = [name for name in OUTPUTS if (out / name).exists()]
    if finished and not overwrite and not resuming:
        raise OutputExistsError(
            f"{out} already holds image features ({', '.join(finished)}); pass --overwrite to replace them, "
            "or choose another --out"
        )
    (out / CARD_NAME).unlink(missing_ok=True)
    if not resuming:
        work.mkdir(parents=True, exist_ok=True)
        atomic_write_json(plan_path, plan)
    return work


def _chunk_done(work: Path, chunk: int, regions: bool) -> bool:
    names = [f"pooled-{chunk:06d}.npy"] + ([f"regions-{chunk:06d}.npy"] if regions else [])
    return all((work / name).is_file() for name in names)


def encode_chunk(
    encoder: VisionEncoder,
    records: Sequence[ImageRecord],
    *,
    options: FeatureOptions,
    advance: Callable[[int], None],
) -> tuple[np.ndarray, np.ndarray | None]:
    """(pooled, regions or None without regions) of `records`, in order, in batches; `advance(n)` after
    each batch. A chunk's regions are held in memory (about 1.2 GB for 2048 ViT-B/16 images)."""
    import torch

    loader = torch.utils.data.DataLoader(
        _Images(records),
        batch_size=options.batch_size,
        shuffle=False,
        num_workers=options.workers,
        collate_fn=_Preprocess(encoder),
    )
    pooled, regions = [], []
    for pixel_values, error in loader:
        if error is not None:
            raise UnreadableImageError(error)
        batch_pooled, batch_regions = encoder.encode(pixel_values)
        pooled.append(batch_pooled)
        if options.regions:
            regions.append(batch_regions)
        advance(len(batch_pooled))
    return np.concatenate(pooled), np.concatenate(regions) if regions else None


def write_image_features(
    records: Sequence[ImageRecord],
    encoder: VisionEncoder,
    out: Path,
    *,
    options: FeatureOptions,
    overwrite: bool = False,
    progress: bool = True,
    sources: Sequence[Path] = (),
) -> dict[str, Any]:
    """Encode every image of `records` into `out` (layout in the module docstring); returns the card."""
    from tqdm import tqdm

    encoder_card = encoder.describe()
    work = _start(out, _plan(records, encoder_card["weights_sha256"], options), overwrite=overwrite)
    size = options.chunk_size
    chunks = range((len(records) + size - 1) // size)
    done = [chunk for chunk in chunks if _chunk_done(work, chunk, options.regions)]
    initial = sum(len(records[chunk * size : (chunk + 1) * size]) for chunk in done)
    with tqdm(
        total=len(records),
        initial=initial,
        unit="image",
        desc="image features",
        disable=None if progress else True,
    ) as bar:
        for chunk in chunks:
            if chunk in done:
                continue
            pooled, regions = encode_chunk(
                encoder, records[chunk * size : (chunk + 1) * size], options=options, advance=bar.update
            )
            if regions is not None:
                _save(work / f"regions-{chunk:06d}.npy", regions.astype(options.dtype))
            _save(work / f"pooled-{chunk:06d}.npy", pooled.astype(options.dtype))
            _record_meaning(work, encoder)
    meaning = json.loads((work / "meaning.json").read_text(encoding="utf-8"))
    ids = "".join(f"{record.image_id}\n" for record in records)
    shapes = {"pooled": _assemble(work, "pooled", out / "features.npy", chunks)}
    if options.regions:
        shapes["regions"] = _assemble(work, "regions", out / REGIONS_DIR / "features.npy", chunks)
        atomic_write_text(out / REGIONS_DIR / "index.txt", ids)
    else:  # regions of an earlier extraction (replaced with --overwrite) would not match these
        for name in ("features.npy", "index.txt"):
            (out / REGIONS_DIR / name).unlink(missing_ok=True)
    atomic_write_text(out / "index.txt", ids)
    card = _card(encoder_card, meaning, shapes, options, records=records, out=out, sources=sources)
    atomic_write_json(out / CARD_NAME, card)
    shutil.rmtree(work)
    return card


def _record_meaning(work: Path, encoder: VisionEncoder) -> None:
    """What pooling and regions turned out to be (known once a batch ran), kept for a resumed run."""
    path = work / "meaning.json"
    if not path.is_file():
        atomic_write_json(path, {"pooled": encoder.pooling_used, "regions": encoder.regions_meaning})


def _assemble(work: Path, kind: str, target: Path, chunks: range) -> list[int]:
    """Concatenate the chunks of `kind` into `target` (via a renamed temporary sibling); one row's shape."""
    parts = [np.load(work / f"{kind}-{chunk:06d}.npy", mmap_mode="r") for chunk in chunks]
    rows = sum(len(part) for part in parts)
    with atomic_path(target) as tmp:
        matrix = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=parts[0].dtype, shape=(rows, *parts[0].shape[1:])
        )
        start = 0
        for part in parts:
            matrix[start : start + len(part)] = part
            start += len(part)
        matrix.flush()
        del matrix
    return list(parts[0].shape[1:])


def _card(
    encoder_card: dict[str, Any],
    meaning: dict[str, Any],
    shapes: dict[str, list[int]],
    options: FeatureOptions,
    *,
    records: Sequence[ImageRecord],
    out: Path,
    sources: Sequence[Path],
) -> dict[str, Any]:
    dim = shapes["pooled"][0]
    regions = None
    if "regions" in shapes:
        regions = {
            "files": f"{REGIONS_DIR}/features.npy + {REGIONS_DIR}/index.txt",
            "shape": shapes["regions"],
            "meaning": meaning["regions"],
            "config": {
                "grounding.feature_dim": shapes["regions"][-1],
                "captions.image_features": str(out / REGIONS_DIR),
            },
        }
    return {
        "format": FEATURES_FORMAT,
        "default": "pooled",
        "feature_dim": dim,
        "images": len(records),
        "dtype": options.dtype,
        "pooled": {"files": "features.npy + index.txt", "shape": [dim], "pooling": meaning["pooled"]},
        "regions": regions,
        "encoder": {**encoder_card, "batch_size": options.batch_size, "pooling_option": options.pooling},
        "captions": [str(Path(source).absolute()) for source in sources],
        "config": {
            "grounding.image_input": "features",
            "grounding.feature_dim": dim,
            "captions.image_features": str(out),
        },
        "command": sys.argv,
    }
