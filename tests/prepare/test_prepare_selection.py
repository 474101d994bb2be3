"""Selection by hours: whole utterances, speakers balanced, at the budget, deterministic for a seed."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from vgssl.data.manifest import ManifestEntry
from vgssl.errors import BadOptionError
from vgssl.prepare.selection import select_by_hours

RATE = 16_000


def _entries(speakers: int = 8, per_speaker: int = 30, seed: int = 0) -> list[ManifestEntry]:
    rng = np.random.default_rng(seed)
    entries = []
    for s in range(speakers):
        for u in range(per_speaker):
            seconds = rng.uniform(1.0, 15.0) * (2.0 if s == 0 else 1.0)  # speaker 0 talks in long utterances
            entries.append(ManifestEntry(f"spk{s}/utt{u}.flac", int(seconds * RATE), speaker=f"spk{s}"))
    return entries


def _hours(entries: list[ManifestEntry]) -> float:
    return sum(e.num_samples for e in entries) / RATE / 3600


def test_budget_is_met_within_half_an_utterance() -> None:
    entries = _entries()
    longest = max(e.num_samples for e in entries) / RATE / 3600
    for hours in (0.05, 0.1, 0.2, 0.3):
        chosen = select_by_hours(entries, hours=hours, seed=0)
        assert abs(_hours(chosen) - hours) <= longest / 2 + 1e-12, hours
        assert 0 < len(chosen) < len(entries)


def test_whole_utterances_in_input_order_without_repeats() -> None:
    entries = _entries()
    chosen = select_by_hours(entries, hours=0.2, seed=3)
    assert len(set(chosen)) == len(chosen)
    assert all(entry in entries for entry in chosen)
    positions = [entries.index(entry) for entry in chosen]
    assert positions == sorted(positions)


def test_speakers_contribute_about_equally_in_seconds() -> None:
    entries = _entries()
    longest = max(e.num_samples for e in entries)
    chosen = select_by_hours(entries, hours=0.25, seed=1)
    seconds: dict[str, int] = defaultdict(int)
    for entry in chosen:
        seconds[entry.speaker] += entry.num_samples
    assert len(seconds) == 8
    # every speaker has utterances left at this budget, so the fair round-robin keeps them within one
    # utterance of each other, even speaker 0 whose utterances are twice as long
    assert max(seconds.values()) - min(seconds.values()) <= longest
    counts = Counter(entry.speaker for entry in chosen)
    assert counts["spk0"] < min(count for speaker, count in counts.items() if speaker != "spk0")


def test_same_seed_same_selection_other_seed_other_selection() -> None:
    entries = _entries()
    first = select_by_hours(entries, hours=0.1, seed=7)
    assert select_by_hours(list(entries), hours=0.1, seed=7) == first
    assert select_by_hours(entries, hours=0.1, seed=8) != first


def test_no_budget_takes_all_and_a_large_budget_takes_all() -> None:
    entries = _entries(speakers=2, per_speaker=3)
    assert select_by_hours(entries, hours=None, seed=0) == entries
    assert select_by_hours(entries, hours=100.0, seed=0) == entries


def test_a_tiny_budget_still_takes_one_utterance() -> None:
    entries = _entries(speakers=3, per_speaker=4)
    assert len(select_by_hours(entries, hours=1e-9, seed=0)) == 1


@pytest.mark.parametrize("hours", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_budgets_are_named_errors(hours: float) -> None:
    with pytest.raises(BadOptionError, match="positive"):
        select_by_hours(_entries(speakers=1, per_speaker=2), hours=hours, seed=0)
