"""The multilingual gap and the grounding gain, with bootstrap intervals, and the paper's two hypotheses.

For one evaluated language L and ABX errors E (phone ABX, %):
* multilingual gap of an objective = (E_multi − E_mono) / E_mono, E_multi from a model trained on L and at
  least one other language, E_mono from the model of the same objective trained on L alone;
* grounding gain of a training set = (E_ssl-a − E_vgs+) / E_ssl-a.
Where a condition (objective, training languages) was run with several seeds, E is their mean. Ratios are
reported per language and averaged over languages (and over multilingual training sets, if several).

Uncertainty: a hierarchical, paired bootstrap. Each replicate resamples, per condition, its seeds (the
training runs) with replacement, then the collapsed ABX cells (phone pairs) of each language with
replacement — the same cell draw for every model evaluated on that language (they share the item file,
hence the cells) — and recomputes each run's error as the mean of its resampled cells and the condition's as
the mean over its drawn seeds; the ratios are recomputed from those errors. Resampling k seeds gives the
seed mean a variance of (k − 1)/k × s²/k, too small for the handful of seeds a study has, so each drawn
seed's deviation from the condition's mean is scaled by √(k / (k − 1)), which makes it s²/k with the
unbiased s² (the usual small-sample adjustment of a bootstrap). The intervals are the 2.5 and 97.5
percentiles; `probability` is the fraction of replicates in which a difference is above 0. Layer choice is
made once, before bootstrapping. With one seed per condition, training variance is not in the intervals.

The paper's hypotheses: (1) the audio-only (ssl-a) gap exceeds the grounded (vgs+) gap; (2) the grounding gain
of multilingual models exceeds that of monolingual models.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from vgssl.errors import VgsslError
from vgssl.evaluate.results import AbxResult, ContextMode, Objective, SpeakerMode

AVERAGE = "average"
LayerChoice = int | Literal["best"]


class GapInputError(VgsslError):
    """The results given to `vgssl gap` cannot be combined (untagged, duplicated, or on different cells)."""


def multilingual_gap(e_mono: float, e_multi: float) -> float:
    """(E_multi − E_mono) / E_mono, as a fraction."""
    return (e_multi - e_mono) / e_mono


def grounding_gain(e_ssl_a: float, e_vgs: float) -> float:
    """(E_ssl-a − E_vgs+) / E_ssl-a, as a fraction."""
    return (e_ssl_a - e_vgs) / e_ssl_a


def grounded_gap(audio_only_gap: float, mono_gain: float, bi_gain: float) -> float:
    """The grounded models' gap implied by the audio-only gap and the two gains (all fractions).

    E_bi^vgs = E_mono^ssl (1 + gap) (1 − bi_gain) and E_mono^vgs = E_mono^ssl (1 − mono_gain), so the ratio of
    the two minus one no longer depends on E_mono^ssl.
    """
    return (1.0 + audio_only_gap) * (1.0 - bi_gain) / (1.0 - mono_gain) - 1.0


@dataclass(frozen=True)
class RunScore:
    """One tagged result reduced to the analysed condition at its chosen layer."""

    label: str
    source: str
    objective: Objective
    train_languages: tuple[str, ...]
    eval_language: str
    seed: int | None
    layer: int
    error: float  # percent, at `layer`
    cells: dict[tuple[str, str], float]  # percent, at `layer`
    layer_errors: dict[int, float]  # percent, every layer, for the layer-wise curves


def train_set_name(languages: Sequence[str]) -> str:
    return "+".join(languages)


def select_runs(
    results: Sequence[tuple[Path, AbxResult]],
    *,
    layer: LayerChoice,
    speaker: SpeakerMode,
    context: ContextMode,
) -> list[RunScore]:
    """Check the run tags and pick each result's layer (`best`: lowest error in the analysed condition)."""
    runs: list[RunScore] = []
    seen: dict[tuple, str] = {}
    for path, result in results:
        if result.task != "phone":
            raise GapInputError(
                f"{path} is a {result.task} ABX result; `vgssl gap` analyses phone ABX results"
            )
        tag = result.run
        eval_language = (tag.eval_language if tag else None) or result.language
        if tag is None or tag.objective is None or not tag.train_languages or eval_language is None:
            raise GapInputError(
                f"{path} lacks run tags: re-run `vgssl abx` with --run-tag objective=ssl-a|vgs+ "
                f"--run-tag train_languages=en,fr (and --language or --run-tag eval_language=en if the item "
                f"file name does not say it)"
            )
        by_layer = {s.layer: s for s in result.scores if (s.speaker, s.context) == (speaker, context)}
        if not by_layer:
            available = sorted({f"{s.speaker}-speaker/{s.context}-context" for s in result.scores})
            raise GapInputError(
                f"{path} has no {speaker}-speaker, {context}-context scores (it has {', '.join(available)}); "
                f"choose them with --speaker and --context"
            )
        chosen = min(by_layer, key=lambda k: (by_layer[k].error, k)) if layer == "best" else layer
        score = result.score(layer=chosen, speaker=speaker, context=context)
        train = tuple(sorted(tag.train_languages))
        if eval_language not in train:
            raise GapInputError(
                f"{path}: evaluated language {eval_language} is not among the training languages {train}"
            )
        key = (eval_language, tag.objective, train, tag.seed)
        if key in seen:
            raise GapInputError(
                f"{path} and {seen[key]} are both {tag.objective} trained on {train} with seed {tag.seed}, "
                f"evaluated on {eval_language}"
            )
        seen[key] = str(path)
        runs.append(
            RunScore(
                label=tag.run or f"{tag.objective} {train_set_name(train)} seed {tag.seed}",
                source=str(path),
                objective=tag.objective,
                train_languages=train,
                eval_language=eval_language,
                seed=tag.seed,
                layer=chosen,
                error=score.error,
                cells={
                    (a, b): e for a, b, e in zip(score.cells.a, score.cells.b, score.cells.error, strict=True)
                },
                layer_errors={s.layer: s.error for s in by_layer.values()},
            )
        )
    return runs


