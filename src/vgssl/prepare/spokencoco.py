"""SpokenCOCO as published, read into images with spoken captions whose files have been checked.

The published layout (Hsu et al., 2021): `ROOT/SpokenCOCO_train.json` and `ROOT/SpokenCOCO_val.json`, each
`{"data": [{"image": "val2014/COCO_val2014_000000325114.jpg", "captions": [{"text", "speaker", "uttid",
"wav": "wavs/val/0/....wav"}, ...]}, ...]}`, the wavs under `ROOT/wavs/` and the images in the COCO tree
(`train2014/`, `val2014/`). FaST-VGS(+) trains on the Karpathy split instead, in files its
`datasets/preprocessing/unroll_coco.py` writes: `SpokenCOCO_{train,val,test}_karpathy.json` (the nested form
above) and `SpokenCOCO_{train,val,test}_unrolled_karpathy.json`, one caption per entry: `{"data": [{"image":
..., "caption": {"text", "speaker", "uttid", "wav"}}, ...]}`. A third, flat form is read too: entries that
carry the caption's fields themselves (`{"image", "wav", "text", "speaker", "uttid"}`). All three give the
same images: entries of one image (its file name's stem is its id) are merged, in the order of first
appearance. Wav paths start at the audio root (the SpokenCOCO directory), image paths at the COCO root.

Any SpokenCOCO-shaped JSON of another language (a French or bilingual spoken-caption set) is read the same
way; the language is given, since the files have no language field.

Reading checks the JSON's shape (entry index named); `check_files` then checks every wav (exists, readable,
16 kHz) and every image (exists), naming the file and its JSON entry, and reads each wav's length from its
header (`soundfile.info`, a thread pool: on a network file system the headers, not the CPU, are the cost).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np

from vgssl.audio.frames import SAMPLE_RATE
from vgssl.errors import VgsslError

SPLITS = ("train", "valid", "test")
# Split name -> file name, in the order the default mapping tries them (`default_split_files`).
LAYOUTS: dict[str, dict[str, str]] = {
    "karpathy-unrolled": {
        "train": "SpokenCOCO_train_unrolled_karpathy.json",
        "valid": "SpokenCOCO_val_unrolled_karpathy.json",
        "test": "SpokenCOCO_test_unrolled_karpathy.json",
    },
    "karpathy": {
        "train": "SpokenCOCO_train_karpathy.json",
        "valid": "SpokenCOCO_val_karpathy.json",
        "test": "SpokenCOCO_test_karpathy.json",
    },
    # COCO 2014's own split: no valid images; SpokenCOCO's val becomes the test split.
    "original": {"train": "SpokenCOCO_train.json", "test": "SpokenCOCO_val.json"},
}

OnProblem = Literal["fail", "skip"]


class SpokenCocoError(VgsslError):
    """A SpokenCOCO-style input cannot be read: a missing split file, a malformed JSON or entry."""


class SpokenCocoFileError(SpokenCocoError):
    """A caption's wav or an entry's image is missing, unreadable or not 16 kHz."""


@dataclass(frozen=True)
class SourceCaption:
    uttid: str
    wav: Path  # absolute
    where: str  # "FILE: data[i].captions[j]", for messages
    speaker: str | None = None
    text: str | None = None
    num_samples: int = 0  # read by `check_files`


@dataclass(frozen=True)
class SourceImage:
    image_id: str
    image: Path  # absolute
    where: str  # "FILE: data[i]" of the image's first entry
    captions: tuple[SourceCaption, ...]


@dataclass(frozen=True)
class FileCheck:
    images: list[SourceImage]  # those kept, each with its kept captions
    skipped: dict[str, int]  # "missing_wav", "bad_audio" (captions), "missing_image" (images)


def default_split_files(root: Path) -> tuple[str, dict[str, Path]]:
    """The first layout of `LAYOUTS` with a train file in `root`: (its name, split -> existing file)."""
    for name, files in LAYOUTS.items():
        if (root / files["train"]).is_file():
            return name, {split: root / file for split, file in files.items() if (root / file).is_file()}
    expected = ", ".join(files["train"] for files in LAYOUTS.values())
    raise SpokenCocoError(
        f"{root} holds none of {expected}: is it the SpokenCOCO directory? Give the split files yourself "
        "with --split SPLIT=FILE (e.g. --split train=my_train.json)"
    )


def read_spokencoco(path: Path, *, audio_root: Path, image_root: Path) -> list[SourceImage]:
    """The images of one SpokenCOCO-style JSON (nested, unrolled or flat entries), in first-appearance order.

    A file without a top-level `data` list, an entry without an image path or a caption without a wav is
    a `SpokenCocoError` naming the entry; so is an uttid that appears twice."""
    entries = _load_data(path)
    grouped: dict[str, tuple[Path, str, list[SourceCaption]]] = {}
    seen: dict[str, str] = {}
    for index, entry in enumerate(entries):
        where = f"{path}: data[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise SpokenCocoError(f'{where}: an entry needs an "image" path (a string), found {entry!r:.200}')
        image = _resolve(image_root, entry["image"])
        image_id = PurePosixPath(entry["image"]).stem
        if image_id in grouped and grouped[image_id][0] != image:
            raise SpokenCocoError(
                f"{where}: image id {image_id} is {image}, but {grouped[image_id][1]} gave "
                f"{grouped[image_id][0]}; two different files cannot share a file name"
            )
        _, _, captions = grouped.setdefault(image_id, (image, where, []))
        for number, raw in _raw_captions(entry, where):
            caption = _parse_caption(raw, f"{where}{number}", audio_root)
            if caption.uttid in seen:
                raise SpokenCocoError(
                    f"{caption.where}: uttid {caption.uttid} already appears at {seen[caption.uttid]}; "
                    "utterance ids must be unique within a caption file"
                )
            seen[caption.uttid] = caption.where
            captions.append(caption)
    return [
        SourceImage(image_id=image_id, image=image, where=where, captions=tuple(captions))
        for image_id, (image, where, captions) in grouped.items()
        if captions
    ]


def _load_data(path: Path) -> list[Any]:
    if not path.is_file():
        raise SpokenCocoError(f"caption file {path} does not exist; check ROOT and the --split files")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SpokenCocoError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        found = sorted(document)[:5] if isinstance(document, dict) else type(document).__name__
        raise SpokenCocoError(
            f'{path} is not a SpokenCOCO caption file: expected {{"data": [...]}} at the top level, found '
            f'{found}. Wrap a list of entries as {{"data": [...]}}'
        )
    return document["data"]


def _raw_captions(entry: dict[str, Any], where: str) -> list[tuple[str, Any]]:
    """(suffix of `where`, raw caption) of an entry in any of the three forms."""
    if "captions" in entry:
        if not isinstance(entry["captions"], list):
            raise SpokenCocoError(f'{where}: "captions" must be a list of captions')
        return [(f".captions[{number}]", raw) for number, raw in enumerate(entry["captions"])]
    if "caption" in entry:  # FaST-VGS's unrolled Karpathy files
        return [(".caption", entry["caption"])]
    if "wav" in entry:  # flat: the entry is the caption
        return [("", entry)]
    raise SpokenCocoError(
        f'{where}: an entry needs "captions" (SpokenCOCO), "caption" (unrolled Karpathy) or "wav" (flat); '
        f"it has {sorted(entry)}"
    )


def _parse_caption(raw: Any, where: str, audio_root: Path) -> SourceCaption:
    if not isinstance(raw, dict) or not isinstance(raw.get("wav"), str) or not raw["wav"]:
        raise SpokenCocoError(f'{where}: a caption needs a "wav" path (a string), found {raw!r:.200}')
    speaker, text = raw.get("speaker"), raw.get("text")
    return SourceCaption(
        uttid=str(raw.get("uttid") or PurePosixPath(raw["wav"]).stem),
        wav=_resolve(audio_root, raw["wav"]),
        where=where,
        speaker=str(speaker) if speaker not in (None, "") else None,
        text=str(text).strip() if text is not None else None,
    )


def _resolve(base: Path, path: str) -> Path:
    return Path(base, path).absolute()


def select_images(
    images: Sequence[SourceImage], *, max_images: int | None, seed: int, stream: int
) -> list[SourceImage]:
    """At most `max_images` images drawn at random from (seed, stream), kept in file order: a small subset
    of a large split for a quick study, the same one on every re-run."""
    if max_images is None or max_images >= len(images):
        return list(images)
    chosen = np.random.default_rng([seed, stream]).choice(len(images), size=max_images, replace=False)
    return [images[index] for index in sorted(chosen.tolist())]


def hold_out(
    images: Sequence[SourceImage], count: int, *, seed: int
) -> tuple[list[SourceImage], list[SourceImage]]:
    """(kept, held out): `count` images drawn from (seed) out of `images`, both in file order."""
    if count >= len(images):
        raise SpokenCocoError(
            f"--valid-images {count} would hold out every one of the {len(images)} training images; "
            "choose fewer"
        )
    held = set(np.random.default_rng([seed, 99]).choice(len(images), size=count, replace=False).tolist())
    return (
        [image for index, image in enumerate(images) if index not in held],
        [image for index, image in enumerate(images) if index in held],
    )


def check_files(
    images: Sequence[SourceImage],
    *,
    on_missing: OnProblem,
    on_bad_audio: OnProblem,
    workers: int = 8,
    progress: bool = True,
    description: str = "checking wavs",
) -> FileCheck:
    """Every image exists and every caption's wav exists, is readable, non-empty and 16 kHz; the kept
    captions come back with their lengths. A problem raises `SpokenCocoFileError` naming the file and its
    JSON entry, or with "skip" is left out and counted."""
    from tqdm import tqdm

    skipped = {"missing_image": 0, "missing_wav": 0, "bad_audio": 0}
    present = []
    for image in images:
        if image.image.is_file():
            present.append(image)
        elif on_missing == "fail":
            raise SpokenCocoFileError(
                f"{image.where}: image {image.image} does not exist. Check --images (the COCO root, holding "
                "train2014/ and val2014/), or pass --on-missing skip to leave such images out"
            )
        else:
            skipped["missing_image"] += 1
    captions = [caption for image in present for caption in image.captions]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(
            tqdm(
                pool.map(_wav_problem, captions),
                total=len(captions),
                desc=description,
                unit="wav",
                disable=None if progress else True,
            )
        )
    lengths: dict[str, int] = {}
    for caption, (kind, detail) in zip(captions, results, strict=True):
        if kind == "ok":
            lengths[caption.uttid] = int(detail)
            continue
        policy = on_missing if kind == "missing_wav" else on_bad_audio
        if policy == "fail":
            raise SpokenCocoFileError(f"{caption.where} (uttid {caption.uttid}): {detail}")
        skipped[kind] += 1
    kept = []
    for image in present:
        usable = tuple(
            replace(caption, num_samples=lengths[caption.uttid])
            for caption in image.captions
            if caption.uttid in lengths
        )
        if usable:
            kept.append(replace(image, captions=usable))
    return FileCheck(images=kept, skipped=skipped)


def _wav_problem(caption: SourceCaption) -> tuple[str, str | int]:
    """("ok", num_samples), or (problem kind, a message saying what is wrong and how to fix it)."""
    import soundfile

    if not caption.wav.is_file():
        return "missing_wav", (
            f"the wav {caption.wav} does not exist. Check ROOT or --audio-root (where the JSON's wav paths "
            "start), or pass --on-missing skip to leave such captions out"
        )
    try:
        info = soundfile.info(str(caption.wav))
    except Exception as error:  # soundfile raises several types for corrupt files
        return (
            "bad_audio",
            f"cannot read {caption.wav}: {error}; fix or replace it, or pass --on-bad-audio skip",
        )
    if info.frames <= 0:
        return "bad_audio", f"{caption.wav} holds no samples; pass --on-bad-audio skip to leave it out"
    if info.samplerate != SAMPLE_RATE:
        return "bad_audio", (
            f"{caption.wav} is {info.samplerate} Hz, not {SAMPLE_RATE} Hz as every vgssl corpus is. Resample "
            f"the wavs first (e.g. `sox IN.wav -r {SAMPLE_RATE} OUT.wav`), or pass --on-bad-audio skip"
        )
    return "ok", int(info.frames)
