"""Phone ABX items from forced alignments of a manifest's audio, by the built-in corpus's rules.

An alignment is matched to a manifest entry by the entry's key (its audio path relative to the manifest
root, without extension: the item file's `#file`) or, failing that, by the key's last part (the utterance
id, as MFA names `<speaker>/<uttid>.TextGrid` and Kaldi names CTM utterances). It is then fitted to the
audio: an alignment whose speech ends past the audio (by more than a tolerance) is an error, a silence that
does is cut at the audio's end.

Item rules (README, "Item-file conventions"), as `vgssl synth` writes its items:

* frames at 50 Hz, frame i at 0.01 + 0.02 i s, `floor((N - 400) / 320) + 1` frames for N samples at 16 kHz;
  an item is written only if at least one frame time lies inside it and every frame time inside it is a
  frame of the file (`frames_inside`), and a triphone item's central phone holds a frame time too;
* silences are never central nor context phones; a silence shorter than `brief_pause` is transparent (the
  phones on either side are each other's context), as in the built-in corpus;
* zero-length phones were dropped when the alignment was read (`alignment_readers.normalise`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vgssl.audio.frames import SAMPLE_RATE, frame_count, frames_inside
from vgssl.data.alignments import SILENCE, Alignment, Segment
from vgssl.data.items import PHONE_FLAVOURS
from vgssl.data.manifest import Manifest, ManifestEntry
from vgssl.errors import VgsslError
from vgssl.prepare.alignment_readers import AlignmentSourceError, DuplicateAlignmentError, RawAlignment

BRIEF_PAUSE = 0.02  # seconds; the built-in corpus's rule
_SHOWN = 5

PhoneRow = tuple[str, str, str, str, str, str, str]


class AlignmentLongerThanAudioError(AlignmentSourceError):
    """An alignment's phones end after its audio does."""


class NoMatchingAlignmentsError(AlignmentSourceError):
    """No alignment matches any utterance of the manifest."""


class AmbiguousAlignmentError(AlignmentSourceError):
    """An alignment's utterance id is the last part of several manifest keys."""


class MissingSpeakerError(VgsslError):
    """A manifest entry has no speaker column, which ABX items need."""


@dataclass(frozen=True)
class AlignedUtterance:
    key: str  # the item file's #file: the manifest entry's path without extension
    speaker: str
    num_samples: int  # at 16 kHz, from the manifest
    alignment: Alignment
    source: str  # where the alignment came from, for messages


@dataclass(frozen=True)
class Matching:
    matched: list[tuple[ManifestEntry, RawAlignment]]
    unmatched_alignments: list[RawAlignment]  # no manifest utterance of that id
    unaligned_entries: list[ManifestEntry]  # no alignment of that utterance

    def warnings(self, manifest: Manifest, source: str) -> list[str]:
        notes = []
        if self.unmatched_alignments:
            shown = ", ".join(a.utterance for a in self.unmatched_alignments[:_SHOWN])
            total = len(self.unmatched_alignments) + len(self.matched)
            notes.append(
                f"warning: {len(self.unmatched_alignments)} of {total} alignments in {source} are of "
                f"utterances not in {manifest.source} (e.g. {shown}); they are left out"
            )
        if self.unaligned_entries:
            shown = ", ".join(e.key for e in self.unaligned_entries[:_SHOWN])
            notes.append(
                f"warning: {len(self.unaligned_entries)} of {len(manifest)} utterances of {manifest.source} "
                f"have no alignment in {source} (e.g. {shown}); they get no items (the aligner may have "
                "skipped them: see its log)"
            )
        return notes


