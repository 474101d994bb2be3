"""The study report: `report.json` (every number, from the result files) and `report.md` rendered from it.

Nothing is typed in by hand: each number is read from a run's `status.json`, `metrics.jsonl`, ABX or
retrieval result, from the corpus card, or computed here from those (best layers, the gap and gain analysis
of `vgssl.evaluate.gap`, paired bootstraps). The only constants are the paper's published numbers, shown
next to ours.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from vgssl.study.results import ModelResults, load_model_results
from vgssl.study.tables import failure_rows, language_abx_rows, learning_rows, phone_abx_rows, retrieval_rows
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
    "fbank": "80 log-mel",
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
    gap_runs, gap, gap_error = _gap_analysis(study, runs)
    analysis = _gap_json(gap, gap_error, config.objectives)
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "vgssl_version": __version__,
        "setup": _setup(study, corpus, layout, plans, languages, runs, hours),
        "phone_abx": phone_abx_rows(config, runs + baselines),
        "gap_analysis": analysis,
        "paper_comparison": _paper_comparison(gap),
        "language_abx": language_abx_rows(config, runs + baselines),
        "retrieval": retrieval_rows(runs),
        "learning": learning_rows(config, runs, baselines),
        "failures": failure_rows(layout, runs, baselines, languages, analysis.get("missing", [])),
        "conventions": _conventions(study, plans),
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
        "audio_budget_hours": hours,
        "nproc_per_node": config.launch.nproc_per_node,
        "corpus": {
            "path": str(corpus.path),
            "summary": format_card(card) if card else "real data in the built-in layout (no corpus card)",
            "difficulty": (card or {}).get("difficulty"),
        },
        "compute": compute,
    }


def _gap_analysis(
    study: StudyFile, runs: Sequence[ModelResults]
) -> tuple[list[RunScore], GapReport | None, str | None]:
    """The runs as scored for the analysis, the analysis, or why there is none."""
    analysis = study.config.analysis
    results = [(path, result) for run in runs for path, result in run.phone.values()]
    if not results:
        return [], None, "no trained run has a phone ABX result"
    condition = f"{analysis.speaker}-speaker, {analysis.context}-context"
    layer_rule = (
        f"per run, the layer with the lowest {condition} error"
        if analysis.layer == "best"
        else f"layer {analysis.layer} for every run"
    )
    try:
        scored = select_runs(
            results, layer=analysis.layer, speaker=analysis.speaker, context=analysis.context
        )
        report = analyse(
            scored,
            speaker=analysis.speaker,
            context=analysis.context,
            layer_rule=layer_rule,
            replicates=analysis.bootstrap,
            seed=analysis.bootstrap_seed,
        )
    except GapInputError as error:
        return [], None, str(error)
    return scored, report, None


def _gap_json(gap: GapReport | None, error: str | None, objectives: Sequence[str]) -> dict[str, Any]:
    """The analysis as JSON; `missing` keeps only what the study's objectives could have given."""
    if gap is None:
        return {"error": error}
    document = gap.to_json()
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


def _conventions(study: StudyFile, plans: Sequence[RunPlan]) -> dict[str, Any]:
    settings, analysis = study.config.evaluation, study.config.analysis
    mixtures = sorted({plan.config.data.mixture for plan in plans})
    conventions: dict[str, Any] = {
        "frame_rate_hz": FRAME_RATE,
        "frame_times": FRAME_TIMES,
        "frames_per_file": "floor((N - 400) / 320) + 1 for N samples at 16 kHz",
        "layers": "hidden state i = output of transformer block i; 0 = input to the first block",
        "phone_abx": "triphone items, angular distance with DTW, fastabx; error in %, chance 50 %",
        "language_abx": "segments mean-pooled, on language, by duration bin, across speaker; chance 50 %",
        "subsampling": {
            "max_size_group": settings.max_size_group,
            "max_x_across": settings.max_x_across,
            "seed": settings.seed,
        },
        "analysed_condition": f"{analysis.speaker}-speaker, {analysis.context}-context",
        "layer_rule": analysis.layer,
        "gap": "(E_multi − E_mono) / E_mono, same objective, same evaluated language",
        "gain": "(E_ssl-a − E_vgs+) / E_ssl-a, same training languages, same evaluated language",
        "bootstrap": f"{analysis.bootstrap} replicates over ABX cells, paired across models; 95 % percentile "
        "intervals",
        "budget": "; ".join(f"{mixture}: {MIXTURES[mixture]}" for mixture in mixtures),
    }
    fractions = {p.config.captions.grounded_fraction for p in plans if p.config.captions is not None}
    if fractions:
        shares = ", ".join(
            "every caption" if f is None else f"{100 * f:g} % of the training audio" for f in fractions
        )
        conventions["grounding"] = f"VGS+ runs train on captions (speech with an image): {shares}"
    return conventions
