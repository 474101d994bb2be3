"""Synthetic speakers: an espeak voice variant with a speaking rate, a pitch and a pitch range.

Across-speaker ABX is the informative condition on espeak speech, so speakers are spread to differ as much as
the voices allow. Each speaker is a cell of a grid (variant x rate x pitch x pitch range); `make_speakers`
picks cells one at a time, always the one farthest from those already picked (ties broken by a seeded
generator), with a new variant counting more than any change of rate and pitch, and a change of gender next.
Test speakers use variants no training speaker uses (new voices); when there are more speakers than variants,
the variants are shared out in proportion to the two counts. Every speaker speaks every language: a variant
changes the voice, not the language.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vgssl.corpus.espeak import Voice, available_variants, variant_genders
from vgssl.errors import VgsslError

RATES = tuple(range(140, 211, 10))  # words per minute
PITCHES = tuple(range(30, 71, 10))
PITCH_RANGES = (30, 50, 70, 90)
# Variants left out of the speaker pool: robots whose echo feeds back (amplitude > 100 %), which blurs
# phone boundaries; voices without voicing (whisper, and caleb's voicing 0); the "fast" test voice.
EXCLUDED_VARIANTS = frozenset(
    {"Demonic", "RicishayMax", "RicishayMax2", "RicishayMax3", "UniRobot", "anikaRobot"}
    | {"robosoft", *(f"robosoft{i}" for i in range(2, 9))}
    | {"whisper", "whisperf", "caleb", "fast"}
)
# Distances between grid cells: a new variant outweighs any change of rate, pitch and range (at most 3).
_NEW_VARIANT_DISTANCE = 4.0
_NEW_GENDER_DISTANCE = 3.0


class SpeakerCountError(VgsslError):
    """The requested numbers of speakers cannot be made."""


@dataclass(frozen=True)
class Speaker:
    id: str
    variant: str
    rate: int
    pitch: int
    pitch_range: int

    def voice(self, language: str) -> Voice:
        """This speaker's voice in an espeak language ("en-us", "fr", ...)."""
        return Voice(language, self.variant, self.rate, self.pitch, self.pitch_range)


def speaker_variants() -> list[str]:
    """The variants speakers are made from: the installed ones minus `EXCLUDED_VARIANTS`."""
    return [variant for variant in available_variants() if variant not in EXCLUDED_VARIANTS]


def make_speakers(*, n_train: int, n_test: int, seed: int) -> tuple[list[Speaker], list[Speaker]]:
    """`n_train` training and `n_test` test speakers, disjoint, spread apart, the same for the same seed.

    Ids run s00, s01, ... over the training speakers, then the test speakers.
    """
    for name, count in (("n_train", n_train), ("n_test", n_test)):
        if count < 1:
            raise SpeakerCountError(
                f"{name} must be at least 1, got {count}: the corpus needs training speakers and held-out "
                "test speakers for across-speaker evaluation"
            )
    variants = speaker_variants()
    cells_per_variant = len(RATES) * len(PITCHES) * len(PITCH_RANGES)
    if len(variants) < 2:
        raise SpeakerCountError(
            f"train and test speakers need different voices, but only {len(variants)} usable espeak "
            "variant(s) are installed; reinstall the espeakng-loader package"
        )
    total = n_train + n_test
    if total <= len(variants):
        n_test_variants = n_test
    else:
        n_test_variants = min(max(round(len(variants) * n_test / total), 1), len(variants) - 1)
    for name, count, n_variants in (
        ("test", n_test, n_test_variants),
        ("training", n_train, len(variants) - n_test_variants),
    ):
        if count > n_variants * cells_per_variant:
            raise SpeakerCountError(
                f"cannot make {count} distinct {name} speakers from {n_variants} voice variants x "
                f"{cells_per_variant} rate/pitch/range settings; with {total} speakers in all, use at most "
                f"{n_variants * cells_per_variant} {name} speakers"
            )
    rng = np.random.default_rng(seed)
    genders = variant_genders()
    test_variants = sorted({cell[0] for cell in _spread(variants, genders, n_test_variants, rng)})
    train_variants = [variant for variant in variants if variant not in test_variants]
    width = max(2, len(str(total - 1)))
    train = [
        Speaker(f"s{index:0{width}d}", *cell)
        for index, cell in enumerate(_spread(train_variants, genders, n_train, rng))
    ]
    test = [
        Speaker(f"s{n_train + index:0{width}d}", *cell)
        for index, cell in enumerate(_spread(test_variants, genders, n_test, rng))
    ]
    return train, test


def _spread(
    variants: list[str], genders: dict[str, str], count: int, rng: np.random.Generator
) -> list[tuple[str, int, int, int]]:
    """`count` grid cells, each the farthest from those picked before (a greedy maximin design)."""
    grid = np.array(
        [
            (v, r, p, q)
            for v in range(len(variants))
            for r in range(len(RATES))
            for p in range(len(PITCHES))
            for q in range(len(PITCH_RANGES))
        ]
    )
    gender_of = np.array([genders[variant] for variant in variants])[grid[:, 0]]
    scaled = grid[:, 1:] / (np.array([len(RATES), len(PITCHES), len(PITCH_RANGES)]) - 1)
    nearest = np.full(len(grid), np.inf)
    picked: list[int] = []
    for _ in range(count):
        candidates = np.flatnonzero(nearest >= nearest.max() - 1e-9)
        choice = int(rng.choice(candidates))
        picked.append(choice)
        distance = (
            _NEW_VARIANT_DISTANCE * (grid[:, 0] != grid[choice, 0])
            + _NEW_GENDER_DISTANCE * (gender_of != gender_of[choice])
            + np.abs(scaled - scaled[choice]).sum(axis=1)
        )
        nearest = np.minimum(nearest, distance)
        nearest[choice] = -np.inf  # never pick a cell twice
    return [
        (variants[grid[i, 0]], RATES[grid[i, 1]], PITCHES[grid[i, 2]], PITCH_RANGES[grid[i, 3]])
        for i in picked
    ]
