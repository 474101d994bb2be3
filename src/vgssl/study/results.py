"""The study's result files read back, per model, and the comparisons the report makes from them.

A model's phone-ABX summary in one condition (speaker × context): the test error of every layer, the chosen
layer, the best layer on test and the fixed layer of the config (default: the middle hidden state). The
chosen layer is the one with the lowest error on the valid items (ties to the lower layer, as `vgssl gap`
chooses), and the summary reports the test error there; only where there is no valid result for the
condition is it the best layer on the test items, with a warning saying why. "Learning happened" compares a
trained model's chosen layer with a baseline's chosen layer through a paired bootstrap over the ABX cells
(phone pairs) that both share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vgssl.evaluate.gap import Estimate, RunScore
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
    valid_phone: dict[str, tuple[Path, AbxResult]] = field(default_factory=dict)  # on the valid items
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
        valid = paths.valid_phone_abx(language)
        if valid.is_file():
            results.valid_phone[language] = (valid, read_result(valid))
    if paths.language_abx.is_file():
        results.language = read_result(paths.language_abx)
    if paths.retrieval.is_file():
        results.retrieval = json.loads(paths.retrieval.read_text(encoding="utf-8"))
    return results


ChosenOn = Literal["valid", "test"]


@dataclass(frozen=True)
class LayerSummary:
    errors: dict[int, float]  # layer -> test error %
    chosen_layer: int  # lowest valid error; the best on test only where `chosen_on` is "test"
    chosen_on: ChosenOn
    test_best_layer: int  # lowest test error: for reference, never the reported number when valid exists
    fixed_layer: int
    valid_errors: dict[int, float] | None = None  # layer -> valid error %, None without a valid result
    warning: str | None = None  # why the layer was chosen on test

    @property
    def chosen(self) -> float:
        return self.errors[self.chosen_layer]

    @property
    def test_best(self) -> float:
        return self.errors[self.test_best_layer]

    @property
    def fixed(self) -> float:
        return self.errors[self.fixed_layer]


def _lowest(errors: dict[int, float]) -> int:
    return min(errors, key=lambda layer: (errors[layer], layer))


def _condition_errors(
    result: AbxResult, speaker: SpeakerMode, context: ContextMode | None
) -> dict[int, float]:
    return {s.layer: s.error for s in result.scores if (s.speaker, s.context) == (speaker, context)}


def summarize_layers(
    result: AbxResult,
    *,
    speaker: SpeakerMode,
    context: ContextMode | None,
    fixed_layer: int | None,
    valid: AbxResult | None = None,
    no_valid: str | None = None,
) -> LayerSummary | None:
    """Errors per layer in one condition, the layer chosen on `valid`; None when `result` lacks the condition.

    Without a usable valid result the layer is the best on test, with `no_valid` (why there is no valid
    result; None: no warning, e.g. for language ABX, which has no valid items) or the reason as warning.
    """
    errors = _condition_errors(result, speaker, context)
    if not errors:
        return None
    layers = sorted(errors)
    fixed = fixed_layer if fixed_layer in errors else layers[len(layers) // 2]
    test_best = _lowest(errors)
    condition = f"{speaker}-speaker, {context}-context"
    if valid is None:
        return LayerSummary(errors, test_best, "test", test_best, fixed, warning=no_valid)
    valid_errors = _condition_errors(valid, speaker, context)
    shared = {layer: error for layer, error in valid_errors.items() if layer in errors}
    if not shared:
        warning = (
            f"the valid items have no {condition} ABX triplet"
            if not valid_errors
            else f"the valid result has none of the test result's layers {layers} in {condition}"
        )
        return LayerSummary(errors, test_best, "test", test_best, fixed, valid_errors or None, warning)
    return LayerSummary(errors, _lowest(shared), "valid", test_best, fixed, valid_errors)


def rescore_at_layer(
    run: RunScore, result: AbxResult, *, layer: int, speaker: SpeakerMode, context: ContextMode
) -> RunScore:
    """`run` (scored by `vgssl gap`'s selection) at another layer of its test result `result`."""
    score = result.score(layer=layer, speaker=speaker, context=context)
    cells = {(a, b): e for a, b, e in zip(score.cells.a, score.cells.b, score.cells.error, strict=True)}
    return replace(run, layer=layer, error=score.error, cells=cells)


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
