"""Checked SpokenCOCO captions into a prepared corpus: caption JSON merged by image, caption manifests.

`captions_{split}.json` holds every language of a split: writing French captions into a corpus that has
English ones adds them to the same entries where the image is the same (its id: the COCO file name's
stem), so an image captioned in en and fr has both. Re-writing a language replaces that language's captions
only (with `overwrite`; without, it is refused). Paths in the JSON are absolute: the wavs stay in the
SpokenCOCO tree and the images in the COCO tree (nothing is copied), and an absolute path reads the same
from the corpus, the trainer (`captions.train[i].captions` with no roots), `vgssl check-images` and
`vgssl retrieval`. The caption speech of each language and split is also a fairseq manifest,
`manifests/{lang}_{split}_captions.tsv` (root: the audio root; language and speaker columns).

The card (`vgssl.prepare.card`) lists what a source wrote; a share of a caption JSON is written as
`captions_{split}.json#{lang}`, so that recording French does not drop the English source that wrote into
the same file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from vgssl.atomic import atomic_write_json
from vgssl.data.manifest import ManifestEntry, write_manifest
from vgssl.errors import VgsslError
from vgssl.prepare.card import PreparedCorpusError
from vgssl.prepare.spokencoco import SPLITS, SourceImage


class CaptionMergeError(VgsslError):
    """Captions cannot be merged into the corpus: an utterance id or an image that clashes with another."""


def caption_file(split: str) -> str:
    return f"captions_{split}.json"


def caption_manifest(language: str, split: str) -> str:
    return f"manifests/{language}_{split}_captions.tsv"


def caption_share(language: str, split: str) -> str:
    """The card's name for one language's captions inside a caption JSON."""
    return f"{caption_file(split)}#{language}"


def _load(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CaptionMergeError(
            f"{path} exists but is not valid JSON ({error}); move it away before preparing into this corpus"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise CaptionMergeError(f'{path} exists but is not a caption file ({{"data": [...]}}); move it away')
    return document


def _image_id(entry: Mapping[str, Any]) -> str:
    return str(entry.get("image_id") or PurePosixPath(str(entry.get("image", ""))).stem)


def _uttid(caption: Mapping[str, Any]) -> str:
    return str(caption.get("uttid") or PurePosixPath(str(caption.get("wav", ""))).stem)


def refuse_existing_language(corpus: Path, splits: Sequence[str], *, language: str, overwrite: bool) -> None:
    """Refuse (unless `overwrite`) to write `language` into a split's caption JSON that already has it."""
    if overwrite:
        return
    clashes = []
    for split in splits:
        document = _load(corpus / caption_file(split))
        if document and any(
            caption.get("lang") == language
            for entry in document["data"]
            for caption in entry.get("captions", [])
        ):
            clashes.append(caption_file(split))
    if clashes:
        raise PreparedCorpusError(
            f"`prepare spokencoco` would overwrite the {language} captions of {', '.join(clashes)} in "
            f"{corpus}; pass --overwrite to replace them (the other languages' captions are kept), or give "
            "this set another --language"
        )


def merged_captions(
    corpus: Path, written: Mapping[str, Sequence[SourceImage]], *, language: str, uttid_prefix: str = ""
) -> dict[str, dict[str, Any]]:
    """Every split's caption JSON after writing `written` (split -> images) in `language`: the existing file
    without its `language` captions, plus the new captions, merged into the entry of their image.

    Splits not written are returned as they are on disk (for the disjointness check). Raises
    `CaptionMergeError` if a new uttid equals one of another language in the same file, or if an image id
    ends up in two splits (a test image seen in training would inflate retrieval)."""
    documents: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        existing = _load(corpus / caption_file(split))
        if split not in written:
            if existing is not None:
                documents[split] = existing
            continue
        documents[split] = _merge_split(
            existing,
            written[split],
            language=language,
            uttid_prefix=uttid_prefix,
            path=corpus / caption_file(split),
        )
    _check_disjoint(documents)
    return documents


def _merge_split(
    existing: dict[str, Any] | None,
    images: Sequence[SourceImage],
    *,
    language: str,
    uttid_prefix: str,
    path: Path,
) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    for entry in (existing or {}).get("data", []):
        others = [caption for caption in entry.get("captions", []) if caption.get("lang") != language]
        if others:
            data.append({**entry, "captions": others})
    by_id = {_image_id(entry): entry for entry in data}
    uttids = {_uttid(caption): _image_id(entry) for entry in data for caption in entry["captions"]}
    for image in images:
        captions = []
        for source in image.captions:
            uttid = f"{uttid_prefix}{source.uttid}"
            if uttid in uttids:
                raise CaptionMergeError(
                    f"{source.where}: uttid {uttid} is already a caption (of image {uttids[uttid]}) in "
                    f"{path}, in another language; utterance ids must be unique within a caption file. Pass "
                    f"--uttid-prefix {language}- to keep this set's ids apart"
                )
            uttids[uttid] = image.image_id
            caption: dict[str, Any] = {"wav": str(source.wav), "uttid": uttid, "lang": language}
            if source.speaker is not None:
                caption["speaker"] = source.speaker
            if source.text is not None:
                caption["text"] = source.text
            captions.append(caption)
        if image.image_id in by_id:
            by_id[image.image_id]["captions"] = [*by_id[image.image_id]["captions"], *captions]
        else:
            entry = {"image": str(image.image), "image_id": image.image_id, "captions": captions}
            by_id[image.image_id] = entry
            data.append(entry)
    return {"data": data}


def _check_disjoint(documents: Mapping[str, dict[str, Any]]) -> None:
    owner: dict[str, str] = {}
    for split, document in documents.items():
        for entry in document["data"]:
            image_id = _image_id(entry)
            if owner.setdefault(image_id, split) != split:
                raise CaptionMergeError(
                    f"image {image_id} would be in both {caption_file(owner[image_id])} and "
                    f"{caption_file(split)}: splits must not share images (a test image seen in training "
                    "inflates retrieval). Check the --split mapping, or replace the other split's captions "
                    "with --overwrite"
                )


def write_caption_files(
    corpus: Path,
    documents: Mapping[str, dict[str, Any]],
    written: Mapping[str, Sequence[SourceImage]],
    *,
    language: str,
    audio_root: Path,
) -> list[str]:
    """Write the caption JSON and the caption manifest of every split in `written`, atomically; returns what
    the card records as written."""
    wrote = []
    for split, images in written.items():
        atomic_write_json(corpus / caption_file(split), documents[split], indent=None)
        root, entries = _manifest_entries(images, language=language, audio_root=audio_root)
        write_manifest(corpus / caption_manifest(language, split), root, entries)
        wrote += [caption_share(language, split), caption_manifest(language, split)]
    return wrote


def _manifest_entries(
    images: Sequence[SourceImage], *, language: str, audio_root: Path
) -> tuple[Path, list[ManifestEntry]]:
    """The manifest's root (the audio root, or / if a wav lies outside it) and its entries, in JSON order."""
    captions = [caption for image in images for caption in image.captions]
    root = audio_root.absolute()
    if not all(caption.wav.is_relative_to(root) for caption in captions):
        root = Path(root.anchor)
    return root, [
        ManifestEntry(
            path=caption.wav.relative_to(root).as_posix(),
            num_samples=caption.num_samples,
            language=language,
            speaker=caption.speaker,
        )
        for caption in captions
    ]
