"""The LibriSpeech layout as published on openslr.org (SLR12), read into utterances.

`ROOT/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac` with one transcript per chapter,
`ROOT/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`, lines `<speaker>-<chapter>-<utt> TEXT`.
ROOT is the `LibriSpeech/` directory the archives unpack into (or one subset directory inside it). Every
audio file must have a transcript row and every row an audio file: a partly extracted archive would
otherwise silently become a smaller corpus.
"""

from __future__ import annotations

import re
from pathlib import Path

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

PUBLISHED_SUBSETS = (
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
)
AUDIO_SUFFIXES = (".flac", ".wav")  # a resampled .wav next to the .flac is not read: .flac wins
_SUBSET = re.compile(r"^(train|dev|test)-[A-Za-z0-9-]+$")
_LAYOUT = "ROOT/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac"


def find_subsets(root: Path) -> tuple[Path, list[str]]:
    """(the directory that holds the subsets, the subset names in it). ROOT may also be one subset directory
    (e.g. `LibriSpeech/dev-clean`): then its parent holds it, and it is the only subset."""
    if not root.is_dir():
        raise NotALayoutError(f"LibriSpeech ROOT {root} is not a directory; pass the LibriSpeech/ directory")
    subsets = sorted(c.name for c in root.iterdir() if c.is_dir() and _SUBSET.match(c.name))
    if subsets:
        return root.resolve(), subsets
    if _SUBSET.match(root.resolve().name):
        return root.resolve().parent, [root.resolve().name]
    shown = ", ".join(sorted(c.name for c in root.iterdir() if not c.name.startswith("."))[:8]) or "nothing"
    raise NotALayoutError(
        f"{root} is not a LibriSpeech directory: expected {_LAYOUT} with subset directories named like "
        f"train-clean-100, dev-clean, test-clean (train-*, dev-*, test-*), found {shown}; pass the "
        "LibriSpeech/ directory the archives unpack into"
    )


def default_splits(subsets: list[str]) -> dict[Split, list[str]]:
    """Every train-* subset is train, dev-clean is valid and test-clean is test (the usual protocol: the
    "other" sets are harder speech a user maps in explicitly). Without dev-clean, dev-clean-* (Mini
    LibriSpeech's dev-clean-2) is valid; likewise for test."""

    def clean(kind: str) -> list[str]:
        if f"{kind}-clean" in subsets:
            return [f"{kind}-clean"]
        return [s for s in subsets if s.startswith(f"{kind}-clean-")]  # Mini LibriSpeech's dev-clean-2

    return {
        "train": [s for s in subsets if s.startswith("train-")],
        "valid": clean("dev"),
        "test": clean("test"),
    }


def _read_transcript(path: Path, *, speaker: str, chapter: str) -> dict[str, tuple[str, int]]:
    """Row id -> (text, line number)."""
    rows: dict[str, tuple[str, int]] = {}
    prefix = f"{speaker}-{chapter}-"
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        uttid, _, text = line.strip().partition(" ")
        if not uttid.startswith(prefix) or not uttid[len(prefix) :].isdigit():
            raise TranscriptFormatError(
                f"{path}:{number}: expected `{prefix}<utt> TRANSCRIPT` (the ids of chapter "
                f"{speaker}/{chapter}), found {line[:80]!r}; fix the row or restore the file from the archive"
            )
        if uttid in rows:
            raise TranscriptFormatError(
                f"{path}:{number}: {uttid} has a row already (line {rows[uttid][1]}); delete one of them"
            )
        rows[uttid] = (text.strip(), number)
    return rows


def read_subset(root: Path, subset: str, *, progress: bool = False) -> list[Utterance]:
    """The utterances of `root/subset`, in speaker, chapter and utterance order, paths relative to `root`.
    `progress` shows a bar over the speaker directories scanned."""
    from tqdm import tqdm

    subset_dir = root / subset
    utterances: list[Utterance] = []
    example = f"e.g. {subset}/103/1240/103-1240-0000.flac"
    speaker_dirs = integer_dirs(subset_dir, what="speaker", example=example)
    for speaker_dir in tqdm(
        speaker_dirs, desc=f"{subset}: scanning", unit="speaker", disable=not progress, leave=False
    ):
        speaker = speaker_dir.name
        for chapter_dir in integer_dirs(speaker_dir, what="chapter", example=example):
            chapter = chapter_dir.name
            files = audio_files(chapter_dir, AUDIO_SUFFIXES)
            prefix = f"{speaker}-{chapter}-"
            for uttid, path in files.items():
                if not uttid.startswith(prefix) or not uttid[len(prefix) :].isdigit():
                    raise UnknownSpeakerDirError(
                        f"{path}: a file in {subset}/{speaker}/{chapter}/ must be named "
                        f"{prefix}<utt>{path.suffix} (LibriSpeech's {_LAYOUT}); this one belongs elsewhere "
                        "or the directory is misnamed — move it to its speaker/chapter directory"
                    )
            transcript = chapter_dir / f"{speaker}-{chapter}.trans.txt"
            if not transcript.is_file():
                if not files:
                    continue  # an empty chapter directory: nothing to read
                raise MissingTranscriptError(
                    f"{transcript} is missing, but {chapter_dir} holds {len(files)} audio files; restore it "
                    f"from the {subset} archive (every LibriSpeech chapter has its "
                    "<speaker>-<chapter>.trans.txt)"
                )
            rows = _read_transcript(transcript, speaker=speaker, chapter=chapter)
            for uttid, (_, number) in rows.items():
                if uttid not in files:
                    raise MissingAudioError(
                        f"{transcript}:{number}: {uttid} has no audio file ({chapter_dir / uttid}.flac); "
                        "re-extract the archive, or delete the row to prepare without it"
                    )
            for uttid in sorted(files):
                if uttid not in rows:
                    raise UntranscribedAudioError(
                        f"{files[uttid]} has no row in {transcript}; add `{uttid} TRANSCRIPT` to it, or move "
                        "the file out of the corpus"
                    )
                utterances.append(
                    Utterance(
                        uttid=uttid,
                        path=files[uttid].relative_to(root).as_posix(),
                        speaker=speaker,
                        text=rows[uttid][0],
                    )
                )
    if not utterances:
        raise EmptySubsetError(
            f"{subset_dir} holds no audio: expected {_LAYOUT}; is the {subset} archive fully extracted? "
            f"(or leave the subset out with --split)"
        )
    return utterances
