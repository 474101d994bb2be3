"""PNG figures of `vgssl gap`: layer-wise ABX curves per model, and bars for gaps and gains with their CIs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vgssl.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from vgssl.evaluate.gap import GapReport, RatioRow, RunScore


def _save(figure: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def plot_layer_curves(runs: Sequence[RunScore], path: Path, *, condition: str) -> None:
    """One panel per evaluated language; one line per run: ABX error against layer, chosen layer marked."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    by_language: dict[str, list[RunScore]] = defaultdict(list)
    for run in runs:
        by_language[run.eval_language].append(run)
    languages = sorted(by_language)
    figure = Figure(figsize=(5.5 * len(languages), 4.0))
    axes = figure.subplots(1, len(languages), squeeze=False)[0]
    for axis, language in zip(axes, languages, strict=True):
        for run in sorted(by_language[language], key=lambda r: r.label):
            layers = sorted(run.layer_errors)
            (line,) = axis.plot(layers, [run.layer_errors[k] for k in layers], marker="o", label=run.label)
            axis.plot([run.layer], [run.error], marker="*", markersize=14, color=line.get_color())
        axis.set_title(f"evaluated on {language}")
        axis.set_xlabel("layer")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(f"phone ABX error, {condition} (%)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    _save(figure, path)


def _bars(axis, rows: Sequence[RatioRow], *, title: str, ylabel: str) -> None:
    axis.set_title(title)
    axis.set_ylabel(ylabel)
    if not rows:
        axis.text(0.5, 0.5, "not computed (missing runs)", ha="center", va="center", transform=axis.transAxes)
        return
    groups = list(dict.fromkeys(f"{r.eval_language}\n{r.train_languages}" for r in rows))
    series = list(dict.fromkeys(r.label for r in rows))
    width = 0.8 / max(len(series), 1)
    for index, label in enumerate(series):
        chosen = [r for r in rows if r.label == label]
        offset = (index - (len(series) - 1) / 2) * width
        positions = [groups.index(f"{r.eval_language}\n{r.train_languages}") + offset for r in chosen]
        points = [r.value.point for r in chosen]
        # a percentile interval need not contain the point estimate; matplotlib refuses negative bars
        below = [max(0.0, r.value.point - r.value.low) for r in chosen]
        above = [max(0.0, r.value.high - r.value.point) for r in chosen]
        axis.bar(positions, points, width=width, yerr=[below, above], capsize=4, label=label)
    axis.set_xticks(range(len(groups)), groups)
    axis.axhline(0.0, color="black", linewidth=0.8)
    axis.legend(fontsize="small")


def plot_gaps_and_gains(report: GapReport, path: Path) -> None:
    """Left: multilingual gap per objective; right: grounding gain per training kind; 95 % CIs as bars."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11.0, 4.0))
    left, right = figure.subplots(1, 2)
    _bars(left, report.gaps, title="multilingual gap", ylabel="(E_multi − E_mono) / E_mono (%)")
    _bars(right, report.gains, title="grounding gain", ylabel="(E_ssl-a − E_vgs+) / E_ssl-a (%)")
    _save(figure, path)
