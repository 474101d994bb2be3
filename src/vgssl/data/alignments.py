"""The alignment format: phone and word segments in seconds, in memory and as JSON / JSONL.

One alignment is a JSON object with two lists of `[onset, offset, label]` triples (seconds, label a string):

    {"phones": [[0.0, 0.0125, "SIL"], [0.0125, 0.0333, "ɑ̃"], ...], "words": [[0.0125, 0.25, "chant"], ...]}

Rules, checked whenever an `Alignment` is made (in memory or from JSON):

* every label is non-empty and every segment has 0 <= onset < offset;
* phones are contiguous (each starts where the previous one ends), silences included as `SIL` segments, and
  phone labels hold no whitespace (item files are space separated);
* words are in order without overlap; the silences between words are not words.

An alignment file is JSONL: one alignment object per line, UTF-8, blank lines ignored. Other keys of a line
are kept as they are (the built-in corpus's `alignments/{lang}_{split}.jsonl` add `uttid`, `wav`, `lang`,
`speaker`, `kind`, `text`, `num_samples`, `sample_rate` and, when acoustics were applied, `acoustics`).
How the built-in corpus makes its alignments from espeak's events is `vgssl.corpus.alignment`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from vgssl.atomic import atomic_write_text
from vgssl.errors import VgsslError

SILENCE = "SIL"


class AlignmentFormatError(VgsslError):
    """An alignment (in memory, in JSON or in a JSONL file) breaks the format's rules."""


@dataclass(frozen=True)
class Segment:
    onset: float  # seconds
    offset: float  # seconds
    label: str


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


def write_alignments(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> int:
    """Write a JSONL alignment file atomically, one record per line (UTF-8); returns the number of lines.

    Each record is written as given: an alignment's `to_json()` plus whatever else describes its audio.
    """
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return len(lines)
