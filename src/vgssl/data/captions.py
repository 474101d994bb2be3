"""SpokenCOCO-style caption sets: images with spoken captions, read from a caption JSON.

Caption JSON (the built-in corpus's `captions_{split}.json`, or a real SpokenCOCO file):

    {"data": [{"image": "images/train/train-00001.png", "image_id": "train-00001",
               "captions": [{"wav": "audio/en/train/en-train-s00-c00001.wav", "uttid": "en-train-s00-c00001",
                             "lang": "en", "speaker": "s00", "text": "..."}, ...]}, ...]}

Only `image`, `captions` and each caption's `wav` are required. A missing `image_id` is the image file's
stem, a missing `uttid` the wav's stem, a missing `lang` the reader's `default_language` (real SpokenCOCO
has no language field). Paths are relative to the JSON's directory unless `audio_root` / `image_root` say
otherwise (real SpokenCOCO keeps its wavs and the COCO images in different trees).

The images themselves, or precomputed features of them, are read by `vgssl.data.images`.
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

from vgssl.errors import VgsslError

LOGGER = logging.getLogger(__name__)

OnMissing = Literal["fail", "skip"]


class CaptionSetError(VgsslError):
    """A caption JSON cannot be read or an entry is malformed; the message names the file and entry."""


class MissingCaptionFileError(CaptionSetError):
    """A caption's wav or an entry's image does not exist (with `on_missing: fail`)."""


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
            f'{where} (image {image_id}): the caption has no "lang" field; give the set\'s language: '
            "captions.train[i].language (or captions.valid.language) in a training config, --language on "
            "the command line"
        )
    return Caption(
        uttid=str(raw.get("uttid") or Path(raw["wav"]).stem),
        wav=(audio_base / raw["wav"]).resolve(),
        language=str(language),
        image_id=image_id,
        speaker=raw.get("speaker"),
        text=raw.get("text"),
    )
