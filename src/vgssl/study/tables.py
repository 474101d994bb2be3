"""The rows of the report's tables, from the models' result files (see `vgssl.study.results`).

Phone ABX numbers are test errors at the layer chosen on the valid items; `valid_items` maps each language to
its layer-choice item file (None: the corpus has none, so that language's layers are chosen on test).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vgssl.evaluate.gap import Estimate
from vgssl.evaluate.results import ContextMode, SpeakerMode
from vgssl.study.config import StudyConfig
from vgssl.study.layout import StudyLayout
from vgssl.study.results import LayerSummary, ModelResults, paired_difference, summarize_layers


def no_valid_reason(model: ModelResults, language: str, valid_items: Mapping[str, Path | None]) -> str:
    """Why `model` has no valid phone ABX result for `language`, for the report's warnings."""
    if valid_items.get(language) is None:
        return f"no valid items for {language} (corpus.valid_items or items/{language}_valid_triphone.item)"
    return f"no valid phone ABX result ({model.paths.valid_phone_abx(language).name}: evaluation failed?)"


def phone_summary(
    model: ModelResults,
    language: str,
    *,
    speaker: SpeakerMode,
    context: ContextMode,
    fixed_layer: int | None,
    valid_items: Mapping[str, Path | None],
) -> LayerSummary | None:
    """The model's test errors on `language` in one condition, with the layer its valid result chooses."""
    _, result = model.phone[language]
    valid = model.valid_phone.get(language)
    return summarize_layers(
        result,
        speaker=speaker,
        context=context,
        fixed_layer=fixed_layer,
        valid=None if valid is None else valid[1],
        no_valid=no_valid_reason(model, language, valid_items),
    )


def phone_abx_rows(
    config: StudyConfig, models: Sequence[ModelResults], valid_items: Mapping[str, Path | None]
) -> list[dict[str, Any]]:
    """One row per model × evaluated language × speaker mode, in the analysed context: the test error at the
    layer chosen on the valid items, the best layer on test (for reference) and the fixed layer."""
    settings, analysis = config.evaluation, config.analysis
    speakers = sorted(settings.speakers, key=lambda speaker: speaker != analysis.speaker)  # analysed first
    rows = []
    for model in models:
        for language, (path, _) in model.phone.items():
            valid = model.valid_phone.get(language)
            for speaker in speakers:
                summary = phone_summary(
                    model, language, speaker=speaker, context=analysis.context,
                    fixed_layer=settings.fixed_layer, valid_items=valid_items,
                )  # fmt: skip
                if summary is None:
                    continue
                valid_errors = summary.valid_errors
                rows.append(
                    {
                        "model": model.name,
                        "label": model.label,
                        "eval_language": language,
                        "speaker": speaker,
                        "context": analysis.context,
                        "layer": summary.chosen_layer,
                        "error": summary.chosen,
                        "layer_chosen_on": summary.chosen_on,
                        "valid_error": None
                        if valid_errors is None
                        else valid_errors.get(summary.chosen_layer),
                        "test_best_layer": summary.test_best_layer,
                        "test_best_error": summary.test_best,
                        "fixed_layer": summary.fixed_layer,
                        "fixed_error": summary.fixed,
                        "errors_by_layer": {str(layer): e for layer, e in sorted(summary.errors.items())},
                        "valid_errors_by_layer": None
                        if valid_errors is None
                        else {str(layer): e for layer, e in sorted(valid_errors.items())},
                        "warning": summary.warning,
                        "result": str(path),
                        "valid_result": None if valid is None else str(valid[0]),
                    }
                )
    return rows


def language_abx_rows(config: StudyConfig, models: Sequence[ModelResults]) -> list[dict[str, Any]]:
    rows = []
    for model in models:
        if model.language is None:
            continue
        summary = summarize_layers(
            model.language, speaker="across", context=None, fixed_layer=config.evaluation.fixed_layer
        )
        if summary is None:
            continue
        rows.append(
            {
                "model": model.name,
                "label": model.label,
                "languages": model.language.labels,
                "best_layer": summary.test_best_layer,  # no valid language items: chosen on test
                "best_error": summary.test_best,
                "fixed_layer": summary.fixed_layer,
                "fixed_error": summary.fixed,
                "errors_by_layer": {str(layer): e for layer, e in sorted(summary.errors.items())},
            }
        )
    return rows


