"""Phone and word alignments from espeak's events: clean segments for the item files.

The format itself (`Segment`, `Alignment`, its JSON and JSONL form) is `vgssl.data.alignments`.

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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vgssl.data.alignments import SILENCE, Alignment, Segment

STRESS_MARKS = "ˈˌ"
# First letters of IPA stops and affricates (p, tʃ, ts, kʰ, d̪ ...): the phones that have a closure.
STOP_LETTERS = frozenset("pbtdkgɡcɟqɢʔʈɖ")
MIN_SILENCE_SECONDS = 0.008
BOUNDARY_TOLERANCE_SECONDS = 0.0015
# Stripped from both ends of a written word to make its label ("circle." -> "circle").
WORD_EDGE_PUNCTUATION = '.,;:!?…"“”„«»()[]{}¡¿'
_NO_PHONE = -1


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
