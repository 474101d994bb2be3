"""Language mixture policies: which utterances of which language a run trains on.

The study compares monolingual and multilingual models at a matched budget, so the selection is part of the
experiment: it is deterministic from the seed (and independent of the number of ranks) and reported in hours
per language.

* `mono`: one language; `hours` of it (default: all).
* `matched-total`: the same total audio as a monolingual run, split equally: each of L languages gives
  hours / L (default: as much as every language can give equally).
* `matched-per-language`: each language gives `hours` (default: as much as every language can give).
* `temperature`: sampling probability p_l ∝ (n_l / Σn)^α for unbalanced sets (α = 1: proportional, α → 0:
  uniform); language l gets p_l × total, and a language with less audio than its share is repeated
  (upsampled), as in XLSR. The total defaults to all the audio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vgssl.errors import VgsslError
from vgssl.train.config import MixturePolicy

SECONDS_PER_HOUR = 3600.0


class MixtureError(VgsslError):
    """The requested mixture cannot be made from the audio that is there."""


@dataclass(frozen=True)
class Utterance:
    utt_id: str  # the manifest entry's key: its relative path without extension
    path: Path
    num_samples: int
    language: str
    source: str  # "manifest:line", for error messages


@dataclass(frozen=True)
class LanguageShare:
    language: str
    available_seconds: float
    available_utterances: int
    selected_seconds: float
    selected_utterances: int  # repeats included

    def summary(self) -> str:
        repeat = self.selected_seconds / self.available_seconds if self.available_seconds else 0.0
        return (
            f"{self.language}: {self.selected_seconds / SECONDS_PER_HOUR:.3f} h selected "
            f"({self.selected_utterances} utterances) of {self.available_seconds / SECONDS_PER_HOUR:.3f} h "
            f"available ({self.available_utterances}); {repeat:.2f}x of the available audio"
        )


@dataclass(frozen=True)
class Selection:
    utterances: tuple[Utterance, ...]
    shares: tuple[LanguageShare, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "languages": {
                share.language: {
                    "available_hours": share.available_seconds / SECONDS_PER_HOUR,
                    "available_utterances": share.available_utterances,
                    "selected_hours": share.selected_seconds / SECONDS_PER_HOUR,
                    "selected_utterances": share.selected_utterances,
                }
                for share in self.shares
            },
            "total_hours": sum(share.selected_seconds for share in self.shares) / SECONDS_PER_HOUR,
        }


def select_mixture(
    pool: Mapping[str, Sequence[Utterance]],
    *,
    policy: MixturePolicy,
    hours: float | None,
    temperature_alpha: float,
    seed: int,
    sample_rate: int,
) -> Selection:
    """Choose the training utterances of each language in `pool` (language -> utterances, in file order)."""
    languages = sorted(language for language, utterances in pool.items() if utterances)
    if not languages:
        raise MixtureError("no training utterances are left; check the manifests and data.min_seconds")
    available = {lang: sum(u.num_samples for u in pool[lang]) / sample_rate for lang in languages}
    targets = _target_seconds(available, policy=policy, hours=hours, alpha=temperature_alpha)
    upsample = policy == "temperature"
    selected: list[Utterance] = []
    shares = []
    for language in languages:
        if targets[language] > available[language] * (1 + 1e-9) and not upsample:
            raise MixtureError(
                f"mixture {policy!r} asks {targets[language] / SECONDS_PER_HOUR:.3f} h of {language!r}, but "
                f"its manifests hold only {available[language] / SECONDS_PER_HOUR:.3f} h (after dropping "
                "short utterances); lower data.hours, leave it unset to use the largest matched budget, or "
                "add audio"
            )
        rng = np.random.default_rng([seed, *language.encode("utf-8")])
        chosen = _take_seconds(pool[language], targets[language], rng=rng, sample_rate=sample_rate)
        selected.extend(chosen)
        shares.append(
            LanguageShare(
                language=language,
                available_seconds=available[language],
                available_utterances=len(pool[language]),
                selected_seconds=sum(u.num_samples for u in chosen) / sample_rate,
                selected_utterances=len(chosen),
            )
        )
    return Selection(utterances=tuple(selected), shares=tuple(shares))


def _target_seconds(
    available: Mapping[str, float], *, policy: MixturePolicy, hours: float | None, alpha: float
) -> dict[str, float]:
    languages = list(available)
    budget = None if hours is None else hours * SECONDS_PER_HOUR
    if policy == "mono":
        if len(languages) != 1:
            raise MixtureError(
                f"mixture 'mono' needs exactly one language, but the training manifests hold {languages}; "
                "use mixture 'matched-total' for a multilingual run"
            )
        return {languages[0]: available[languages[0]] if budget is None else budget}
    if policy == "matched-total":
        per_language = min(available.values()) if budget is None else budget / len(languages)
        return dict.fromkeys(languages, per_language)
    if policy == "matched-per-language":
        per_language = min(available.values()) if budget is None else budget
        return dict.fromkeys(languages, per_language)
    total = sum(available.values())
    weights = {lang: (seconds / total) ** alpha for lang, seconds in available.items()}
    norm = sum(weights.values())
    run_total = total if budget is None else budget
    return {lang: run_total * weight / norm for lang, weight in weights.items()}


def _take_seconds(
    utterances: Sequence[Utterance], target_seconds: float, *, rng: np.random.Generator, sample_rate: int
) -> list[Utterance]:
    """Shuffled utterances until `target_seconds` is reached (the last one may overshoot by < 1 utterance).

    A target beyond the available audio repeats it, each pass in a new order.
    """
    chosen: list[Utterance] = []
    # Compare in samples to stay exact when the target is all the audio (the default budgets).
    target_samples = round(target_seconds * sample_rate)
    total = 0
    while total < target_samples:
        for index in rng.permutation(len(utterances)):
            if total >= target_samples:
                break
            chosen.append(utterances[index])
            total += utterances[index].num_samples
    return chosen
