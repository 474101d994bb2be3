"""Disfluent pauses: silence inserted between words, with the word and phone alignments shifted exactly.

Segments are `(onset, offset, label)` tuples in seconds, words and phones alike; phones are contiguous and
use `SIL` for silence (as the alignment module writes them). A pause at a word boundary goes into the middle
of the silence between the two words when there is one (that silence just gets longer), otherwise at the
phone boundary nearest to the end of the first word, as a new `SIL` phone. Every time at or after the cut
moves by the pause length; the pause length is a whole number of samples, so the shift is exact. (A word
spanning the cut, possible only where word and phone boundaries disagree, is lengthened by the pause.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vgssl.corpus.acoustics.config import AcousticsConfig
from vgssl.corpus.acoustics.errors import AcousticsInputError

SILENCE = "SIL"
Span = tuple[float, float, str]
# Cutting into voiced sound makes a click; a 5 ms fade on each side of the cut removes it.
_CUT_FADE_S = 0.005


@dataclass(frozen=True)
class Pause:
    time_s: float  # where the pause starts, in the input's time (a sample boundary)
    duration_s: float  # a whole number of samples

    def to_json(self) -> dict[str, float]:
        return {"time_s": self.time_s, "duration_s": self.duration_s}


@dataclass(frozen=True)
class PausedUtterance:
    audio: np.ndarray
    words: tuple[Span, ...]
    phones: tuple[Span, ...]
    pauses: tuple[Pause, ...]


def _check_segments(name: str, segments: Sequence[Span], duration_s: float) -> None:
    previous_offset = 0.0
    for index, (onset, offset, label) in enumerate(segments):
        if not 0.0 <= onset <= offset or onset < previous_offset - 1e-9 or offset > duration_s + 1e-6:
            raise AcousticsInputError(
                f"{name} segment {index} ({onset}, {offset}, {label!r}) is not a sorted, non-overlapping "
                f"span inside the audio (0 to {duration_s:.6f} s)"
            )
        previous_offset = offset


def _cut_sample(first_word: Span, second_word: Span, phones: Sequence[Span], sample_rate: int) -> int:
    """Where a pause between two words goes, in samples of the input."""
    for onset, offset, label in phones:
        if label == SILENCE and onset >= first_word[1] - 1e-9 and offset <= second_word[0] + 1e-9:
            return round((onset + offset) / 2 * sample_rate)
    if not phones:
        return round(first_word[1] * sample_rate)
    boundaries = np.array([phones[0][0], *(offset for _, offset, _ in phones)])
    return round(boundaries[np.argmin(np.abs(boundaries - first_word[1]))] * sample_rate)


def insert_silences(
    audio: np.ndarray,
    sample_rate: int,
    *,
    words: Sequence[Span],
    phones: Sequence[Span],
    pause_samples: Mapping[int, int],
) -> PausedUtterance:
    """Insert `pause_samples[i]` samples of silence between word i and word i + 1, for each i given."""
    duration_s = audio.shape[0] / sample_rate
    _check_segments("word", words, duration_s)
    _check_segments("phone", phones, duration_s)
    cuts: dict[int, int] = {}  # cut sample -> pause samples
    for gap, length in pause_samples.items():
        if not 0 <= gap < len(words) - 1 or length < 0:
            raise AcousticsInputError(
                f"a pause needs a word gap in 0..{len(words) - 2} and a length >= 0, got gap {gap}, "
                f"length {length}"
            )
        if length > 0:
            cut = _cut_sample(words[gap], words[gap + 1], phones, sample_rate)
            cuts[cut] = cuts.get(cut, 0) + length
    cut_samples = np.array(sorted(cuts), dtype=np.int64)
    shifts = np.cumsum([cuts[cut] for cut in sorted(cuts)], dtype=np.int64)

    def shifted(time: float, *, is_offset: bool) -> float:
        # Onsets at a cut move with what follows it; offsets at a cut stay with what precedes it.
        moved = np.searchsorted(cut_samples, round(time * sample_rate), side="left" if is_offset else "right")
        return time + int(shifts[moved - 1]) / sample_rate if moved else time

    new_phones: list[Span] = []
    for index, (onset, offset, label) in enumerate(phones):
        new_onset = shifted(onset, is_offset=False)
        opened = index > 0 and onset == phones[index - 1][1] and new_onset > new_phones[-1][1]
        if opened and new_phones[-1][2] == SILENCE:  # a pause right after a silence lengthens it
            new_phones[-1] = (new_phones[-1][0], new_onset, SILENCE)
        elif opened and label == SILENCE:  # a pause right before a silence lengthens it
            new_onset = new_phones[-1][1]
        elif opened:
            new_phones.append((new_phones[-1][1], new_onset, SILENCE))
        new_phones.append((new_onset, shifted(offset, is_offset=True), label))
    return PausedUtterance(
        audio=_splice_silences(audio, cuts, sample_rate),
        words=tuple((shifted(on, is_offset=False), shifted(off, is_offset=True), w) for on, off, w in words),
        phones=tuple(new_phones),
        pauses=tuple(
            Pause(time_s=cut / sample_rate, duration_s=cuts[cut] / sample_rate) for cut in sorted(cuts)
        ),
    )


def insert_pauses(
    audio: np.ndarray,
    sample_rate: int,
    *,
    words: Sequence[Span],
    phones: Sequence[Span],
    config: AcousticsConfig,
    rng: np.random.Generator,
) -> PausedUtterance:
    """Draw a pause at each word boundary with `config.pause_probability` and insert them.

    Apply before `apply_acoustics`, so that reverberation and noise fill the pauses like the rest.
    """
    gaps = max(len(words) - 1, 0)
    # Both draws are made for every gap, so the stream consumed does not depend on the outcomes.
    happens = rng.random(gaps) < config.pause_probability
    durations_s = rng.uniform(*config.pause_duration_s_range, size=gaps)
    pause_samples = {int(gap): round(durations_s[gap] * sample_rate) for gap in np.flatnonzero(happens)}
    if not pause_samples:
        return PausedUtterance(audio=audio, words=tuple(words), phones=tuple(phones), pauses=())
    return insert_silences(audio, sample_rate, words=words, phones=phones, pause_samples=pause_samples)


def _splice_silences(audio: np.ndarray, cuts: Mapping[int, int], sample_rate: int) -> np.ndarray:
    fade_length = round(_CUT_FADE_S * sample_rate)
    fade_in = np.sin(np.linspace(0.0, np.pi / 2, fade_length, endpoint=False)) ** 2
    faded = audio.copy()
    pieces = []
    start = 0
    for cut in sorted(cuts):
        before = faded[max(start, cut - fade_length) : cut]
        before *= fade_in[: before.shape[0]][::-1]
        after = faded[cut : cut + fade_length]
        after *= fade_in[: after.shape[0]]
        pieces += [faded[start:cut], np.zeros(cuts[cut], dtype=audio.dtype)]
        start = cut
    pieces.append(faded[start:])
    return np.concatenate(pieces)
