"""Language ABX items from manifests with language and speaker columns (no alignment needed).

A segment is either a fixed-length window of an utterance (`window` seconds, back to back from the start)
or a whole utterance. Its `length` column is a duration bin (`d100` = 1.00 s and up to the next bin;
every window has one bin), and the language ABX task compares A, B and X only within one bin. So that
duration cannot give the language away, the segments are balanced: in every bin each language keeps as
many segments as the rarest language has there (a bin some language lacks is dropped), drawn at random
with `seed`, after at most `max_per_speaker` segments per speaker and language were drawn the same way.

A segment is kept only when at least two frame times lie inside it and all of them are frames of the file
(the frame rule of the phone items, `phone_items.frames_inside`); a whole utterance ends at `0.02 n` s,
where n is its frame count, so its last frame is inside.

`vgssl abx-lang` draws A and B from one speaker and X from another (across speaker): it needs speakers
who speak two of the languages; `speaker_notes` warns when there are none (LibriSpeech and MLS speakers
are monolingual).
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from vgssl.audio.frames import FRAME_SHIFT, frame_count, frames_inside
from vgssl.data.manifest import Manifest
from vgssl.errors import BadOptionError, VgsslError
from vgssl.prepare.phone_items import seconds, speaker_of

LanguageRow = tuple[str, str, str, str, str, str]
_SHOWN = 5


class LanguageItemsError(VgsslError):
    """Manifests that cannot make language ABX items (one language, clashing keys, nothing left)."""


@dataclass(frozen=True)
class SegmentRules:
    window: float | None  # seconds; None: whole utterances
    bin_seconds: float  # width of the duration bins of whole utterances
    min_seconds: float
    max_seconds: float | None
    windows_per_utterance: int | None  # at most this many windows of one utterance (drawn at random)


def length_bin(duration: float, bin_seconds: float) -> str:
    """The `length` label of a segment: its bin's lower edge in centiseconds, e.g. `d120`."""
    return f"d{int(duration / bin_seconds + 1e-9) * round(bin_seconds * 100):03d}"


def manifest_language(manifest: Manifest) -> str:
    """The one language of a manifest's entries (its language column, else its name `{lang}_{split}.tsv`)."""
    languages = {entry.language for entry in manifest.entries}
    if None in languages or not languages:
        name = manifest.source.name
        raise LanguageItemsError(
            f"{manifest.source}: {'entries have' if languages else 'it has no entries, so'} no language "
            f"column, and its name {name!r} does not say one (`{{lang}}_{{split}}.tsv`); name it so or add "
            "the column"
        )
    if len(languages) > 1:
        raise LanguageItemsError(
            f"{manifest.source} mixes languages {sorted(languages)}; give one manifest per language"
        )
    return next(iter(languages))  # type: ignore[return-value]  # None was refused above


def segment_rows(
    manifests: Sequence[Manifest], rules: SegmentRules, *, rng: random.Random, prefix_speakers: bool
) -> list[LanguageRow]:
    """Every segment of every manifest, before balancing."""
    rows: list[LanguageRow] = []
    owner: dict[str, Manifest] = {}
    for manifest in manifests:
        language = manifest_language(manifest)
        for entry in manifest.entries:
            if (other := owner.setdefault(entry.key, manifest)) is not manifest:
                raise LanguageItemsError(
                    f"key {entry.key} is in both {other.source} and {manifest.source}: feature files are "
                    "named by key, so two audio files cannot share one; give manifests of disjoint audio"
                )
            speaker = speaker_of(entry, manifest)
            if prefix_speakers:
                speaker = f"{language}:{speaker}"
            num_frames = frame_count(entry.num_samples)
            for onset, offset, length in _segments(num_frames, rules, rng):
                if frames_inside(onset, offset, num_frames) >= 2:
                    rows.append((entry.key, seconds(onset), seconds(offset), language, speaker, length))
    return rows


def _segments(num_frames: int, rules: SegmentRules, rng: random.Random) -> list[tuple[float, float, str]]:
    end = num_frames * FRAME_SHIFT  # the latest offset whose frame times are all frames of the file
    if rules.window is None:
        if end < rules.min_seconds or (rules.max_seconds is not None and end > rules.max_seconds):
            return []
        return [(0.0, end, length_bin(end, rules.bin_seconds))]
    count = int(end / rules.window + 1e-9)
    label = length_bin(rules.window, rules.window)
    starts = [k * rules.window for k in range(count)]
    if rules.windows_per_utterance is not None and len(starts) > rules.windows_per_utterance:
        starts = sorted(rng.sample(starts, rules.windows_per_utterance))
    return [(start, start + rules.window, label) for start in starts]


def balance(
    rows: Sequence[LanguageRow], *, languages: Sequence[str], max_per_speaker: int | None, rng: random.Random
) -> list[LanguageRow]:
    """At most `max_per_speaker` rows per (language, speaker), then as many rows of each language in every
    length bin as the rarest language has there. Sorted by language, file and onset."""
    by_speaker: dict[tuple[str, str], list[LanguageRow]] = defaultdict(list)
    for row in rows:
        by_speaker[(row[3], row[4])].append(row)
    capped: list[LanguageRow] = []
    for key in sorted(by_speaker):
        group = by_speaker[key]
        if max_per_speaker is not None and len(group) > max_per_speaker:
            group = rng.sample(group, max_per_speaker)
        capped.extend(group)
    by_bin: dict[str, dict[str, list[LanguageRow]]] = defaultdict(lambda: defaultdict(list))
    for row in capped:
        by_bin[row[5]][row[3]].append(row)
    kept: list[LanguageRow] = []
    for length in sorted(by_bin):
        per_language = by_bin[length]
        count = min(len(per_language.get(language, ())) for language in languages)
        for language in languages:
            kept.extend(rng.sample(per_language[language], count) if count else [])
    return sorted(kept, key=lambda row: (row[3], row[0], float(row[1])))


def speaker_notes(rows: Sequence[LanguageRow]) -> list[str]:
    """Warnings about speakers that make the language ABX task empty or weak."""
    languages_of: dict[str, set[str]] = defaultdict(set)
    speakers_of: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        languages_of[row[4]].add(row[3])
        speakers_of[row[3]].add(row[4])
    notes = []
    bilingual = sorted(speaker for speaker, languages in languages_of.items() if len(languages) > 1)
    if not bilingual:
        notes.append(
            "warning: no speaker speaks two of the languages; `vgssl abx-lang` takes A and B (of different "
            "languages) from one speaker and X from another, so it will find no triplet on these items. "
            "Language ABX needs bilingual speakers (the built-in corpus has them)"
        )
    else:
        notes.append(
            f"note: {len(bilingual)} speaker id(s) occur in several languages (e.g. "
            f"{', '.join(bilingual[:_SHOWN])}); if they are different people whose ids merely collide "
            "(LibriSpeech and MLS both number their speakers), pass --prefix-speakers"
        )
    for language, speakers in sorted(speakers_of.items()):
        if len(speakers) < 2:
            notes.append(
                f"warning: {language} has {len(speakers)} speaker(s); X must come from another speaker than "
                "A and B, so language ABX needs at least two per language"
            )
    return notes


def check_languages(manifests: Sequence[Manifest]) -> list[str]:
    languages = [manifest_language(m) for m in manifests]
    if len(set(languages)) < 2:
        raise BadOptionError(
            f"language ABX compares languages: give manifests of at least two (--manifest en_test.tsv "
            f"--manifest fr_test.tsv); got {', '.join(os.fspath(m.source) for m in manifests)} "
            f"({', '.join(languages)})"
        )
    return sorted(set(languages))