def retrieval_rows(runs: Sequence[ModelResults]) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        if run.retrieval is None:
            continue
        for language, scores in run.retrieval["languages"].items():
            rows.append({"model": run.name, "label": run.label, "language": language, **scores})
    return rows


def learning_rows(
    config: StudyConfig,
    runs: Sequence[ModelResults],
    baselines: Sequence[ModelResults],
    valid_items: Mapping[str, Path | None],
) -> list[dict[str, Any]]:
    """Each run's test error at its chosen layer next to every baseline's at its chosen layer, and their
    difference with a paired 95 % CI."""
    analysis, settings = config.analysis, config.evaluation
    condition = {"speaker": analysis.speaker, "context": analysis.context}
    rows = []
    for run in runs:
        for language, (_, result) in run.phone.items():
            ours = phone_summary(
                run, language, fixed_layer=settings.fixed_layer, valid_items=valid_items, **condition
            )
            if ours is None:
                continue
            row: dict[str, Any] = {
                "model": run.name,
                "label": run.label,
                "eval_language": language,
                "layer": ours.chosen_layer,
                "layer_chosen_on": ours.chosen_on,
                "error": ours.chosen,
                "baselines": {},
            }
            for baseline in baselines:
                if language not in baseline.phone:
                    continue
                theirs_result = baseline.phone[language][1]
                theirs = phone_summary(
                    baseline, language, fixed_layer=None, valid_items=valid_items, **condition
                )
                if theirs is None:
                    continue
                difference = paired_difference(
                    result, ours.chosen_layer, theirs_result, theirs.chosen_layer,
                    replicates=analysis.bootstrap, seed=analysis.bootstrap_seed, **condition,
                )  # fmt: skip
                row["baselines"][baseline.name] = {
                    "layer": theirs.chosen_layer,
                    "layer_chosen_on": theirs.chosen_on,
                    "error": theirs.chosen,
                    "difference": None if difference is None else asdict(difference),
                    "verdict": _verdict(difference),
                }
            rows.append(row)
    return rows


def _verdict(difference: Estimate | None) -> str:
    """How a model compares with a baseline: by the sign of the whole interval of (ours − theirs)."""
    if difference is None:
        return "not comparable (other ABX cells)"
    if difference.high < 0:
        return "better"
    if difference.low > 0:
        return "worse"
    return "no clear difference"


def failure_rows(
    layout: StudyLayout,
    runs: Sequence[ModelResults],
    baselines: Sequence[ModelResults],
    study_languages: Sequence[str],
    missing_cells: Sequence[str],
    valid_items: Mapping[str, Path | None],
) -> list[dict[str, Any]]:
    """Every failed model stage, with its log and the result files it could not produce."""
    failures = []
    for model in [*runs, *baselines]:
        for stage_name in ("training", "evaluation"):
            stage = getattr(model.status, stage_name)
            if stage.state != "failed":
                continue
            log = model.paths.launch_log if stage_name == "training" else model.paths.evaluate_log
            languages = model.run.languages if model.run else study_languages
            missing = [
                layout.relative(model.paths.phone_abx(language))
                for language in languages
                if language not in model.phone
            ]
            missing += [
                layout.relative(model.paths.valid_phone_abx(language))
                for language in languages
                if valid_items.get(language) is not None and language not in model.valid_phone
            ]
            if model.language is None:
                missing.append(layout.relative(model.paths.language_abx))
            if model.run is not None and model.run.objective == "vgs+" and model.retrieval is None:
                missing.append(layout.relative(model.paths.retrieval))
            failures.append(
                {
                    "model": model.name,
                    "label": model.label,
                    "stage": stage_name,
                    "error": stage.error,
                    "log": layout.relative(log),
                    "missing_results": missing,
                }
            )
    if failures and missing_cells:
        failures.append({"model": "analysis", "stage": "gap and gain", "missing_cells": missing_cells})
    return failures
