"""Phone and word alignments: clean segments from espeak's events, and their JSON/JSONL form.

espeak reports when each phoneme starts; `align_events` turns that into segments an item file can use:

* Stress marks are stripped from the IPA names. Pause events (empty names), the audio before the first
  phoneme and the audio after espeak's END event (the tail of echo variants) are silence, labelled `SIL`.
* espeak starts a stop consonant at its release, so the silent closure before it falls into the previous
  phone; it also leaves short gaps (8-15 ms) before some phones, e.g. word-initial fricatives. Both are found
  in the audio: a quiet stretch (every sample within a voice-dependent level of zero) of at least
  `MIN_SILENCE_SECONDS` that ends at a phoneme onset (within `BOUNDARY_TOLERANCE_SECONDS`). If that phoneme
  is a stop or affricate, the stretch is its closure and the stop starts where the stretch starts (unless
  the stretch reaches back into a pause, which keeps it all); otherwise the stretch becomes a `SIL`
  segment. Quiet stretches that end elsewhere (the closed phase of a low-pitched glottal cycle, inside a
  vowel or nasal) stay in their phone.
* Boundaries are rounded to the output sample grid. Phones left with no samples are dropped, not merged, so
  that no label is invented: espeak emits some with zero length (French /w/ after /ʁ/, English /l/ before
  /z/), and a phone can be silent from end to end. Adjacent `SIL` segments merge.
* Phones are contiguous from 0 to the audio length. Words come from WORD events, labelled with the written
  word around the event's text position (edge punctuation stripped), and span their phones; the several
  WORD events espeak gives a number or an elision ("d'un") inside one written word make one word.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from vgssl.errors import VgsslError

SILENCE = "SIL"
STRESS_MARKS = "ˈˌ"
# First letters of IPA stops and affricates (p, tʃ, ts, kʰ, d̪ ...): the phones that have a closure.
STOP_LETTERS = frozenset("pbtdkgɡcɟqɢʔʈɖ")
MIN_SILENCE_SECONDS = 0.008
BOUNDARY_TOLERANCE_SECONDS = 0.0015
# Stripped from both ends of a written word to make its label ("circle." -> "circle").
WORD_EDGE_PUNCTUATION = '.,;:!?…"“”„«»()[]{}¡¿'
_NO_PHONE = -1


class AlignmentFormatError(VgsslError):
    """An alignment (in memory, in JSON or in a JSONL file) breaks the format's rules."""


@dataclass(frozen=True)
class Segment:
    onset: float  # seconds
    offset: float  # seconds
    label: str


@dataclass(frozen=True)
class PhoneEvent:
    """An espeak PHONEME event: where the phoneme starts and its raw IPA name ("" for a pause)."""

    sample: int
    label: str
    word: int = -1  # index of the WORD event it belongs to; -1 before the first word


@dataclass(frozen=True)
class WordEvent:
    """An espeak WORD event: where the word starts and its character span [start, end) in the text."""

    sample: int
    start: int
    end: int


