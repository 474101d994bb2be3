"""The items of phone ABX and language ABX item files, made from exact alignments.

The item file format (headers, names, writing, reading) is `vgssl.data.items`.

Frame convention (vgssl.audio.frames, shared with every feature extractor in vgssl): frames at 50 Hz, frame i
centred at `0.01 + 0.02 i` s, and an utterance of N samples at 16 kHz has `floor((N - 400) / 320) + 1`
frames. fastabx keeps frame i for an item when onset <= centre <= offset. An item is written only when it
holds at least `min_frames` frame centres and every frame centre inside it exists in its file, so no item is
empty or reaches past the features.
Silences are never central phones nor context phones; zero-length phones never reach this module (the
alignment step drops them). A silence shorter than `BRIEF_PAUSE` (espeak leaves 8-15 ms gaps before many
word-initial fricatives) is transparent: the phones on either side are each other's context.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vgssl.audio.frames import frame_count, frames_inside
from vgssl.data.items import PHONE_FLAVOURS

SILENCE = "SIL"
BRIEF_PAUSE = 0.02


@dataclass(frozen=True)
class AlignedUtterance:
    key: str  # audio path relative to the audio root, without extension (= the item file's #file)
    language: str
    speaker: str
    num_samples: int
    sample_rate: int
    phones: Sequence[tuple[float, float, str]]
    words: Sequence[tuple[float, float, str]]


def _fmt(seconds: float) -> str:
    return f"{seconds:.4f}"


def phone_items(
    utterances: Iterable[AlignedUtterance], *, flavour: str, min_frames: int = 1
) -> list[tuple[str, str, str, str, str, str, str]]:
    """Rows for `phoneme` (the central phone's span) or `triphone` (previous + central + next) item files."""
    if flavour not in PHONE_FLAVOURS:
        raise ValueError(f"flavour must be 'phoneme' or 'triphone', not {flavour!r}")
    rows = []
    for utt in utterances:
        num_frames = frame_count(utt.num_samples, utt.sample_rate)
        phones = [p for p in utt.phones if p[2] != SILENCE or p[1] - p[0] >= BRIEF_PAUSE]
        for index in range(1, len(phones) - 1):
            prev, centre, nxt = phones[index - 1], phones[index], phones[index + 1]
            if SILENCE in (prev[2], centre[2], nxt[2]):
                continue
            onset, offset = (centre[0], centre[1]) if flavour == "phoneme" else (prev[0], nxt[1])
            if frames_inside(onset, offset, num_frames) < min_frames:
                continue
            # The central phone itself must hold a frame too, or a triphone item carries no evidence of it.
            if frames_inside(centre[0], centre[1], num_frames) < 1:
                continue
            rows.append((utt.key, _fmt(onset), _fmt(offset), centre[2], prev[2], nxt[2], utt.speaker))
    return rows


def language_items(
    utterances: Iterable[AlignedUtterance],
    *,
    words_per_span: int = 2,
    min_seconds: float = 0.4,
    max_seconds: float = 1.2,
    bin_seconds: float = 0.2,
) -> list[tuple[str, str, str, str, str, str]]:
    """Rows for the language ABX item file: non-overlapping spans of consecutive words.

    Content is controlled by duration: `length` is the span's duration bin and the ABX task compares A, B and
    X only within one bin, so duration cannot reveal the language. Spans never cross a pause.
    """
    rows = []
    for utt in utterances:
        num_frames = frame_count(utt.num_samples, utt.sample_rate)
        words = list(utt.words)
        pauses = [(on, off) for on, off, label in utt.phones if label == SILENCE and off - on > 0.05]
        start = 0
        while start + words_per_span <= len(words):
            span = words[start : start + words_per_span]
            onset, offset = span[0][0], span[-1][1]
            crosses_pause = any(onset < p_on and p_off < offset for p_on, p_off in pauses)
            duration = offset - onset
            if not crosses_pause and min_seconds <= duration <= max_seconds:
                if frames_inside(onset, offset, num_frames) >= 2:
                    length_bin = f"d{int(duration / bin_seconds) * round(bin_seconds * 100):03d}"
                    rows.append((utt.key, _fmt(onset), _fmt(offset), utt.language, utt.speaker, length_bin))
                start += words_per_span
            else:
                start += 1
    return rows
