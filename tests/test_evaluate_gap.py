import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from vgssl.cli import main
from vgssl.evaluate.gap import (
    GapInputError,
    RunScore,
    analyse,
    grounded_gap,
    grounding_gain,
    multilingual_gap,
    select_runs,
)
from vgssl.evaluate.results import (
    AbxResult,
    CellScores,
    ConditionScore,
    Conventions,
    RunTag,
    read_result,
    write_result,
)

# The paper's headline numbers: E_bi = 1.315 E_mono for SSL-A; VGS+ gains 10.84 % (mono) and 26.74 % (bi).
PAPER_ERRORS = {
    ("ssl-a", "mono"): 10.0,
    ("ssl-a", "bi"): 13.15,
    ("vgs+", "mono"): 10.0 * (1 - 0.1084),
    ("vgs+", "bi"): 13.15 * (1 - 0.2674),
}


def _cells(error: float, *, count: int, spread: float, rng: np.random.Generator) -> CellScores:
    noise = rng.normal(0.0, spread, count)
    values = error + noise - noise.mean()  # their mean is exactly `error`
    pairs = [(f"p{i}", f"q{i}") for i in range(count)]
    return CellScores(
        a=[a for a, _ in pairs], b=[b for _, b in pairs], error=list(values), triplets=[100] * count
    )


def make_result(
    directory: Path,
    *,
    objective: str,
    train: list[str],
    language: str,
    error: float,
    seed: int | None = 0,
    cells: int = 30,
    spread: float = 0.0,
    layer_offsets: tuple[float, ...] = (3.0, 0.0, 1.5),
    tagged: bool = True,
) -> Path:
    rng = np.random.default_rng(zlib.crc32(f"{objective} {train} {language} {seed}".encode()))
    scores = [
        ConditionScore(
            layer=layer, speaker="across", context="within", error=error + offset,
            cells=_cells(error + offset, count=cells, spread=spread, rng=rng),
        )
        for layer, offset in enumerate(layer_offsets)
    ]  # fmt: skip
    result = AbxResult(
        task="phone",
        features=f"/features/{objective}-{'+'.join(train)}-{seed}",
        item_file=f"/corpus/items/{language}_test_triphone.item",
        language=language,
        labels=["p", "q"],
        model={"kind": "vgssl"},
        conventions=Conventions(
            last_frame="kept",
            alignment="dtw",
            max_size_group=10,
            max_x_across=5,
            seed=0,
            collapse="test",
            fastabx_version="0.9.0",
        ),
        run=RunTag(objective=objective, train_languages=train, seed=seed) if tagged else None,
        scores=scores,
        vgssl_version="test",
    )
    path = directory / f"{objective}-{'+'.join(train)}-{language}-{seed}.json"
    write_result(result, path)
    return path


def paper_grid(
    directory: Path, *, cells: int = 30, spread: float = 0.0, seeds: tuple[int, ...] = (0,)
) -> list[Path]:
    paths = []
    for language in ("en", "fr"):
        for (objective, kind), error in PAPER_ERRORS.items():
            for seed in seeds:
                train = [language] if kind == "mono" else ["en", "fr"]
                paths.append(
                    make_result(directory, objective=objective, train=train, language=language,
                                error=error + 0.5 * seed, seed=seed, cells=cells, spread=spread)
                )  # fmt: skip
    return paths


def _report(paths: list[Path], **options):
    runs = select_runs([(p, read_result(p)) for p in paths], layer="best", speaker="across", context="within")
    return analyse(runs, speaker="across", context="within", layer_rule="best", replicates=500, **options)


def test_formulas_and_the_papers_known_answer() -> None:
    assert multilingual_gap(10.0, 13.15) == pytest.approx(0.315)
    assert grounding_gain(10.0, 8.916) == pytest.approx(0.1084)
    assert 100 * grounded_gap(0.315, 0.1084, 0.2674) == pytest.approx(8.04, abs=0.01)
    assert grounded_gap(0.315, 0.0, 0.0) == pytest.approx(0.315)  # no grounding gain: the gap is unchanged


