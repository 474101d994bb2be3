"""Multilingual LibriSpeech (openslr SLR94) as published, read into utterances.

One directory per language (`mls_french/`, or `mls_french_opus/`) with a directory per split,
`<split>/audio/<speaker>/<book>/<speaker>_<book>_<utt>.flac` (or `.opus`), `<split>/transcripts.txt`
(`<id><TAB>text`) and optionally `<split>/segments.txt` (`<id><TAB>url<TAB>start<TAB>end`, where in the
LibriVox recording the utterance was cut from). The segments are used only to know each utterance's length
without opening its file, so an hours budget on a large split reads the headers of the chosen files only;
the manifests' sample counts always come from the audio itself.
"""

from __future__ import annotations

import re
from pathlib import Path

from vgssl.audio.frames import SAMPLE_RATE
from vgssl.errors import BadOptionError
from vgssl.prepare.speech import (
    EmptySubsetError,
    MissingAudioError,
    MissingTranscriptError,
    NotALayoutError,
    Split,
    TranscriptFormatError,
    UnknownSpeakerDirError,
    UntranscribedAudioError,
    Utterance,
    audio_files,
    integer_dirs,
)

LANGUAGES: dict[str, str] = {
    "english": "en",
    "german": "de",
    "dutch": "nl",
    "french": "fr",
    "spanish": "es",
    "italian": "it",
    "portuguese": "pt",
    "polish": "pl",
}
SPLIT_DIRS = ("train", "dev", "test")
DEFAULT_SPLITS: dict[Split, list[str]] = {"train": ["train"], "valid": ["dev"], "test": ["test"]}
AUDIO_SUFFIXES = (".flac", ".wav", ".opus")  # a converted .flac next to its .opus wins
_ID = re.compile(r"^(\d+)_(\d+)_(\d+)$")
_LAYOUT = "ROOT/<split>/audio/<speaker>/<book>/<speaker>_<book>_<utt>.flac and ROOT/<split>/transcripts.txt"


class UnknownLanguageError(BadOptionError):
    """--language names no MLS language."""


def language_name(language: str) -> str:
    """The MLS name of `language` (a name like "french" or its code "fr")."""
    key = language.strip().lower()
    if key in LANGUAGES:
        return key
    by_code = {code: name for name, code in LANGUAGES.items()}
    if key in by_code:
        return by_code[key]
    known = ", ".join(f"{name} ({code})" for name, code in LANGUAGES.items())
    raise UnknownLanguageError(f"--language {language!r} is not an MLS language; MLS has {known}")


def find_splits(root: Path, language: str) -> tuple[Path, list[str]]:
    """(the language directory, its split directories). ROOT is the language directory (`mls_french`), or
    the directory holding it (`mls_french/` or `mls_french_opus/` inside ROOT)."""
    if not root.is_dir():
        raise NotALayoutError(
            f"MLS ROOT {root} is not a directory; pass the language directory (mls_{language})"
        )
    splits = [name for name in SPLIT_DIRS if (root / name).is_dir()]
    if splits:
        return root.resolve(), splits
    inside = [root / f"mls_{language}", root / f"mls_{language}_opus"]
    present = [path for path in inside if path.is_dir()]
    if len(present) == 2:
        raise NotALayoutError(
            f"{root} holds both {present[0].name} and {present[1].name}; pass the one to prepare as ROOT"
        )
    if present:
        return find_splits(present[0], language)
    shown = ", ".join(sorted(c.name for c in root.iterdir() if not c.name.startswith("."))[:8]) or "nothing"
    raise NotALayoutError(
        f"{root} is not an MLS language directory: expected {_LAYOUT} with split directories "
        f"{', '.join(SPLIT_DIRS)} (ROOT is e.g. mls_{language}/), found {shown}"
    )