def match_alignments(manifest: Manifest, alignments: Sequence[RawAlignment], *, source: str) -> Matching:
    """Pair every alignment with its manifest entry (by key, else by utterance id); none matching at all is
    an error that shows an id of each side."""
    by_key = {entry.key: entry for entry in manifest.entries}
    by_id: dict[str, list[ManifestEntry]] = {}
    for entry in manifest.entries:
        by_id.setdefault(os.path.basename(entry.key), []).append(entry)
    matched: dict[str, tuple[ManifestEntry, RawAlignment]] = {}
    unmatched = []
    for alignment in alignments:
        entry = by_key.get(alignment.relative)
        if entry is None:
            candidates = by_id.get(alignment.utterance, [])
            if len(candidates) > 1:
                raise AmbiguousAlignmentError(
                    f"{alignment.source}: utterance {alignment.utterance!r} could be any of "
                    f"{', '.join(e.key for e in candidates[:_SHOWN])} in {manifest.source}; lay the "
                    "alignments out like the manifest's paths (<dir>/<uttid>.TextGrid) so they match by key"
                )
            entry = candidates[0] if candidates else None
        if entry is None:
            unmatched.append(alignment)
            continue
        if entry.key in matched:
            raise DuplicateAlignmentError(
                f"utterance {entry.key} of {manifest.source} is aligned twice: in "
                f"{matched[entry.key][1].source} and in {alignment.source}; keep one"
            )
        matched[entry.key] = (entry, alignment)
    if not matched:
        example_alignment = alignments[0].utterance if alignments else "none"
        example_entry = manifest.entries[0].key if manifest.entries else "none"
        raise NoMatchingAlignmentsError(
            f"none of the {len(alignments)} alignments in {source} matches an utterance of {manifest.source} "
            f"({len(manifest)} utterances): e.g. alignment {example_alignment!r} vs manifest key "
            f"{example_entry!r}. An alignment matches by the manifest key or its last part (the utterance "
            "id); give the alignments of this manifest's audio"
        )
    entries = [e for e in manifest.entries if e.key in matched]
    unaligned = [e for e in manifest.entries if e.key not in matched]
    return Matching([matched[e.key] for e in entries], unmatched, unaligned)


def speaker_of(entry: ManifestEntry, manifest: Manifest) -> str:
    if not entry.speaker:
        raise MissingSpeakerError(
            f"{manifest.source}: entry {entry.path} has no speaker (4th column); phone ABX items need the "
            "speaker of every utterance: write the manifest with path, num_samples, language, speaker "
            "(`vgssl prepare librispeech`/`mls` do)"
        )
    return entry.speaker


def fit_to_audio(alignment: Alignment, *, num_samples: int, tolerance: float, where: str) -> Alignment:
    """The alignment cut at the end of its audio; speech that ends later than the audio by more than
    `tolerance` seconds is an `AlignmentLongerThanAudioError`."""
    duration = num_samples / SAMPLE_RATE
    speech = [p for p in alignment.phones if p.label != SILENCE]
    if speech and speech[-1].offset > duration + tolerance:
        raise AlignmentLongerThanAudioError(
            f"{where}: phone {speech[-1].label!r} ends at {speech[-1].offset:.3f} s but the audio lasts "
            f"{duration:.3f} s ({num_samples} samples at 16 kHz in the manifest); the alignment is of "
            "other audio (or of audio at another sample rate): re-align this file, or check the manifest"
        )

    def cut(segments: Sequence[Segment]) -> tuple[Segment, ...]:
        return tuple(
            Segment(s.onset, min(s.offset, duration), s.label) for s in segments if s.onset < duration
        )

    return Alignment(cut(alignment.phones), cut(alignment.words))


def seconds(value: float) -> str:
    """A time as item files write it: four decimals."""
    return f"{value:.4f}"


def phone_item_rows(
    utterances: Iterable[AlignedUtterance], *, flavour: str, brief_pause: float = BRIEF_PAUSE
) -> list[PhoneRow]:
    """Rows `#file onset offset #phone prev-phone next-phone speaker` of a `phoneme` (the central phone's
    span) or `triphone` (previous, central and next phone) item file."""
    if flavour not in PHONE_FLAVOURS:
        raise ValueError(f"flavour must be one of {PHONE_FLAVOURS}, not {flavour!r}")
    rows: list[PhoneRow] = []
    for utt in utterances:
        num_frames = frame_count(utt.num_samples)
        phones = [p for p in utt.alignment.phones if p.label != SILENCE or p.offset - p.onset >= brief_pause]
        for index in range(1, len(phones) - 1):
            prev, centre, nxt = phones[index - 1], phones[index], phones[index + 1]
            if SILENCE in (prev.label, centre.label, nxt.label):
                continue
            onset, offset = (
                (centre.onset, centre.offset) if flavour == "phoneme" else (prev.onset, nxt.offset)
            )
            if frames_inside(onset, offset, num_frames) < 1:
                continue
            if frames_inside(centre.onset, centre.offset, num_frames) < 1:
                continue
            rows.append(
                (utt.key, seconds(onset), seconds(offset), centre.label, prev.label, nxt.label, utt.speaker)
            )
    return rows
