"""The study's grid: objective × training languages × seed, one training run per cell.

Training sets: each language alone, all of them together, and, on request for three or more languages,
every pair. A run's name is also its directory name: `ssl-a_en`, `vgs+_en+fr`, with `_seed<N>` appended
when the study has several seeds. A training set's languages are sorted, as `vgssl gap` names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from vgssl.evaluate.results import Objective


@dataclass(frozen=True)
class Run:
    objective: Objective
    languages: tuple[str, ...]  # training languages, sorted
    seed: int
    name: str  # directory name under DIR/runs

    @property
    def train_set(self) -> str:
        return "+".join(self.languages)

    @property
    def label(self) -> str:
        """How progress lines and the report name the run: `vgs+ en+fr` (plus the seed when it matters)."""
        suffix = self.name.partition("_seed")[2]
        return f"{self.objective} {self.train_set}" + (f" seed {suffix}" if suffix else "")

    @property
    def is_multilingual(self) -> bool:
        return len(self.languages) > 1


def training_sets(languages: Sequence[str], *, pairwise: bool) -> list[tuple[str, ...]]:
    """Each language alone, then every pair (if `pairwise` and there are 3+ languages), then all together."""
    sets = [(language,) for language in languages]
    if pairwise and len(languages) > 2:
        sets += list(combinations(languages, 2))
    if len(languages) > 1:
        sets.append(tuple(languages))
    return [tuple(sorted(train_set)) for train_set in sets]


def enumerate_runs(
    *,
    objectives: Sequence[Objective],
    languages: Sequence[str],
    seeds: Sequence[int],
    pairwise: bool,
) -> list[Run]:
    """Every run of the grid, objective first, then training set, then seed."""
    several_seeds = len(seeds) > 1
    return [
        Run(
            objective=objective,
            languages=train_set,
            seed=seed,
            name=f"{objective}_{'+'.join(train_set)}" + (f"_seed{seed}" if several_seeds else ""),
        )
        for objective in objectives
        for train_set in training_sets(languages, pairwise=pairwise)
        for seed in seeds
    ]
