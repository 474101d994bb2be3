"""The study report: `report.json` (every number, from the result files) and `report.md` rendered from it.

Nothing is typed in by hand: each number is read from a run's `status.json`, `metrics.jsonl`, ABX or
retrieval result, from the corpus card, or computed here from those (chosen layers, the gap and gain analysis
of `vgssl.evaluate.gap`, paired bootstraps). The only constants are the paper's published numbers, shown
next to ours.

Layers (`analysis.layer: best`) are chosen per run and language on the valid items, in the analysed
condition, and the test error at that layer is what the tables and the analysis report; the best layer on
test is shown beside it for reference only. Where a model has no valid result for a condition (no valid
items, a failed evaluation, no triplet on the valid items) its layer is chosen on test, and `warnings` says
so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vgssl import __version__
from vgssl.atomic import atomic_write_json, atomic_write_text
from vgssl.evaluate.gap import AVERAGE, GapInputError, GapReport, RunScore, analyse, select_runs
from vgssl.evaluate.results import FRAME_RATE, FRAME_TIMES
from vgssl.study.config import StudyFile
from vgssl.study.corpus import StudyCorpus
from vgssl.study.layout import StudyLayout
from vgssl.study.results import ModelResults, load_model_results, rescore_at_layer
from vgssl.study.tables import (
    failure_rows,
    language_abx_rows,
    learning_rows,
    phone_abx_rows,
    phone_summary,
    retrieval_rows,
)
from vgssl.study.training import RunPlan, hours_seen, logged_step

REPORT_FORMAT = "vgssl-study-report-v1"
# Cruz Blandón, Aldeneh, Chi, de Seyssel (ICASSP 2026, arXiv 2509.17523), phone ABX, averaged over languages.
PAPER = {
    "gap ssl-a": 31.5,
    "gap vgs+": 8.04,
    "gain mono": 10.84,
    "gain multilingual": 26.74,
}
BASELINE_LABELS = {
    "mfcc": "MFCC-39, normalised per utterance",
    "mfcc-raw": "MFCC-39, raw",
    "fbank": "the fbank front-end's input (2 × 80 log-mel, normalised per utterance)",
    "random-init": "random-init (same architecture, untrained)",
}


def write_report(
    study: StudyFile,
    corpus: StudyCorpus,
    layout: StudyLayout,
    plans: Sequence[RunPlan],
    languages: Sequence[str],
    *,
    hours: float | None,
) -> Path:
    """Write report.json, report.md and the figures into the study directory; return report.md's path."""
    from vgssl.study.markdown import render_markdown
    from vgssl.study.plots import write_figures

    config = study.config
    runs = [load_model_results(p.run.name, p.run.label, p.paths, p.run, list(p.run.languages)) for p in plans]
    baselines = [
        load_model_results(name, BASELINE_LABELS[name], layout.baseline(name), None, list(languages))
        for name in config.evaluation.baselines
    ]
    valid_items = {language: corpus.layer_choice_items(language) for language in languages}
    gap_runs, gap, gap_error, choices = _gap_analysis(study, runs, valid_items)
    analysis = _gap_json(gap, gap_error, config.objectives, choices)
    missing = analysis.get("missing", [])
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "vgssl_version": __version__,
        "setup": _setup(study, corpus, layout, plans, languages, runs, hours),
        "warnings": _warnings(study, valid_items, choices),
        "phone_abx": phone_abx_rows(config, runs + baselines, valid_items),
        "gap_analysis": analysis,
        "paper_comparison": _paper_comparison(gap),
        "language_abx": language_abx_rows(config, runs + baselines),
        "retrieval": retrieval_rows(runs),
        "learning": learning_rows(config, runs, baselines, valid_items),
        "failures": failure_rows(layout, runs, baselines, languages, missing, valid_items),
        "conventions": _conventions(study, plans, valid_items),
    }
    report["figures"] = write_figures(layout, plans, gap_runs, gap, study.config.analysis)
    atomic_write_json(layout.report_json, report)
    atomic_write_text(layout.report_md, render_markdown(report))
    return layout.report_md