def _read_rows(path: Path, *, columns: int) -> dict[str, tuple[list[str], int]]:
    """A tab-separated file keyed by MLS id: id -> (the other columns, line number)."""
    rows: dict[str, tuple[list[str], int]] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != columns or not _ID.match(fields[0]):
                raise TranscriptFormatError(
                    f"{path}:{number}: expected {columns} tab-separated columns starting with an id "
                    f"<speaker>_<book>_<utt>, found {line[:80]!r}; fix the row or restore the file"
                )
            if fields[0] in rows:
                raise TranscriptFormatError(
                    f"{path}:{number}: {fields[0]} has a row already (line {rows[fields[0]][1]}); delete one"
                )
            rows[fields[0]] = (fields[1:], number)
    return rows


def _estimates(path: Path) -> dict[str, int]:
    """Samples at 16 kHz from segments.txt's start and end times (empty when there is no such file)."""
    if not path.is_file():
        return {}
    estimates = {}
    for uttid, (fields, number) in _read_rows(path, columns=4).items():
        try:
            seconds = float(fields[2]) - float(fields[1])
        except ValueError:
            raise TranscriptFormatError(
                f"{path}:{number}: start and end must be seconds, found {fields[1]!r} and {fields[2]!r}; "
                "fix the row or delete segments.txt (it is only used to select by hours faster)"
            ) from None
        estimates[uttid] = max(1, round(seconds * SAMPLE_RATE))
    return estimates


def read_split(root: Path, split: str, *, progress: bool = False) -> list[Utterance]:
    """The utterances of `root/split`, in speaker, book and utterance order, paths relative to `root`.
    `progress` shows a bar over the speaker directories scanned."""
    from tqdm import tqdm

    split_dir = root / split
    transcripts = split_dir / "transcripts.txt"
    audio_dir = split_dir / "audio"
    if not audio_dir.is_dir():
        raise EmptySubsetError(
            f"{audio_dir} is missing: expected {_LAYOUT}; is the archive fully extracted? (or leave the "
            "split out with --split)"
        )
    if not transcripts.is_file():
        raise MissingTranscriptError(
            f"{transcripts} is missing (every MLS split has one, `<id><TAB>text` per utterance); restore it "
            "from the archive"
        )
    rows = _read_rows(transcripts, columns=2)
    estimates = _estimates(split_dir / "segments.txt")
    example = f"e.g. {split}/audio/1234/5678/1234_5678_000001.flac"
    files: dict[str, Path] = {}
    speaker_dirs = integer_dirs(audio_dir, what="speaker", example=example)
    for speaker_dir in tqdm(
        speaker_dirs, desc=f"{split}: scanning", unit="speaker", disable=not progress, leave=False
    ):
        for book_dir in integer_dirs(speaker_dir, what="book", example=example):
            for uttid, path in sorted(audio_files(book_dir, AUDIO_SUFFIXES).items()):
                match = _ID.match(uttid)
                if match is None or (match[1], match[2]) != (speaker_dir.name, book_dir.name):
                    raise UnknownSpeakerDirError(
                        f"{path}: a file in {split}/audio/{speaker_dir.name}/{book_dir.name}/ must be named "
                        f"{speaker_dir.name}_{book_dir.name}_<utt>{path.suffix} (MLS's {_LAYOUT}); this one "
                        "belongs elsewhere or the directory is misnamed — move it to its speaker/book "
                        "directory"
                    )
                if uttid not in rows:
                    raise UntranscribedAudioError(
                        f"{path} has no row in {transcripts}; add `{uttid}<TAB>text` to it, or move the file "
                        "out of the corpus"
                    )
                files[uttid] = path
    for uttid, (_, number) in rows.items():
        if uttid not in files:
            speaker, book, _ = uttid.split("_")
            raise MissingAudioError(
                f"{transcripts}:{number}: {uttid} has no audio file "
                f"({audio_dir / speaker / book / uttid}.flac or .opus); re-extract the archive, or delete "
                "the row to prepare without it"
            )
    if not files:
        raise EmptySubsetError(
            f"{split_dir} holds no audio: expected {_LAYOUT}; is the archive fully extracted?"
        )
    return [
        Utterance(
            uttid=uttid,
            path=path.relative_to(root).as_posix(),
            speaker=uttid.split("_")[0],
            text=rows[uttid][0][0],
            num_samples=estimates.get(uttid, 0),
        )
        for uttid, path in files.items()
    ]