def test_gap_report_reproduces_the_paper_from_tagged_results(tmp_path: Path) -> None:
    report = _report(paper_grid(tmp_path))
    gaps = {(r.eval_language, r.label): r.value for r in report.gaps}
    gains = {(r.eval_language, r.label): r.value for r in report.gains}
    for language in ("en", "fr", "average"):
        assert gaps[(language, "ssl-a")].point == pytest.approx(31.5, abs=1e-3)
        assert gaps[(language, "vgs+")].point == pytest.approx(8.04, abs=0.01)
        assert gains[(language, "mono")].point == pytest.approx(10.84, abs=1e-3)
        assert gains[(language, "multilingual")].point == pytest.approx(26.74, abs=1e-3)
    # identical cells: every replicate equals the point estimate
    assert gaps[("average", "vgs+")].low == gaps[("average", "vgs+")].high == gaps[("average", "vgs+")].point
    held = {(h.scope, h.statement): h for h in report.hypotheses}
    first = held[("average", "audio-only gap > grounded gap")]
    second = held[("average", "multilingual grounding gain > monolingual grounding gain")]
    assert (
        first.held
        and first.probability == 1.0
        and first.difference.point == pytest.approx(31.5 - 8.05, abs=0.01)
    )
    assert (
        second.held and second.ci_excludes_zero and second.difference.point == pytest.approx(15.9, abs=1e-3)
    )
    results = [(p, read_result(p)) for p in paper_grid(tmp_path)]
    chosen = select_runs(results, layer="best", speaker="across", context="within")
    assert {run.layer for run in chosen} == {1}  # layer 1 has the lowest error in every run


def test_bootstrap_interval_contains_the_point_and_shrinks_with_more_cells(tmp_path: Path) -> None:
    widths = []
    for cells in (20, 400):
        directory = tmp_path / str(cells)
        directory.mkdir()
        report = _report(paper_grid(directory, cells=cells, spread=4.0))
        for row in report.gaps + report.gains:
            assert row.value.low <= row.value.point <= row.value.high
        (average,) = [r.value for r in report.gaps if (r.eval_language, r.label) == ("average", "ssl-a")]
        widths.append(average.high - average.low)
    assert 0 < widths[1] < widths[0] / 2


def test_several_seeds_are_averaged_and_resampled(tmp_path: Path) -> None:
    report = _report(paper_grid(tmp_path, seeds=(0, 1)))
    assert "seeds" in report.bootstrap["over"]
    errors = {(e.eval_language, e.objective, e.train_languages): e for e in report.errors}
    mono = errors[("en", "ssl-a", ("en",))]
    assert mono.seeds == [0, 1] and mono.error.point == pytest.approx(10.25, abs=1e-3)
    assert mono.seed_errors == [10.0, 10.5] and mono.seed_sd == pytest.approx(0.5 / np.sqrt(2), abs=1e-4)
    # Two seeds drawn with replacement: both the same (deviation ±0.25, scaled by √2) or one of each.
    half = 0.25 * np.sqrt(2)
    assert mono.error.low == pytest.approx(10.25 - half, abs=1e-3)
    assert mono.error.high == pytest.approx(10.25 + half, abs=1e-3)


def _seeded_condition(
    deltas: np.ndarray, base: np.ndarray, *, objective: str, train: tuple[str, ...]
) -> list:
    """Runs whose cells are `base` shifted by each seed's `delta` (percent): seed and cell effects add up."""
    return [
        RunScore(
            label=f"{objective} seed {seed}", source=f"{objective}-{seed}", objective=objective,
            train_languages=train, eval_language="en", seed=seed, layer=0,
            error=float((base + delta).mean()),
            cells={(f"p{j}", f"q{j}"): float(value) for j, value in enumerate(base + delta)},
            layer_errors={0: float((base + delta).mean())},
        )
        for seed, delta in enumerate(deltas)
    ]  # fmt: skip


