"""`vgssl study` end to end on the tiny corpus: the CI preset, re-runs, a failing run, interruption."""

import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from vgssl.cli import main
from vgssl.evaluate.results import read_result
from vgssl.study.runner import run_study
from vgssl.study.status import read_status
from vgssl.train.metrics import read_metrics

TINY_PRESET = Path(__file__).parent.parent / "configs" / "tiny.yaml"
SECTIONS = [
    "## Setup",
    "## Phone ABX",
    "## Phone ABX per condition, over seeds",
    "## Multilingual gap (audio-only vs grounded)",
    "## Grounding gain (monolingual vs multilingual)",
    "## The paper's two hypotheses",
    "## Language ABX",
    "## Retrieval",
    "## Training curves",
    "## Learning happened",
    "## Conventions",
]
RUNS = ["ssl-a_en", "ssl-a_fr", "ssl-a_en+fr", "vgs+_en", "vgs+_fr", "vgs+_en+fr"]


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """`vgssl demo --tiny`: the CI preset (configs/tiny.yaml) as is, corpus build included."""
    out = tmp_path_factory.mktemp("tiny-study") / "out"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["demo", "--tiny", "--out", str(out), "--no-progress"])
    return out, status, printed.getvalue().splitlines()


def _numbers(tree):
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _numbers(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _numbers(value)
    elif isinstance(tree, int | float) and not isinstance(tree, bool):
        yield tree


def test_the_tiny_preset_runs_end_to_end(tiny_study):
    out, status, printed = tiny_study
    assert status == 0
    stages = [line for line in printed if line.startswith("[")]
    assert [line.split("]")[0] for line in stages] == [f"[{k}/15" for k in range(1, 16)]
    assert not any("FAILED" in line for line in stages)
    # The demo ends with the answer to the paper's hypotheses, then where the report is.
    assert "## The paper's two hypotheses" in printed and printed[-1] == f"report: {out / 'report.md'}"

    text = (out / "report.md").read_text(encoding="utf-8")
    positions = [text.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    numbers = list(_numbers(report))
    assert len(numbers) > 500 and all(math.isfinite(n) for n in numbers)

    compute = {row["run"]: row for row in report["setup"]["compute"]}
    assert list(compute) == RUNS
    for name, row in compute.items():
        assert (row["state"], row["steps"]) == ("done", 10)
        assert row["wall_seconds"] > 0
        assert row["hours_seen"]["audio"] > 0
        assert (row["hours_seen"]["captions"] > 0) == name.startswith("vgs+")
        # The clean control: SSL-A runs heard the caption speech, and the report says so.
        assert row["control"] == (None if name.startswith("vgs+") else "caption-speech")
        assert (out / "runs" / name / "train" / "checkpoints" / "last.pt").is_file()
    assert report["setup"]["control"] == "caption-speech"
    assert report["setup"]["control_statement"].startswith("Control: every SSL-A run also heard")
    assert report["setup"]["control_statement"] in text
    # One seed: the report says training variance is unmeasured and gives no share of replicates.
    assert "One seed per condition: training variance" in text
    assert "P(holds)" not in text and "replicates above 0" not in text
    assert "the smallest difference this study could detect is about ±" in text
    # Budget matched: every run gets the smallest language's training speech.
    assert len({row["budget_hours"] for row in compute.values()}) == 1

    # 8 (run, language) pairs and 3 baselines × 2 languages, each within and across speaker.
    assert len(report["phone_abx"]) == (8 + 6) * 2
    gap = report["gap_analysis"]
    assert {(r["eval_language"], r["label"]) for r in gap["gaps"]} == {
        (language, objective) for language in ("en", "fr", "average") for objective in ("ssl-a", "vgs+")
    }
    assert {(r["eval_language"], r["label"]) for r in gap["gains"]} == {
        (language, kind) for language in ("en", "fr", "average") for kind in ("mono", "multilingual")
    }
    assert [h["scope"] for h in gap["hypotheses"]].count("average") == 2
    assert all(row["ours"] is not None for row in report["paper_comparison"])
    assert {(r["model"], r["language"]) for r in report["retrieval"]} == {
        ("vgs+_en", "en"), ("vgs+_fr", "fr"),
        ("vgs+_en+fr", "en"), ("vgs+_en+fr", "fr"), ("vgs+_en+fr", "all"),
    }  # fmt: skip
    assert len(report["language_abx"]) == 6 + 3
    assert len(report["learning"]) == 8
    assert report["failures"] == []
    for path in report["figures"].values():
        assert (out / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_numbers_are_the_result_files_numbers(tiny_study):
    out, _, _ = tiny_study
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    row = next(
        r
        for r in report["phone_abx"]
        if (r["model"], r["eval_language"], r["speaker"]) == ("vgs+_en+fr", "fr", "across")
    )
    result = read_result(out / "runs" / "vgs+_en+fr" / "results" / "phone_abx_fr.json")
    errors = {s.layer: s.error for s in result.scores if (s.speaker, s.context) == ("across", "within")}
    # The layer is chosen on the valid items; the reported error is the test error at that layer.
    valid = read_result(out / "runs" / "vgs+_en+fr" / "results" / "phone_abx_fr_valid.json")
    assert valid.item_file.endswith("fr_valid_triphone.item")
    valid_errors = {s.layer: s.error for s in valid.scores if (s.speaker, s.context) == ("across", "within")}
    assert row["layer_chosen_on"] == "valid" and row["valid_errors_by_layer"] == {
        str(layer): error for layer, error in sorted(valid_errors.items())
    }
    assert row["layer"] == min(valid_errors, key=lambda layer: (valid_errors[layer], layer))
    assert row["error"] == errors[row["layer"]]
    assert row["test_best_error"] == min(errors.values()) == errors[row["test_best_layer"]]
    assert row["fixed_layer"] == 1 and row["fixed_error"] == errors[1]
    choices = report["gap_analysis"]["layer_choice"]
    assert len(choices) == 8 and all(choice["chosen_on"] == "valid" for choice in choices)
    assert result.run.objective == "vgs+" and result.run.train_languages == ["en", "fr"]
    retrieval = json.loads(
        (out / "runs" / "vgs+_en" / "results" / "retrieval.json").read_text(encoding="utf-8")
    )
    in_report = next(r for r in report["retrieval"] if r["model"] == "vgs+_en")
    assert in_report["speech_to_image"] == retrieval["languages"]["en"]["speech_to_image"]


def test_a_second_run_skips_what_is_done(tiny_study):
    out, _, _ = tiny_study
    watched = [out / "runs" / name / "train" / "checkpoints" / "last.pt" for name in RUNS]
    watched += sorted((out / "runs").glob("*/results/*.json")) + sorted(
        (out / "baselines").glob("*/results/*.json")
    )
    before = {path: path.stat().st_mtime_ns for path in watched}
    lines: list[str] = []
    outcome = run_study(TINY_PRESET, out, progress=False, write=lines.append)
    assert outcome.failed == []
    assert sum("training skipped (done: 10 steps)" in line for line in lines) == 6
    assert sum("evaluation skipped (results exist)" in line for line in lines) == 6
    assert {path: path.stat().st_mtime_ns for path in watched} == before
    assert all(read_status(out / "runs" / name / "status.json").training.attempts == 1 for name in RUNS)


def _derived_config(tmp_path: Path, **changes) -> Path:
    config = yaml.safe_load(TINY_PRESET.read_text(encoding="utf-8"))
    for key, value in changes.items():
        config[key] = value
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def test_three_languages_and_a_failing_run(tmp_path):
    """A diverging run (absurd learning rate) fails; the grid goes on and the report shows what is missing."""
    config = _derived_config(
        tmp_path,
        corpus={"synth": {"tiny": True, "languages": ["en", "fr", "es"]}},
        languages=["en", "fr", "es"],
        objectives=["ssl-a"],
        run_overrides={"ssl-a_es": {"optim": {"lr": 1.0e30, "warmup_steps": 0}}},
        evaluation={"layers": [0, 1], "fixed_layer": 1, "baselines": []},
    )
    out = tmp_path / "out"
    lines: list[str] = []
    outcome = run_study(config, out, progress=False, write=lines.append)
    assert outcome.failed == ["ssl-a es: training"]
    assert any("ssl-a es: training FAILED" in line and "non-finite loss" in line for line in lines)
    assert any("ssl-a es: evaluation not possible (training failed)" in line for line in lines)
    status = read_status(out / "runs" / "ssl-a_es" / "status.json")
    assert status.training.state == "failed" and "non-finite loss" in status.training.error

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [row["state"] for row in report["setup"]["compute"]] == ["done", "done", "failed", "done"]
    failure = report["failures"][0]
    assert (failure["model"], failure["stage"], failure["log"]) == (
        "ssl-a_es",
        "training",
        "runs/ssl-a_es/launch.log",
    )
    assert failure["missing_results"] == [
        "runs/ssl-a_es/results/phone_abx_es.json",
        "runs/ssl-a_es/results/phone_abx_es_valid.json",
        "runs/ssl-a_es/results/language_abx.json",
    ]
    # Only what the failed run would have given is missing: no VGS+ run was asked for.
    assert report["failures"][1]["missing_cells"] == ["ssl-a gap on es for en+es+fr: needs mono + multi runs"]
    # The other languages get their gap against the three-language run.
    gaps = {(r["eval_language"], r["train_languages"]) for r in report["gap_analysis"]["gaps"]}
    assert gaps == {("en", "en+es+fr"), ("fr", "en+es+fr"), ("average", "—")}
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "| ssl-a es | none | failed |" in text and "[log](runs/ssl-a_es/launch.log)" in text
    assert "es chosen on valid" in text  # the phone ABX table has a column for every language


def test_two_seeds_trained_two_at_a_time_give_intervals_over_seeds(tmp_path, tiny_study):
    """`seeds: [0, 1]` with `launch.parallel_runs: 2`: every run trains in a slot of its own (its launch log
    shows the slot's thread count) and is evaluated there while the other slot trains, and the report gives
    per-seed errors, the between-seed SD, intervals over seeds and cells and the share of replicates, with the
    environment it was computed in."""
    corpus = tiny_study[0] / "corpus"
    config = _derived_config(
        tmp_path,
        corpus={"path": str(corpus), "synth": None},
        objectives=["ssl-a"],
        seeds=[0, 1],
        launch={"parallel_runs": 2},
        evaluation={"layers": [0, 1], "fixed_layer": 1, "baselines": [], "language_abx": False},
    )
    out = tmp_path / "out"
    lines: list[str] = []
    started = time.perf_counter()
    outcome = run_study(config, out, progress=False, write=lines.append)
    assert outcome.failed == [], lines
    names = [f"ssl-a_{train}_seed{seed}" for train in ("en", "fr", "en+fr") for seed in (0, 1)]
    threads = max(1, (os.cpu_count() or 1) // 2)
    for name in names:
        assert "=== " in (log := (out / "runs" / name / "launch.log").read_text(encoding="utf-8"))
        assert f"OMP_NUM_THREADS={threads} " in log
        status = read_status(out / "runs" / name / "status.json")
        assert status.training.state == status.evaluation.state == "done"
    # Each run is evaluated in its slot right after its training, beside the other slot's training.
    trained = [i for i, line in enumerate(lines) if ": training done in " in line]
    evaluated = [i for i, line in enumerate(lines) if ": evaluation done in " in line]
    assert len(trained) == len(evaluated) == 6 and min(evaluated) < max(trained), lines
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    walls = [row["wall_seconds"] for row in report["setup"]["compute"]]
    assert sum(walls) > time.perf_counter() - started - sum(walls) / 2  # some runs overlapped
    errors = report["gap_analysis"]["errors"]
    assert len(errors) == 4 and all(row["seeds"] == [0, 1] and row["seed_sd"] is not None for row in errors)
    for row in errors:
        mean = sum(row["seed_errors"]) / 2
        assert row["error"]["point"] == pytest.approx(mean, abs=1e-3)
        assert row["seed_sd"] == pytest.approx(
            abs(row["seed_errors"][0] - row["seed_errors"][1]) / math.sqrt(2), abs=1e-3
        )
    assert "seeds" in report["gap_analysis"]["bootstrap"]["over"]
    environment = report["setup"]["environment"]
    assert environment["versions"]["torch"] and environment["cpu_count"] == os.cpu_count()
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "## Phone ABX per condition, over seeds" in text and "between-seed SD" in text
    assert "One seed per condition" not in text
    assert "### Reproducibility" in text and "2 run(s) at a time" in text


@pytest.mark.parametrize("seeds", [[0], [0, 1]])
def test_the_share_of_replicates_is_given_only_with_several_seeds(seeds):
    from vgssl.study.markdown import _hypotheses

    estimate = {"point": 1.0, "low": -0.5, "high": 2.5}
    hypothesis = {"scope": "average", "statement": "audio-only gap > grounded gap", "difference": estimate,
                  "probability": 0.9, "held": True, "ci_excludes_zero": False}  # fmt: skip
    report = {
        "setup": {"seeds": seeds},
        "paper_comparison": [
            {"quantity": name, "ours": estimate, "paper": 8.0}
            for name in ("gap ssl-a", "gap vgs+", "gain mono", "gain multilingual")
        ],
        "gap_analysis": {"hypotheses": [hypothesis]},
    }
    text = "\n".join(_hypotheses(report))
    assert "not established (leans towards holding)" in text and "about ±1.5 points" in text
    assert ("90.0 % of the replicates above 0" in text) == (len(seeds) > 1)
    assert ("One seed per condition: training variance" in text) == (len(seeds) == 1)


@pytest.mark.parametrize(
    ("errors", "flagged"),
    [((20.0, 30.0), None), ((20.0, 49.0), "Near chance (error ≥ 45 %): b."), ((51.0, 52.0), "every model")],
)
def test_language_abx_near_chance_is_flagged(errors, flagged):
    from vgssl.study.markdown import _language_abx

    rows = [
        {"label": label, "languages": ["en", "fr"], "best_layer": 0, "best_error": error, "fixed_layer": 1,
         "fixed_error": error}
        for label, error in zip("ab", errors, strict=True)
    ]  # fmt: skip
    text = "\n".join(_language_abx({"language_abx": rows}))
    assert ("Near chance" in text) == (flagged is not None)
    if flagged is not None:
        assert flagged in text


def test_an_interrupted_study_resumes(tmp_path, tiny_study):
    corpus = tiny_study[0] / "corpus"
    config = yaml.safe_load(TINY_PRESET.read_text(encoding="utf-8"))
    config.update(corpus={"path": str(corpus), "synth": None}, languages=["en"], objectives=["ssl-a"])
    config["train"].update(max_steps=40, checkpoint={"every": 4}, logging={"every": 4, "tensorboard": False})
    config["evaluation"].update(baselines=[])
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    out = tmp_path / "out"
    checkpoint = out / "runs" / "ssl-a_en" / "train" / "checkpoints" / "last.pt"
    command = [sys.executable, "-m", "vgssl", "study", str(path), "--out", str(out), "--no-progress"]
    # Its own process group, so the interrupt reaches the study and its trainer, as Ctrl-C in a terminal does.
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        while not checkpoint.is_file() and process.poll() is None:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        output = process.communicate(timeout=60)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert "interrupted; re-run the same command to resume" in output
    assert read_status(out / "runs" / "ssl-a_en" / "status.json").training.state == "interrupted"

    lines: list[str] = []
    outcome = run_study(path, out, progress=False, write=lines.append)
    assert outcome.failed == []
    train_dir = out / "runs" / "ssl-a_en" / "train"
    assert "resumed from" in (train_dir / "train.log").read_text(encoding="utf-8")
    steps = [r["step"] for r in read_metrics(train_dir / "metrics.jsonl") if r["split"] == "train"]
    assert steps == list(range(4, 41, 4))  # one record per logged step, as if never interrupted
    status = read_status(out / "runs" / "ssl-a_en" / "status.json")
    assert (status.training.state, status.training.attempts) == ("done", 2)


def test_training_slots_share_out_gpus_or_cores_and_one_slot_changes_nothing(monkeypatch):
    from vgssl.study.training import TrainingFailedError, training_slots

    assert [slot.environment for slot in training_slots(parallel_runs=1, nproc_per_node=4, gpus=8)] == [{}]
    gpus = [s.environment for s in training_slots(parallel_runs=2, nproc_per_node=4, gpus=8)]
    assert gpus == [{"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}]
    with pytest.raises(TrainingFailedError, match="needs 12 GPUs, 8 are visible"):
        training_slots(parallel_runs=3, nproc_per_node=4, gpus=8)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    cpus = [s.environment for s in training_slots(parallel_runs=4, nproc_per_node=2, gpus=0)]
    assert cpus == [{"OMP_NUM_THREADS": "2"}] * 4
