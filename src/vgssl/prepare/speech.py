"""What the LibriSpeech and MLS importers share: utterances read from a layout, their audio headers, the
selection by hours, and the manifests and transcripts they write into a prepared corpus.

A reader (`librispeech.py`, `mls.py`) knows its layout and turns one subset directory into `Utterance`s,
checking that every audio file has a transcript row and every row an audio file. `prepare_speech` does the
rest the same way for both: under the corpus's lock it claims its output files, reads every subset of every
split, reads the audio headers (the true frame count, and the 16 kHz check), selects by hours, and only then
writes: `manifests/{lang}_{split}.tsv` (fairseq TSV whose root is the source's own directory, so no audio is
copied) and `transcripts/{lang}_{split}.tsv` (`uttid<TAB>text`, no header, in manifest order, for a later
forced alignment). A bad layout therefore fails before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from vgssl.atomic import atomic_write_text
from vgssl.audio.frames import SAMPLE_RATE
from vgssl.data.manifest import ManifestEntry, write_manifest
from vgssl.errors import BadOptionError, VgsslError
from vgssl.locks import exclusive_lock
from vgssl.prepare.card import claim_outputs, record_source
from vgssl.prepare.selection import select_by_hours

Split = Literal["train", "valid", "test"]
SPLITS: tuple[Split, ...] = ("train", "valid", "test")
_LANGUAGE_CODE = re.compile(r"^[A-Za-z0-9-]+$")  # what the card's manifest names allow (`{lang}_{split}.tsv`)

RESAMPLE_HINT = (
    "resample it to 16 kHz first, e.g. `sox in.flac -r 16000 out.flac` (or `ffmpeg -i in.opus -ar 16000 "
    "out.flac`); a .flac next to an .opus or .wav of the same id is preferred, so converting in place works"
)


class SpeechSourceError(VgsslError):
    """A speech corpus on disk does not have the layout or content its importer expects."""


class NotALayoutError(SpeechSourceError):
    """ROOT is not the published layout (or not where its subsets are)."""


class EmptySubsetError(SpeechSourceError):
    """A subset directory holds no audio files."""


class MissingTranscriptError(SpeechSourceError):
    """Audio files whose transcript file is missing."""


class TranscriptFormatError(SpeechSourceError):
    """A transcript (or segments) row that cannot be parsed, or an id given twice."""


class UntranscribedAudioError(SpeechSourceError):
    """An audio file without a row in its transcript file."""


class MissingAudioError(SpeechSourceError):
    """A transcript row whose audio file is missing."""


class UnknownSpeakerDirError(SpeechSourceError):
    """A speaker (or chapter/book) directory whose name is not an integer id or does not match the ids of
    the files in it."""


class SampleRateError(SpeechSourceError):
    """Audio that is not 16 kHz: manifests count samples at 16 kHz, so the user must resample first."""


class UnreadableAudioError(SpeechSourceError):
    """An audio file that soundfile cannot open (corrupt, empty, or a codec this libsndfile lacks)."""


@dataclass(frozen=True)
class Utterance:
    """One utterance of a source: its id, its audio path relative to the source root (as the manifest
    writes it), its speaker and transcript. `num_samples` is the true frame count once `probed`; before,
    a reader may set an estimate (MLS segments) that lets the selection run without opening every file."""

    uttid: str
    path: str
    speaker: str
    text: str
    num_samples: int = 0
    probed: bool = False


@dataclass(frozen=True)
class SplitSummary:
    """What one split of one prepare command wrote."""

    split: Split
    subsets: tuple[str, ...]
    utterances: int
    hours: float
    speakers: int
    available_hours: float
    estimated: bool  # available_hours comes from the reader's estimates, not from the audio headers
    manifest: Path
    transcripts: Path


def audio_files(directory: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """The audio files directly in `directory` by id (the name without suffix), hidden files skipped. Where
    one id has several files (a .flac converted next to its .opus), the earliest suffix in `suffixes` wins."""
    found: dict[str, Path] = {}
    rank = {suffix: position for position, suffix in enumerate(suffixes)}
    for path in directory.iterdir():
        if path.name.startswith(".") or path.suffix.lower() not in rank or not path.is_file():
            continue
        previous = found.get(path.stem)
        if previous is None or rank[path.suffix.lower()] < rank[previous.suffix.lower()]:
            found[path.stem] = path
    return found


def integer_dirs(directory: Path, *, what: str, example: str) -> list[Path]:
    """The subdirectories of `directory` (hidden ones skipped), in numeric order; one whose name is not an
    integer id is an `UnknownSpeakerDirError` (`what`: "speaker", "chapter"; `example`: the layout)."""
    children = [child for child in directory.iterdir() if not child.name.startswith(".") and child.is_dir()]
    for child in children:
        if not child.name.isdigit():
            raise UnknownSpeakerDirError(
                f"{child}: a {what} directory is named by the {what}'s integer id ({example}), this one is "
                f"not; move it out of {directory} (or rename it to its id)"
            )
    return sorted(children, key=lambda child: (int(child.name), child.name))


def clean_text(text: str) -> str:
    """A transcript on one line with no tabs, so `uttid<TAB>text` stays two columns."""
    return " ".join(text.split())


def check_language_code(language: str) -> None:
    """A code must fit the card's manifest names, `{lang}_{split}.tsv`: an underscore would split wrongly."""
    if not _LANGUAGE_CODE.match(language):
        raise BadOptionError(
            f"language code {language!r} cannot name a manifest ({language}_train.tsv): use letters, digits "
            "and '-' only, e.g. en or pt-BR"
        )


