"""The rows of the report's tables, from the models' result files (see `vgssl.study.results`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from vgssl.evaluate.gap import Estimate
from vgssl.study.config import StudyConfig
from vgssl.study.layout import StudyLayout
from vgssl.study.results import ModelResults, paired_difference, summarize_layers


def phone_abx_rows(config: StudyConfig, models: Sequence[ModelResults]) -> list[dict[str, Any]]:
    """One row per model × evaluated language × speaker mode, in the analysed context."""
    settings, analysis = config.evaluation, config.analysis
    speakers = sorted(settings.speakers, key=lambda speaker: speaker != analysis.speaker)  # analysed first
    rows = []
    for model in models:
        for language, (path, result) in model.phone.items():
            for speaker in speakers:
                summary = summarize_layers(
                    result, speaker=speaker, context=analysis.context, fixed_layer=settings.fixed_layer
                )
                if summary is None:
                    continue
                rows.append(
                    {
                        "model": model.name,
                        "label": model.label,
                        "eval_language": language,
                        "speaker": speaker,
                        "context": analysis.context,
                        "best_layer": summary.best_layer,
                        "best_error": summary.best,
                        "fixed_layer": summary.fixed_layer,
                        "fixed_error": summary.fixed,
                        "errors_by_layer": {str(layer): e for layer, e in sorted(summary.errors.items())},
                        "result": str(path),
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
                "best_layer": summary.best_layer,
                "best_error": summary.best,
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
    config: StudyConfig, runs: Sequence[ModelResults], baselines: Sequence[ModelResults]
) -> list[dict[str, Any]]:
    """Each run's best-layer error next to every baseline's, and its difference with a paired 95 % CI."""
    analysis, settings = config.analysis, config.evaluation
    condition = {"speaker": analysis.speaker, "context": analysis.context}
    rows = []
    for run in runs:
        for language, (_, result) in run.phone.items():
            ours = summarize_layers(result, fixed_layer=settings.fixed_layer, **condition)
            if ours is None:
                continue
            row: dict[str, Any] = {
                "model": run.name,
                "label": run.label,
                "eval_language": language,
                "best_layer": ours.best_layer,
                "error": ours.best,
                "baselines": {},
            }
            for baseline in baselines:
                if language not in baseline.phone:
                    continue
                theirs_result = baseline.phone[language][1]
                theirs = summarize_layers(theirs_result, fixed_layer=None, **condition)
                if theirs is None:
                    continue
                difference = paired_difference(
                    result, ours.best_layer, theirs_result, theirs.best_layer,
                    replicates=analysis.bootstrap, seed=analysis.bootstrap_seed, **condition,
                )  # fmt: skip
                row["baselines"][baseline.name] = {
                    "best_layer": theirs.best_layer,
                    "error": theirs.best,
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