@dataclass(frozen=True)
class Alignment:
    phones: tuple[Segment, ...]  # contiguous, including SIL segments
    words: tuple[Segment, ...]  # in order, non-overlapping; silences between words are not words

    def __post_init__(self) -> None:
        for segment in self.phones:
            _check_segment(segment, "phone")
            if any(c.isspace() for c in segment.label):
                raise AlignmentFormatError(
                    f"phone label {segment.label!r} at {segment.onset} s contains whitespace, which item "
                    "files (space separated) cannot hold"
                )
        for segment in self.words:
            _check_segment(segment, "word")
        for before, after in pairwise(self.phones):
            if before.offset != after.onset:
                raise AlignmentFormatError(
                    f"phones must be contiguous: {before.label!r} ends at {before.offset} but the next phone "
                    f"{after.label!r} starts at {after.onset}"
                )
        for before, after in pairwise(self.words):
            if after.onset < before.offset:
                raise AlignmentFormatError(
                    f"words must be in order without overlap: {after.label!r} starts at {after.onset}, "
                    f"before {before.label!r} ends at {before.offset}"
                )

    def scaled(self, factor: float) -> Alignment:
        """Every time multiplied by `factor` (e.g. 1/1.1 for audio sped up by 10 %)."""
        if not factor > 0:
            raise AlignmentFormatError(f"scale factor must be positive, got {factor}")
        return Alignment(
            tuple(Segment(s.onset * factor, s.offset * factor, s.label) for s in self.phones),
            tuple(Segment(s.onset * factor, s.offset * factor, s.label) for s in self.words),
        )

    def to_json(self) -> dict[str, list[list[float | str]]]:
        return {
            "phones": [[s.onset, s.offset, s.label] for s in self.phones],
            "words": [[s.onset, s.offset, s.label] for s in self.words],
        }

    @classmethod
    def from_json(cls, obj: Any) -> Alignment:
        if not isinstance(obj, dict):
            raise AlignmentFormatError(f"an alignment is a JSON object, got {type(obj).__name__}")
        return cls(_segments_from_json(obj, "phones"), _segments_from_json(obj, "words"))


def _check_segment(segment: Segment, kind: str) -> None:
    if not segment.label:
        raise AlignmentFormatError(f"{kind} at {segment.onset} s has an empty label")
    if not 0 <= segment.onset < segment.offset:
        raise AlignmentFormatError(
            f"{kind} {segment.label!r} has onset {segment.onset} and offset {segment.offset}; "
            "times must be >= 0 with onset < offset"
        )


def _segments_from_json(obj: dict[str, Any], key: str) -> tuple[Segment, ...]:
    if not isinstance(obj.get(key), list):
        raise AlignmentFormatError(f'an alignment needs a list "{key}" of [onset, offset, label] triples')
    segments = []
    for item in obj[key]:
        valid = (
            isinstance(item, list)
            and len(item) == 3
            and all(isinstance(t, int | float) and not isinstance(t, bool) for t in item[:2])
            and isinstance(item[2], str)
        )
        if not valid:
            raise AlignmentFormatError(f'"{key}" entries must be [onset, offset, label], found {item!r}')
        segments.append(Segment(float(item[0]), float(item[1]), item[2]))
    return tuple(segments)


