"""The study's result files read back, per model, and the comparisons the report makes from them.

A model's phone-ABX summary in one condition (speaker × context): the error of every layer, the best layer
(lowest error, ties to the lower layer, as `vgssl gap` chooses) and the fixed layer of the config (default:
the middle hidden state). "Learning happened" compares a trained model's best layer with a baseline's best
layer through a paired bootstrap over the ABX cells (phone pairs) that both share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vgssl.evaluate.gap import Estimate
from vgssl.evaluate.results import AbxResult, ContextMode, SpeakerMode, read_result
from vgssl.study.grid import Run
from vgssl.study.layout import ModelPaths
from vgssl.study.status import RunStatus, read_status


@dataclass
class ModelResults:
    name: str  # run name or baseline name
    label: str
    paths: ModelPaths
    run: Run | None  # None for baselines
    status: RunStatus
    phone: dict[str, tuple[Path, AbxResult]] = field(default_factory=dict)  # eval language -> result
    language: AbxResult | None = None
    retrieval: dict[str, Any] | None = None


def load_model_results(
    name: str, label: str, paths: ModelPaths, run: Run | None, languages: list[str]
) -> ModelResults:
    results = ModelResults(name, label, paths, run, read_status(paths.status))
    for language in languages:
        path = paths.phone_abx(language)
        if path.is_file():
            results.phone[language] = (path, read_result(path))
    if paths.language_abx.is_file():
        results.language = read_result(paths.language_abx)
    if paths.retrieval.is_file():
        results.retrieval = json.loads(paths.retrieval.read_text(encoding="utf-8"))
    return results


@dataclass(frozen=True)
class LayerSummary:
    errors: dict[int, float]  # layer -> error %
    best_layer: int
    fixed_layer: int

    @property
    def best(self) -> float:
        return self.errors[self.best_layer]

    @property
    def fixed(self) -> float:
        return self.errors[self.fixed_layer]


def summarize_layers(
    result: AbxResult, *, speaker: SpeakerMode, context: ContextMode | None, fixed_layer: int | None
) -> LayerSummary | None:
    """Errors per layer in one condition; None when the result does not have the condition."""
    errors = {s.layer: s.error for s in result.scores if (s.speaker, s.context) == (speaker, context)}
    if not errors:
        return None
    layers = sorted(errors)
    fixed = fixed_layer if fixed_layer in errors else layers[len(layers) // 2]
    return LayerSummary(errors, min(layers, key=lambda layer: (errors[layer], layer)), fixed)


def _cells(
    result: AbxResult, *, layer: int, speaker: SpeakerMode, context: ContextMode
) -> dict[tuple[str, str], float]:
    cells = result.score(layer=layer, speaker=speaker, context=context).cells
    return {(a, b): e for a, b, e in zip(cells.a, cells.b, cells.error, strict=True)}


def paired_difference(
    model: AbxResult,
    model_layer: int,
    baseline: AbxResult,
    baseline_layer: int,
    *,
    speaker: SpeakerMode,
    context: ContextMode,
    replicates: int,
    seed: int,
) -> Estimate | None:
    """Model error minus baseline error (percentage points) with a 95 % interval from resampling the shared
    cells; None when the two results do not share their cells (other item file or subsampling)."""
    ours = _cells(model, layer=model_layer, speaker=speaker, context=context)
    theirs = _cells(baseline, layer=baseline_layer, speaker=speaker, context=context)
    if set(ours) != set(theirs):
        return None
    keys = sorted(ours)
    differences = np.array([ours[key] - theirs[key] for key in keys]) / 100.0
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(keys), np.full(len(keys), 1.0 / len(keys)), size=replicates) / len(keys)
    return Estimate.of(float(differences.mean()), weights @ differences)