def test_intervals_over_seeds_and_cells_have_the_closed_form_width_of_a_normal_model() -> None:
    """Seed effects N(0, τ²) and cell errors with spread σ: the condition's mean over k seeds has variance
    s_δ²/k + var(cells)/P (the two are independent, the cells shared by every seed). The bootstrap's 95 %
    interval must match 1.96 × that standard error within Monte Carlo error, for the seed part alone, the
    cell part alone and both."""
    rng = np.random.default_rng(1)
    seeds, cells = 4, 300
    deltas = rng.normal(0.0, 1.5, seeds)
    base = 20.0 + rng.normal(0.0, 6.0, cells)
    cases = {
        "seeds": (deltas, np.full(cells, 20.0)),
        "cells": (np.zeros(1), base),
        "both": (deltas, base),
    }
    for name, (seed_shifts, cell_values) in cases.items():
        runs = _seeded_condition(seed_shifts, cell_values, objective="ssl-a", train=("en",))
        report = analyse(
            runs, speaker="across", context="within", layer_rule="best", replicates=20000, seed=1
        )
        (condition,) = report.errors
        variance = np.var(cell_values) / cells  # the cells' mean, resampled
        if len(seed_shifts) > 1:
            variance += np.var(seed_shifts, ddof=1) / len(seed_shifts)
        expected_half = 1.96 * np.sqrt(variance)
        half = (condition.error.high - condition.error.low) / 2
        assert half == pytest.approx(expected_half, rel=0.06), name
        assert condition.error.point == pytest.approx(
            float(cell_values.mean() + seed_shifts.mean()), abs=1e-3
        )
    # Without the √(k/(k−1)) scaling, 4 seeds would give a seed interval √(3/4) as wide: 13 % too narrow.


def test_between_seed_sd_is_reported_per_condition_and_none_for_one_seed() -> None:
    base = np.full(50, 30.0)
    runs = _seeded_condition(np.array([-1.0, 0.0, 1.0]), base, objective="ssl-a", train=("en",))
    runs += _seeded_condition(np.array([0.0]), base, objective="vgs+", train=("en",))
    report = analyse(runs, speaker="across", context="within", layer_rule="best", replicates=200)
    errors = {e.objective: e for e in report.errors}
    assert errors["ssl-a"].seed_errors == [29.0, 30.0, 31.0] and errors["ssl-a"].seed_sd == pytest.approx(1.0)
    assert errors["vgs+"].seed_errors == [30.0] and errors["vgs+"].seed_sd is None


def test_gap_command_writes_markdown_json_and_plots(tmp_path: Path) -> None:
    paths = paper_grid(tmp_path)
    out = tmp_path / "gap"
    assert main(["gap", *map(str, paths), "--out", str(out), "--bootstrap", "200"]) == 0
    document = json.loads((out / "gap.json").read_text())
    assert document["unit"] == "percent" and len(document["runs"]) == 8
    assert {h["statement"] for h in document["hypotheses"]} == {
        "audio-only gap > grounded gap",
        "multilingual grounding gain > monolingual grounding gain",
    }
    text = (out / "gap.md").read_text()
    assert "| average | vgs+ | — | 8.05 |" in text and "lowest across-speaker, within-context" in text
    for name in ("layers.png", "gaps.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["gap", *map(str, paths), "--out", str(out)]) == 2  # exists: refused without --overwrite


def test_untagged_or_incomparable_results_are_refused(tmp_path: Path) -> None:
    untagged = make_result(tmp_path, objective="ssl-a", train=["en"], language="en", error=10.0, tagged=False)
    with pytest.raises(GapInputError, match="lacks run tags"):
        _report([untagged])
    mono = make_result(tmp_path, objective="ssl-a", train=["en"], language="en", error=10.0, cells=30)
    bi = make_result(tmp_path, objective="ssl-a", train=["en", "fr"], language="en", error=12.0, cells=31)
    with pytest.raises(GapInputError, match="different ABX cells"):
        _report([mono, bi])
