"""The report's figures: training curves from every run's metrics.jsonl, plus `vgssl gap`'s two figures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgssl.atomic import atomic_path
from vgssl.evaluate.plots import plot_gaps_and_gains, plot_layer_curves

if TYPE_CHECKING:
    from vgssl.evaluate.gap import GapReport, RunScore
    from vgssl.study.config import AnalysisSection
    from vgssl.study.layout import StudyLayout
    from vgssl.study.training import RunPlan

# A grounded run's "loss" is the total of its terms; its audio-only SSL term is "ssl_loss". Validation records
# hold the SSL loss on the valid speech as "loss" for both objectives.
Metric = Callable[[dict[str, Any]], float | None]
CURVES: tuple[tuple[str, Metric], ...] = (
    (
        "SSL loss per masked frame (audio-only batches)",
        lambda r: r.get("ssl_loss", r["loss"] if r["split"] == "valid" or "vg_loss" not in r else None),
    ),
    ("SSL accuracy", lambda r: r.get("accuracy")),
    ("speech–image loss per pair", lambda r: r.get("vg_loss")),
)


def plot_training_curves(plans: Sequence[RunPlan], path: Path) -> bool:
    """One panel per metric that some run logged; train as lines, valid as dots. False: nothing logged."""
    from matplotlib.figure import Figure

    from vgssl.train.metrics import METRICS_FILE, read_metrics

    records = {}
    for plan in plans:
        metrics = plan.paths.train_dir / METRICS_FILE
        if metrics.is_file():
            records[plan.run.label] = read_metrics(metrics)

    def points(run_records: list[dict[str, Any]], metric: Metric, split: str) -> list[tuple[int, float]]:
        values = [(r["step"], metric(r)) for r in run_records if r["split"] == split]
        return [(step, value) for step, value in values if value is not None]

    panels = [
        (title, metric)
        for title, metric in CURVES
        if any(points(run_records, metric, "train") for run_records in records.values())
    ]
    if not panels:
        return False
    figure = Figure(figsize=(5.0 * len(panels), 3.8))
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (title, metric) in zip(axes, panels, strict=True):
        for label, run_records in records.items():
            train, valid = points(run_records, metric, "train"), points(run_records, metric, "valid")
            if not train:
                continue
            (line,) = axis.plot(*zip(*train, strict=True), label=label, linewidth=1.2)
            if valid:
                axis.plot(*zip(*valid, strict=True), marker="o", linestyle="none", color=line.get_color())
        axis.set_title(title, fontsize="medium")
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="x-small")
    figure.suptitle("training (lines) and validation (dots)", fontsize="small")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return True


def write_figures(
    layout: StudyLayout,
    plans: Sequence[RunPlan],
    scored: Sequence[RunScore],
    gap: GapReport | None,
    analysis: AnalysisSection,
) -> dict[str, str]:
    """Write every figure there is data for; return name -> path relative to the study directory."""
    figures = {}
    if plot_training_curves(plans, layout.figure("training_curves")):
        figures["training_curves"] = layout.relative(layout.figure("training_curves"))
    if scored:
        condition = f"{analysis.speaker}-speaker, {analysis.context}-context"
        plot_layer_curves(scored, layout.figure("abx_layers"), condition=condition)
        figures["abx_layers"] = layout.relative(layout.figure("abx_layers"))
    if gap is not None:
        plot_gaps_and_gains(gap, layout.figure("gaps"))
        figures["gaps"] = layout.relative(layout.figure("gaps"))
    return figures