def probe(root: Path, utterances: Sequence[Utterance], *, progress: bool, desc: str) -> list[Utterance]:
    """The utterances with their true frame counts from the audio headers (nothing is decoded); audio that
    is not 16 kHz or cannot be opened is an error naming the file."""
    import soundfile
    from tqdm import tqdm

    if any(u.path.lower().endswith(".opus") for u in utterances) and "OPUS" not in (
        soundfile.available_subtypes("OGG") or {}
    ):
        raise UnreadableAudioError(
            f"{root} holds .opus audio, but this soundfile/libsndfile ({soundfile.__libsndfile_version__}) "
            "cannot decode Opus: upgrade soundfile (`pip install -U 'soundfile>=0.12'`, whose wheels bundle "
            "libsndfile 1.2 with Opus), or convert the files, e.g. `ffmpeg -i in.opus -ar 16000 in.flac` "
            "next to each .opus (the .flac is then preferred)"
        )
    probed = []
    for utterance in tqdm(utterances, desc=desc, unit="file", disable=not progress, leave=False):
        path = root / utterance.path
        try:
            info = soundfile.info(str(path))
        except Exception as error:  # soundfile raises several types for corrupt or unknown files
            raise UnreadableAudioError(
                f"cannot read the audio header of {path}: {error}; re-extract the file from its archive"
            ) from None
        if info.samplerate != SAMPLE_RATE:
            raise SampleRateError(
                f"{path} is {info.samplerate} Hz, but the study's audio is 16 kHz: "
                f"{RESAMPLE_HINT}; then run this command again"
            )
        if info.frames <= 0:
            raise UnreadableAudioError(f"{path} holds no samples; re-extract it or delete it and its row")
        probed.append(replace(utterance, num_samples=int(info.frames), probed=True))
    return probed


def _hours(utterances: Sequence[Utterance]) -> float:
    return sum(u.num_samples for u in utterances) / SAMPLE_RATE / 3600


def _choose(
    root: Path,
    utterances: list[Utterance],
    *,
    hours: float | None,
    seed: int,
    progress: bool,
    desc: str,
) -> tuple[list[Utterance], float, bool]:
    """(the chosen utterances, probed; the hours available; whether those are estimates). With an estimate
    for every utterance and an hours budget, only the chosen files' headers are read."""
    estimated = hours is not None and all(u.num_samples > 0 for u in utterances)
    if not estimated:
        utterances = probe(root, utterances, progress=progress, desc=desc)
    chosen = select_by_hours(utterances, hours=hours, seed=seed)
    if estimated:
        chosen = probe(root, chosen, progress=progress, desc=desc)
    return chosen, _hours(utterances), estimated


def prepare_speech(
    corpus: Path,
    *,
    kind: str,
    root: Path,
    language: str,
    splits: Mapping[Split, Sequence[str]],
    read_subset: Callable[[str], list[Utterance]],
    hours: Mapping[Split, float | None],
    seed: int,
    overwrite: bool,
    progress: bool,
    options: Mapping[str, Any],
) -> list[SplitSummary]:
    """Read, check, select and write one speech source into `corpus`; returns what each split holds.

    `splits` maps each study split to the source's subset names (read with `read_subset`); `root` is the
    directory the subsets are in, written as the manifests' root. Runs under the corpus's lock, so two
    prepare commands on one corpus cannot interleave; the card is rewritten last."""
    check_language_code(language)
    outputs = {
        split: (f"manifests/{language}_{split}.tsv", f"transcripts/{language}_{split}.tsv")
        for split in splits
    }
    wrote = [path for pair in outputs.values() for path in pair]
    with exclusive_lock(corpus, job="prepare"):
        claim_outputs(corpus, wrote, kind=kind, overwrite=overwrite)
        chosen: dict[Split, tuple[list[Utterance], float, bool]] = {}
        seen: dict[str, str] = {}
        for split, subsets in splits.items():
            utterances: list[Utterance] = []
            for subset in subsets:
                for utterance in read_subset(subset):
                    if utterance.uttid in seen:
                        raise TranscriptFormatError(
                            f"utterance {utterance.uttid} is in both {seen[utterance.uttid]} and {subset} of "
                            f"{root}; map each subset to one split only (--split)"
                        )
                    seen[utterance.uttid] = subset
                    utterances.append(utterance)
            desc = f"{kind} {language} {split}: audio headers"
            chosen[split] = _choose(
                root, utterances, hours=hours.get(split), seed=seed, progress=progress, desc=desc
            )
        summaries = []
        for split, (utterances, available, estimated) in chosen.items():
            manifest, transcripts = (corpus / path for path in outputs[split])
            write_manifest(
                manifest,
                root,
                [
                    ManifestEntry(u.path, u.num_samples, language=language, speaker=u.speaker)
                    for u in utterances
                ],
            )
            atomic_write_text(transcripts, "".join(f"{u.uttid}\t{clean_text(u.text)}\n" for u in utterances))
            summaries.append(
                SplitSummary(
                    split=split,
                    subsets=tuple(splits[split]),
                    utterances=len(utterances),
                    hours=_hours(utterances),
                    speakers=len({u.speaker for u in utterances}),
                    available_hours=available,
                    estimated=estimated,
                    manifest=manifest,
                    transcripts=transcripts,
                )
            )
        recorded = {
            **options,
            "language": language,
            "splits": {split: list(subsets) for split, subsets in splits.items()},
            "hours": {split: hours.get(split) for split in splits},
            "seed": seed,
            "available_hours": {s.split: round(s.available_hours, 4) for s in summaries},
        }
        record_source(corpus, kind=kind, root=root, options=recorded, wrote=wrote)
    return summaries