def _setup(
    study: StudyFile,
    corpus: StudyCorpus,
    layout: StudyLayout,
    plans: Sequence[RunPlan],
    languages: Sequence[str],
    runs: Sequence[ModelResults],
    hours: float | None,
) -> dict[str, Any]:
    from vgssl.corpus.card import format_card
    from vgssl.study.environment import REPRODUCIBILITY, describe_environment
    from vgssl.study.training import control_statement, run_control

    config = study.config
    compute = []
    for plan, results in zip(plans, runs, strict=True):
        seen = hours_seen(plan.paths.train_dir)
        training = results.status.training
        compute.append(
            {
                "run": plan.run.name,
                "label": plan.run.label,
                "objective": plan.run.objective,
                "control": run_control(plan.config),
                "train_languages": list(plan.run.languages),
                "seed": plan.run.seed,
                "state": training.state,
                "attempts": training.attempts,
                "wall_seconds": round(training.wall_seconds, 1),
                "steps": logged_step(plan.paths.train_dir),
                "max_steps": plan.config.max_steps,
                "hours_seen": None if seen is None else {k: round(v, 4) for k, v in seen.items()},
                "budget_hours": plan.config.data.hours,
                "mixture": plan.config.data.mixture,
                "grounded_fraction": plan.config.captions.grounded_fraction if plan.config.captions else None,
                "precision": plan.config.precision,
                "config": layout.relative(plan.paths.train_yaml),
                "run_dir": layout.relative(plan.paths.train_dir),
                "log": layout.relative(plan.paths.launch_log),
            }
        )
    card = corpus.card
    return {
        "config": str(study.path.resolve()),
        "out": str(layout.out),
        "languages": list(languages),
        "objectives": list(config.objectives),
        "seeds": list(config.seeds),
        "pairwise": config.pairwise,
        "control": config.control,
        "control_statement": control_statement(study),
        "audio_budget_hours": hours,
        "nproc_per_node": config.launch.nproc_per_node,
        "parallel_runs": config.launch.parallel_runs,
        "environment": describe_environment(),
        "reproducibility": REPRODUCIBILITY,
        "corpus": {
            "path": str(corpus.path),
            "summary": format_card(card) if card else "real data in the built-in layout (no corpus card)",
            "difficulty": (card or {}).get("difficulty"),
            "valid_items": {
                language: None if path is None else str(path)
                for language in languages
                for path in [corpus.layer_choice_items(language)]
            },
        },
        "compute": compute,
    }


def _gap_analysis(
    study: StudyFile, runs: Sequence[ModelResults], valid_items: Mapping[str, Path | None]
) -> tuple[list[RunScore], GapReport | None, str | None, list[dict[str, Any]]]:
    """The runs as scored for the analysis, the analysis or why there is none, and each run's layer choice."""
    analysis = study.config.analysis
    tested = [(run, language, path, result) for run in runs for language, (path, result) in run.phone.items()]
    if not tested:
        return [], None, "no trained run has a phone ABX result", []
    condition = {"speaker": analysis.speaker, "context": analysis.context}
    try:
        scored = select_runs(
            [(path, result) for *_, path, result in tested], layer=analysis.layer, **condition
        )
    except GapInputError as error:
        return [], None, str(error), []
    choices: list[dict[str, Any]] = []
    if analysis.layer == "best":
        by_source = {str(path): (run, language, result) for run, language, path, result in tested}
        chosen = []
        for score in scored:
            run, language, result = by_source[score.source]
            summary = phone_summary(run, language, fixed_layer=None, valid_items=valid_items, **condition)
            assert summary is not None  # select_runs found the condition in this result
            if summary.chosen_on == "valid":
                score = rescore_at_layer(score, result, layer=summary.chosen_layer, **condition)
            chosen.append(score)
            choices.append(
                {
                    "model": run.name,
                    "label": run.label,
                    "eval_language": language,
                    "layer": summary.chosen_layer,
                    "chosen_on": summary.chosen_on,
                    "test_best_layer": summary.test_best_layer,
                    "warning": summary.warning,
                }
            )
        scored = chosen
    rule = _layer_rule(analysis.layer, choices, f"{analysis.speaker}-speaker, {analysis.context}-context")
    try:
        report = analyse(
            scored, layer_rule=rule, replicates=analysis.bootstrap, seed=analysis.bootstrap_seed, **condition
        )
    except GapInputError as error:
        return [], None, str(error), choices
    return scored, report, None, choices


def _layer_rule(layer: int | str, choices: Sequence[dict[str, Any]], condition: str) -> str:
    if layer != "best":
        return f"layer {layer} for every run"
    on_test = sum(choice["chosen_on"] == "test" for choice in choices)
    if on_test == len(choices):
        return (
            f"per run, the layer with the lowest {condition} error on the TEST items, because no run has a "
            "valid result (see the warnings)"
        )
    rule = (
        f"per run, the layer with the lowest {condition} error on the valid items; the test error at that "
        "layer is reported"
    )
    if on_test:
        rule += f" (chosen on the test items for {on_test} run × language(s) without a valid result: see the "
        rule += "warnings)"
    return rule


