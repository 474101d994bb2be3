"""Synthetic speakers: disjoint, spread, reproducible, with clear errors for impossible counts."""

import pytest

from vgssl.corpus.espeak import available_variants, synthesize
from vgssl.corpus.speakers import (
    PITCH_RANGES,
    PITCHES,
    RATES,
    Speaker,
    SpeakerCountError,
    make_speakers,
    speaker_variants,
)


def settings(speaker: Speaker) -> tuple[str, int, int, int]:
    return (speaker.variant, speaker.rate, speaker.pitch, speaker.pitch_range)


def test_train_and_test_speakers_are_disjoint_new_voices_with_ids_in_order() -> None:
    train, test = make_speakers(n_train=16, n_test=4, seed=0)
    assert [s.id for s in train + test] == [f"s{i:02d}" for i in range(20)]
    assert not {s.variant for s in train} & {s.variant for s in test}
    assert len({s.variant for s in train + test}) == 20
    assert set(speaker_variants()) <= set(available_variants())
    assert {s.variant for s in train + test} <= set(speaker_variants())


def test_speakers_are_spread_over_rate_pitch_and_range() -> None:
    train, _ = make_speakers(n_train=16, n_test=4, seed=3)
    for values, allowed in (
        ([s.rate for s in train], RATES),
        ([s.pitch for s in train], PITCHES),
        ([s.pitch_range for s in train], PITCH_RANGES),
    ):
        assert set(values) <= set(allowed)
        assert min(values) == allowed[0] and max(values) == allowed[-1]


def test_speakers_are_stable_for_a_seed_and_change_with_it() -> None:
    first = make_speakers(n_train=6, n_test=3, seed=11)
    assert make_speakers(n_train=6, n_test=3, seed=11) == first
    assert make_speakers(n_train=6, n_test=3, seed=12) != first


def test_more_speakers_than_variants_share_voices_but_stay_distinct() -> None:
    n_variants = len(speaker_variants())
    train, test = make_speakers(n_train=2 * n_variants, n_test=n_variants // 2, seed=0)
    assert len({settings(s) for s in train + test}) == len(train) + len(test)
    assert not {s.variant for s in train} & {s.variant for s in test}
    assert len({s.id for s in train + test}) == len(train) + len(test)
    assert train[0].id == "s000"


def test_a_speaker_speaks_every_language() -> None:
    speaker = make_speakers(n_train=1, n_test=1, seed=0)[1][0]
    for language, text in (("en-us", "a red circle"), ("fr", "un cercle rouge")):
        voice = speaker.voice(language)
        assert voice.name == f"{language}+{speaker.variant}" and voice.rate == speaker.rate
        assert synthesize(text, voice).audio.size > 0


@pytest.mark.parametrize(
    ("n_train", "n_test", "fragment"),
    [
        (0, 2, "n_train must be at least 1"),
        (3, 0, "n_test must be at least 1"),
        (-1, 2, "n_train must be at least 1"),
        (10**6, 2, "cannot make 1000000 distinct training speakers"),
    ],
)
def test_impossible_counts_are_refused(n_train: int, n_test: int, fragment: str) -> None:
    with pytest.raises(SpeakerCountError, match=fragment):
        make_speakers(n_train=n_train, n_test=n_test, seed=0)