def read_alignments(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSONL alignment file: one JSON object per line, each with valid "phones" and "words"."""
    source = Path(path)
    if not source.is_file():
        raise AlignmentFormatError(f"alignment file {source} does not exist")
    records = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            Alignment.from_json(record)
        except json.JSONDecodeError as error:
            raise AlignmentFormatError(f"{source}:{number}: not valid JSON: {error.msg}") from None
        except AlignmentFormatError as error:
            raise AlignmentFormatError(f"{source}:{number}: {error}") from None
        records.append(record)
    return records


def strip_stress(name: str) -> str:
    return "".join(c for c in name if c not in STRESS_MARKS)


def is_stop(label: str) -> bool:
    return label[:1] in STOP_LETTERS


def align_events(
    phonemes: Sequence[PhoneEvent],
    words: Sequence[WordEvent],
    *,
    text: str,
    samples: np.ndarray,
    sample_rate: int,
    end_sample: int,
    silence_level: int,
    output_rate: int,
    output_length: int,
) -> Alignment:
    """Clean phone and word segments from espeak's events and audio (`samples`, int16 at `sample_rate`),
    with times on the grid of the output audio (`output_length` samples at `output_rate`)."""
    labels = [strip_stress(event.label) for event in phonemes]
    owner = _raw_owners(phonemes, labels, len(samples), end_sample)
    _relabel_silences(owner, samples, labels, silence_level=silence_level, sample_rate=sample_rate)
    segments = _owner_segments(owner, sample_rate, output_rate, output_length)
    phones = tuple(
        Segment(on / output_rate, off / output_rate, SILENCE if who == _NO_PHONE else labels[who])
        for on, off, who in segments
    )
    return Alignment(phones, _word_segments(segments, phonemes, words, text, output_rate))


def _raw_owners(
    phonemes: Sequence[PhoneEvent], labels: list[str], length: int, end_sample: int
) -> np.ndarray:
    """For every sample, the index of the phoneme event espeak puts it in, or _NO_PHONE for silence."""
    owner = np.full(length, _NO_PHONE, dtype=np.int64)
    ends = [event.sample for event in phonemes[1:]] + [end_sample]
    for index, (event, end) in enumerate(zip(phonemes, ends, strict=True)):
        if labels[index]:
            owner[min(event.sample, length) : min(end, length)] = index
    return owner


def _relabel_silences(
    owner: np.ndarray, samples: np.ndarray, labels: list[str], *, silence_level: int, sample_rate: int
) -> None:
    quiet = np.abs(samples.astype(np.int32)) <= silence_level
    edges = np.flatnonzero(np.diff(np.concatenate(([0], quiet.view(np.int8), [0]))))
    boundaries = np.append(np.flatnonzero(owner[1:] != owner[:-1]) + 1, len(owner))
    min_length = round(MIN_SILENCE_SECONDS * sample_rate)
    tolerance = round(BOUNDARY_TOLERANCE_SECONDS * sample_rate)
    for start, end in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        if end - start < min_length:
            continue
        boundary = int(boundaries[np.argmin(np.abs(boundaries - end))])
        if abs(boundary - end) > tolerance:
            continue  # not one of espeak's gaps: e.g. the closed phase of a low-pitched glottal cycle
        following = owner[boundary] if boundary < len(owner) else _NO_PHONE
        if (
            following != _NO_PHONE
            and is_stop(labels[following])
            and not np.any(owner[start:boundary] == _NO_PHONE)
        ):
            owner[start:boundary] = following  # the closure of the stop that follows
        else:
            owner[start : max(end, boundary)] = _NO_PHONE


def _owner_segments(
    owner: np.ndarray, sample_rate: int, output_rate: int, output_length: int
) -> list[tuple[int, int, int]]:
    """(onset, offset, owner) runs on the output sample grid, without empty runs, silences merged."""
    starts = np.concatenate(([0], np.flatnonzero(owner[1:] != owner[:-1]) + 1))
    onsets = [min(round(int(s) * output_rate / sample_rate), output_length) for s in starts]
    offsets = [*onsets[1:], output_length]
    segments: list[tuple[int, int, int]] = []
    for onset, offset, who in zip(onsets, offsets, owner[starts].tolist(), strict=True):
        if offset <= onset:
            continue
        if segments and segments[-1][2] == who:
            segments[-1] = (segments[-1][0], offset, who)
        else:
            segments.append((onset, offset, who))
    return segments


def _word_segments(
    segments: list[tuple[int, int, int]],
    phonemes: Sequence[PhoneEvent],
    words: Sequence[WordEvent],
    text: str,
    output_rate: int,
) -> tuple[Segment, ...]:
    spans: list[list[int]] = []  # [onset, offset, first character, end character], on the output grid
    for onset, offset, who in segments:
        if who == _NO_PHONE or phonemes[who].word < 0:
            continue
        begin, end = _token(text, words[phonemes[who].word].start)
        # espeak gives a number or an elision ("d'un") several WORD events inside one written word.
        if spans and spans[-1][2:] == [begin, end]:
            spans[-1][1] = offset
        else:
            spans.append([onset, offset, begin, end])
    return tuple(
        Segment(onset / output_rate, offset / output_rate, _word_label(text[begin:end]))
        for onset, offset, begin, end in spans
    )


def _token(text: str, position: int) -> tuple[int, int]:
    """The whitespace-delimited written word around character `position`."""
    begin = end = min(max(position, 0), len(text))
    while begin > 0 and not text[begin - 1].isspace():
        begin -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return begin, end


def _word_label(token: str) -> str:
    return token.strip(WORD_EDGE_PUNCTUATION) or token