def _warnings(
    study: StudyFile, valid_items: Mapping[str, Path | None], choices: Sequence[dict[str, Any]]
) -> list[str]:
    """What makes a reported number weaker than it looks: layers chosen on the test items."""
    if study.config.analysis.layer != "best":
        return []
    warnings = [
        f"{language}: no valid items (set corpus.valid_items in the study config, or use a corpus with "
        f"items/{language}_valid_triphone.item), so its layers are chosen on the test items and its "
        "best-layer errors are optimistic"
        for language, path in valid_items.items()
        if path is None
    ]
    warnings += [
        f"{choice['label']} on {choice['eval_language']}: layer chosen on the test items "
        f"({choice['warning']})"
        for choice in choices
        if choice["chosen_on"] == "test" and valid_items.get(choice["eval_language"]) is not None
    ]
    return warnings


def _gap_json(
    gap: GapReport | None, error: str | None, objectives: Sequence[str], choices: list[dict[str, Any]]
) -> dict[str, Any]:
    """The analysis as JSON; `missing` keeps only what the study's objectives could have given."""
    if gap is None:
        return {"error": error, "layer_choice": choices}
    document = gap.to_json()
    document["layer_choice"] = choices
    document["missing"] = [
        item
        for item in gap.missing
        if any(item.startswith(f"{objective} gap") for objective in objectives)
        or (item.startswith("grounding gain") and len(objectives) == 2)
    ]
    return document


def _paper_comparison(gap: GapReport | None) -> list[dict[str, Any]]:
    """Our averages over languages next to the paper's numbers, for the four headline quantities."""
    rows = [] if gap is None else [*gap.gaps, *gap.gains]
    ours = {
        f"{'gap' if row in gap.gaps else 'gain'} {row.label}": asdict(row.value)
        for row in rows
        if row.eval_language == AVERAGE
    }
    return [{"quantity": key, "ours": ours.get(key), "paper": value} for key, value in PAPER.items()]


MIXTURES = {
    "matched-total": "every run hears the same hours of audio-only speech, split equally over its languages",
    "matched-per-language": "every language of a run gives the same hours of audio-only speech",
    "temperature": "languages sampled with probability ∝ (share of the audio)^α",
}


def _conventions(
    study: StudyFile, plans: Sequence[RunPlan], valid_items: Mapping[str, Path | None]
) -> dict[str, Any]:
    settings, analysis = study.config.evaluation, study.config.analysis
    mixtures = sorted({plan.config.data.mixture for plan in plans})
    conventions: dict[str, Any] = {
        "frame_rate_hz": FRAME_RATE,
        "frame_times": FRAME_TIMES,
        "frames_per_file": "floor((N - 400) / 320) + 1 for N samples at 16 kHz",
        "layers": "hidden state i = output of transformer block i; 0 = input to the first block",
        "phone_abx": "triphone items, angular distance with DTW, fastabx; error in %, chance 50 %",
        "slicing": (
            "Libri-Light's: an item's last frame dropped, comparable with published ZeroSpeech 2021 numbers"
            if settings.slicing == "librilight"
            else "exact: every frame centred inside the item (Libri-Light drops the last one)"
        ),
        "language_abx": "segments mean-pooled, on language, by duration bin, across speaker; chance 50 %",
        "subsampling": {
            "max_size_group": settings.max_size_group,
            "max_x_across": settings.max_x_across,
            "seed": settings.seed,
        },
        "analysed_condition": f"{analysis.speaker}-speaker, {analysis.context}-context",
        "layer_rule": (
            f"layer {analysis.layer} for every model"
            if analysis.layer != "best"
            else "the layer with the lowest phone ABX error on the valid items (ties to the lower layer), "
            "per model, language and condition; the reported error is the test error at that layer ('best "
            "on test' is shown for reference only)"
        ),
        "valid_items": {
            language: "none (layers chosen on test)" if path is None else str(path)
            for language, path in valid_items.items()
        },
        "gap": "(E_multi − E_mono) / E_mono, same objective, same evaluated language",
        "gain": "(E_ssl-a − E_vgs+) / E_ssl-a, same training languages, same evaluated language",
        "bootstrap": f"{analysis.bootstrap} replicates over "
        + (
            "seeds (per condition, with replacement, deviations scaled by √(k/(k−1))) and "
            if len(study.config.seeds) > 1
            else ""
        )
        + "ABX cells (paired across models); 95 % percentile intervals",
        "budget": "; ".join(f"{mixture}: {MIXTURES[mixture]}" for mixture in mixtures),
    }
    fractions = {p.config.captions.grounded_fraction for p in plans if p.config.captions is not None}
    if fractions:
        shares = ", ".join(
            "every caption" if f is None else f"{100 * f:g} % of the training audio" for f in fractions
        )
        conventions["grounding"] = f"VGS+ runs train on captions (speech with an image): {shares}"
    return conventions