@dataclass(frozen=True)
class Estimate:
    point: float  # percent
    low: float
    high: float

    @classmethod
    def of(cls, point: float, replicates: np.ndarray) -> Estimate:
        low, high = np.nanpercentile(replicates, [2.5, 97.5])
        return cls(round(100 * point, 4), round(100 * float(low), 4), round(100 * float(high), 4))


@dataclass(frozen=True)
class ConditionError:
    eval_language: str
    objective: Objective
    train_languages: tuple[str, ...]
    seeds: list[int | None]
    layers: list[int]
    error: Estimate  # percent: the mean over seeds, with its interval over seeds and cells
    seed_errors: list[float]  # percent, each seed's error at its layer, in the order of `seeds`
    seed_sd: float | None  # percent, the between-seed standard deviation (ddof 1); None with one seed


@dataclass(frozen=True)
class RatioRow:
    eval_language: str  # or "average"
    label: str  # objective for gaps; training set kind for gains
    train_languages: str  # e.g. "en+fr"; "—" in averages
    value: Estimate


@dataclass(frozen=True)
class Hypothesis:
    scope: str  # a language, or "average"
    statement: str
    difference: Estimate  # first minus second quantity, in percentage points of the ratios
    probability: float  # fraction of bootstrap replicates in which it holds
    held: bool  # the point estimate says so
    ci_excludes_zero: bool


@dataclass
class GapReport:
    speaker: SpeakerMode
    context: ContextMode
    layer_rule: str
    bootstrap: dict[str, object]
    errors: list[ConditionError] = field(default_factory=list)
    gaps: list[RatioRow] = field(default_factory=list)
    gains: list[RatioRow] = field(default_factory=list)
    hypotheses: list[Hypothesis] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"unit": "percent", **asdict(self)}


