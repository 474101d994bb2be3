"""Published item files (Libri-light `dev-clean.item`, ZeroSpeech 2017 French, ...) used as they are.

An imported file is checked with vgssl's item reader (header, field counts, no tabs), every `#file` must be
an audio file under the audio root (`<root>/<#file>.wav` or `.flac`, 16 kHz), and every item must cover a
50 Hz frame time of its file and end inside it (the rules `vgssl abx` applies; `drop_bad` leaves such
items out instead of failing). With `by_basename`, a `#file` is found anywhere below the root by its name
(Libri-light keys LibriSpeech files by utterance id, while LibriSpeech nests them in
`<subset>/<speaker>/<chapter>/`), and the copy's `#file` column becomes the path below the root, so that it
names the same files as a manifest of that root.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vgssl.audio.frames import FRAME_RATE, SAMPLE_RATE, frame_count
from vgssl.data.items import LANGUAGE_COLUMNS, PHONE_COLUMNS, ItemFileError, read_item_file
from vgssl.data.manifest import ManifestEntry
from vgssl.errors import VgsslError

AUDIO_SUFFIXES = (".wav", ".flac")
_SHOWN = 5

ItemKind = Literal["phone", "language"]


class ImportedItemsError(VgsslError):
    """A published item file cannot be used with the audio it was given."""


class MissingItemAudioError(ImportedItemsError):
    """Files an item file names have no audio under the audio root."""


class ItemAudioFormatError(ImportedItemsError):
    """Audio an item file names is not 16 kHz, or cannot be read."""


class BadItemsError(ImportedItemsError):
    """Items that cover no frame of their file or end past it."""


@dataclass(frozen=True)
class ImportedItems:
    source: Path
    kind: ItemKind
    header: tuple[str, ...]
    rows: list[list[str]]  # as they will be written (keys rewritten with `by_basename`)
    unchanged: bool  # the rows are the file's, so it may be copied byte for byte or linked
    dropped: list[str]  # "file:line: why" of the items left out
    audio: dict[str, ManifestEntry]  # key -> entry (path relative to the root) of every file kept

    def languages(self) -> list[str]:
        if self.kind == "phone":
            return []
        at = self.header.index("#language")
        return sorted({row[at] for row in self.rows})


def item_kind(header: Sequence[str], source: Path) -> ItemKind:
    if all(column in header for column in PHONE_COLUMNS):
        return "phone"
    if all(column in header for column in LANGUAGE_COLUMNS):
        return "language"
    raise ItemFileError(
        f"{source}:1: header {' '.join(header)!r} is neither a phone item header ({' '.join(PHONE_COLUMNS)}) "
        f"nor a language item header ({' '.join(LANGUAGE_COLUMNS)})"
    )


def find_audio(root: Path, keys: Sequence[str], *, by_basename: bool) -> dict[str, Path]:
    """The audio file of every key (`<root>/<key>.wav|.flac`, or, `by_basename`, any such file below the
    root whose name is the key's last part); keys without one are a `MissingItemAudioError`."""
    if not root.is_dir():
        raise MissingItemAudioError(f"--audio-root {root} is not a directory")
    index: dict[str, Path] = {}
    if by_basename:
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file() and not path.name.startswith("."):
                if path.stem in index and index[path.stem].suffix.lower() == path.suffix.lower():
                    raise MissingItemAudioError(
                        f"two audio files named {path.stem} under {root}: {index[path.stem]} and {path}; "
                        "with --find-by-basename the names must be unique (give a narrower --audio-root)"
                    )
                index.setdefault(path.stem, path)
    found, missing = {}, []
    for key in keys:
        direct = (root / f"{key}{suffix}" for suffix in AUDIO_SUFFIXES)
        path = next((p for p in direct if p.is_file()), None)
        if path is None and by_basename:
            path = index.get(Path(key).name)
        if path is None:
            missing.append(key)
        else:
            found[key] = path
    if missing:
        hint = (
            "" if by_basename else " (or pass --find-by-basename if the files are nested, as in LibriSpeech)"
        )
        raise MissingItemAudioError(
            f"{len(missing)} of {len(keys)} files named in the item file have no audio under {root} (tried "
            f"<root>/<#file>{'|'.join(AUDIO_SUFFIXES)}), e.g. {', '.join(missing[:_SHOWN])}; pass the "
            f"directory the item file's #file paths are relative to as --audio-root{hint}"
        )
    return found


def import_items(
    source: Path,
    *,
    audio_root: Path,
    language: str | None,
    by_basename: bool,
    drop_bad: bool,
    progress: bool,
) -> ImportedItems:
    """Check a published item file against its audio; see the module docstring."""
    import soundfile
    from tqdm import tqdm

    items = read_item_file(source)
    kind = item_kind(items.header, source)
    at = {name: items.header.index(name) for name in ("#file", "onset", "offset")}
    speaker_at = items.header.index("speaker")
    language_at = items.header.index("#language") if kind == "language" else None
    numbered = list(items.rows())
    if not numbered:
        raise ItemFileError(f"{source} has a header but no items")
    keys = list(dict.fromkeys(fields[at["#file"]] for _, fields in numbered))
    paths = find_audio(audio_root, keys, by_basename=by_basename)
    frames, entries = {}, {}
    for key in tqdm(keys, desc="audio headers", unit="file", disable=not progress, leave=False):
        path = paths[key]
        try:
            info = soundfile.info(str(path))
        except Exception as error:  # soundfile raises several types for corrupt or unknown files
            raise ItemAudioFormatError(f"cannot read the audio header of {path}: {error}") from None
        if info.samplerate != SAMPLE_RATE:
            raise ItemAudioFormatError(
                f"{path} is {info.samplerate} Hz; the study's audio is 16 kHz: resample it first (e.g. `sox "
                f"in.wav -r 16000 out.wav`) and keep the name"
            )
        frames[key] = frame_count(int(info.frames))
        entries[key] = int(info.frames)
    rows, dropped, speakers, row_language = [], [], {}, {}
    for number, fields in numbered:
        key = fields[at["#file"]]
        problem = _problem(fields[at["onset"]], fields[at["offset"]], frames[key])
        if problem:
            dropped.append(f"{source}:{number}: {key} {fields[at['onset']]}-{fields[at['offset']]} {problem}")
            continue
        speakers.setdefault(key, fields[speaker_at])
        row_language.setdefault(key, fields[language_at] if language_at is not None else language)
        rows.append(fields)
    if dropped and not drop_bad:
        raise BadItemsError(
            f"{len(dropped)} of {len(numbered)} items of {source} cannot be scored (`vgssl abx` would refuse "
            f"them): {'; '.join(dropped[:3])}; pass --drop-bad-items to leave them out of the copy"
        )
    if not rows:
        raise BadItemsError(f"no item of {source} covers a frame of its audio: {dropped[0]}")
    relative = {key: paths[key].relative_to(audio_root).as_posix() for key in speakers}
    rewritten = {key: str(Path(path).with_suffix("")) for key, path in relative.items()}
    renamed = any(rewritten[key] != key for key in rewritten)
    if renamed:
        rows = [[rewritten[v] if i == at["#file"] else v for i, v in enumerate(f)] for f in rows]
    audio = {
        rewritten[key]: ManifestEntry(relative[key], entries[key], row_language[key], speakers[key])
        for key in speakers
    }
    return ImportedItems(
        source, kind, items.header, rows, unchanged=not dropped and not renamed,
        dropped=dropped, audio=audio,
    )  # fmt: skip


def _problem(onset_text: str, offset_text: str, num_frames: int) -> str | None:
    """Why `vgssl abx` could not score an item of a file of `num_frames` frames, or None."""
    try:
        onset, offset = float(onset_text), float(offset_text)
    except ValueError:
        return "has onset/offset that are not numbers"
    if not (math.isfinite(onset) and math.isfinite(offset)) or onset < 0 or offset <= onset:
        return "needs 0 <= onset < offset"
    first = math.ceil(onset * FRAME_RATE - 0.5 - 1e-9)
    last = math.floor(offset * FRAME_RATE - 0.5 + 1e-9)
    if last < first:
        return "covers no 50 Hz frame time (0.01 + 0.02 i s)"
    if last >= num_frames:
        return f"ends past the audio's last frame ({num_frames} frames, {num_frames / FRAME_RATE:.2f} s)"
    return None