@dataclass
class _Condition:
    """The seeds of one (language, objective, training set): point errors and bootstrap replicates."""

    runs: list[RunScore]
    point: float  # fraction
    replicates: np.ndarray  # (B,), fraction


def _language_conditions(
    runs: list[RunScore], *, replicates: int, rng: np.random.Generator
) -> dict[tuple[Objective, tuple[str, ...]], _Condition]:
    cells = sorted(runs[0].cells)
    for run in runs[1:]:
        if set(run.cells) != set(cells):
            raise GapInputError(
                f"{run.source} and {runs[0].source}, both on {run.eval_language}, have different ABX cells "
                f"({len(run.cells)} vs {len(cells)} phone pairs): use one item file and one subsampling seed"
            )
    matrix = np.array([[run.cells[c] for c in cells] for run in runs]) / 100.0  # (R, P)
    # One multinomial draw per replicate = resampling the P cells with replacement, shared by every run.
    weights = rng.multinomial(len(cells), np.full(len(cells), 1.0 / len(cells)), size=replicates) / len(cells)
    run_replicates = matrix @ weights.T  # (R, B)
    grouped: dict[tuple[Objective, tuple[str, ...]], list[int]] = defaultdict(list)
    for index, run in enumerate(runs):
        grouped[(run.objective, run.train_languages)].append(index)
    conditions = {}
    for key, indices in sorted(grouped.items()):
        conditions[key] = _Condition(
            [runs[i] for i in indices],
            float(matrix[indices].mean()),
            resample_seed_means(run_replicates[indices], rng=rng),
        )
    return conditions


def resample_seed_means(per_seed: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """(k, B) replicate errors of a condition's k seeds -> (B,) replicates of its mean over seeds: k seeds
    drawn with replacement per replicate, their deviations from the mean scaled by √(k / (k − 1))."""
    seeds, replicates = per_seed.shape
    if seeds == 1:
        return per_seed[0]
    chosen = rng.integers(0, seeds, size=(replicates, seeds))
    mean = per_seed.mean(axis=0)  # (B,)
    deviations = per_seed[chosen, np.arange(replicates)[:, None]] - mean[:, None]  # (B, k)
    return mean + np.sqrt(seeds / (seeds - 1)) * deviations.mean(axis=1)


def _reference_error(condition: _Condition) -> None:
    if condition.point == 0:
        run = condition.runs[0]
        raise GapInputError(f"{run.label} has 0 % error on {run.eval_language}: a ratio to it is undefined")


def _gap(mono: _Condition, multi: _Condition) -> tuple[float, np.ndarray]:
    _reference_error(mono)
    with np.errstate(divide="ignore", invalid="ignore"):  # a replicate may resample only 0 % cells
        return multilingual_gap(mono.point, multi.point), multilingual_gap(mono.replicates, multi.replicates)


def _gain(audio_only: _Condition, grounded: _Condition) -> tuple[float, np.ndarray]:
    _reference_error(audio_only)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (
            grounding_gain(audio_only.point, grounded.point),
            grounding_gain(audio_only.replicates, grounded.replicates),
        )


def analyse(
    runs: Sequence[RunScore],
    *,
    speaker: SpeakerMode,
    context: ContextMode,
    layer_rule: str,
    replicates: int = 2000,
    seed: int = 0,
) -> GapReport:
    rng = np.random.default_rng(seed)
    by_language: dict[str, list[RunScore]] = defaultdict(list)
    for run in runs:
        by_language[run.eval_language].append(run)
    multi_seed = any(len({r.seed for r in group}) > 1 for group in by_language.values())
    report = GapReport(
        speaker=speaker,
        context=context,
        layer_rule=layer_rule,
        bootstrap={
            "replicates": replicates,
            "seed": seed,
            "over": (
                "seeds (per condition, deviations scaled by √(k/(k−1))) and ABX cells (phone pairs, paired "
                "across models)"
                if multi_seed
                else "ABX cells (phone pairs), paired across models; one seed per condition: training "
                "variance not included"
            ),
            "interval": "95 % percentile interval",
        },
    )
    # (quantity, label) -> (point, replicates) of every language and multilingual set, averaged at the end
    pooled: dict[tuple[str, str], list[tuple[float, np.ndarray]]] = defaultdict(list)
    for language in sorted(by_language):
        conditions = _language_conditions(by_language[language], replicates=replicates, rng=rng)
        for (objective, train), condition in sorted(conditions.items()):
            seed_errors = [round(r.error, 4) for r in condition.runs]
            report.errors.append(
                ConditionError(
                    eval_language=language,
                    objective=objective,
                    train_languages=train,
                    seeds=[r.seed for r in condition.runs],
                    layers=[r.layer for r in condition.runs],
                    error=Estimate.of(condition.point, condition.replicates),
                    seed_errors=seed_errors,
                    seed_sd=round(float(np.std(seed_errors, ddof=1)), 4) if len(seed_errors) > 1 else None,
                )
            )
        local: dict[tuple[str, str], list[tuple[float, np.ndarray]]] = defaultdict(list)
        multi_sets = sorted({train for _, train in conditions if len(train) > 1})
        for objective in ("ssl-a", "vgs+"):
            for train in multi_sets:
                mono, multi = conditions.get((objective, (language,))), conditions.get((objective, train))
                if mono is None or multi is None:
                    report.missing.append(
                        f"{objective} gap on {language} for {train_set_name(train)}: needs mono + multi runs"
                    )
                    continue
                point, draws = _gap(mono, multi)
                report.gaps.append(
                    RatioRow(language, objective, train_set_name(train), Estimate.of(point, draws))
                )
                local[("gap", objective)].append((point, draws))
        for train in [(language,), *multi_sets]:
            audio_only, grounded = conditions.get(("ssl-a", train)), conditions.get(("vgs+", train))
            if audio_only is None or grounded is None:
                report.missing.append(
                    f"grounding gain on {language} for {train_set_name(train)}: needs ssl-a and vgs+ runs"
                )
                continue
            kind = "mono" if len(train) == 1 else "multilingual"
            point, draws = _gain(audio_only, grounded)
            report.gains.append(RatioRow(language, kind, train_set_name(train), Estimate.of(point, draws)))
            local[("gain", kind)].append((point, draws))
        for key, values in local.items():
            pooled[key].extend(values)
        report.hypotheses.extend(_hypotheses(language, {k: _mean_of(v) for k, v in local.items()}))
    averages = {key: _mean_of(values) for key, values in pooled.items()}
    for (quantity, label), (point, draws) in sorted(averages.items()):
        rows = report.gaps if quantity == "gap" else report.gains
        rows.append(RatioRow(AVERAGE, label, "—", Estimate.of(point, draws)))
    report.hypotheses.extend(_hypotheses(AVERAGE, averages))
    return report


def _mean_of(values: Sequence[tuple[float, np.ndarray]]) -> tuple[float, np.ndarray]:
    return float(np.mean([p for p, _ in values])), np.mean([d for _, d in values], axis=0)


def _hypotheses(scope: str, values: dict[tuple[str, str], tuple[float, np.ndarray]]) -> list[Hypothesis]:
    tests = [
        ("audio-only gap > grounded gap", ("gap", "ssl-a"), ("gap", "vgs+")),
        (
            "multilingual grounding gain > monolingual grounding gain",
            ("gain", "multilingual"),
            ("gain", "mono"),
        ),
    ]
    answers = []
    for statement, first, second in tests:
        if first not in values or second not in values:
            continue
        point = values[first][0] - values[second][0]
        draws = values[first][1] - values[second][1]
        estimate = Estimate.of(point, draws)
        answers.append(
            Hypothesis(
                scope=scope,
                statement=statement,
                difference=estimate,
                probability=round(float(np.mean(draws > 0)), 4),
                held=point > 0,
                ci_excludes_zero=estimate.low > 0 or estimate.high < 0,
            )
        )
    return answers
