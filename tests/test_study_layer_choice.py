"""The study report chooses each model's layer on the valid items and reports the test error at that layer.

Result files are written directly (no training): every run's test errors are lowest at layer 2, its valid
errors at layer 1. English has valid items, French has none (its layers fall back to test, with a warning).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vgssl.evaluate.gap import multilingual_gap
from vgssl.evaluate.results import (
    AbxResult,
    CellScores,
    ConditionScore,
    Conventions,
    RunTag,
    write_result,
)
from vgssl.study.config import EvaluationSection, load_study_config
from vgssl.study.corpus import StudyCorpus, locate_corpus
from vgssl.study.evaluation import ModelToEvaluate
from vgssl.study.grid import enumerate_runs
from vgssl.study.layout import ModelPaths, StudyLayout
from vgssl.study.report import write_report
from vgssl.study.training import RunPlan
from vgssl.train.config import DataConfig, TrainConfig

# Test errors at the layer the valid items choose (layer 1): the paper's, so the audio-only gap is 31.5 %.
CHOSEN = {("ssl-a", "mono"): 10.0, ("ssl-a", "bi"): 13.15, ("vgs+", "mono"): 8.916, ("vgs+", "bi"): 9.6337}
TEST_OFFSETS = {0: 5.0, 1: 0.0, 2: -1.0}  # the best layer on test is 2
VALID_OFFSETS = {0: 4.0, 1: 0.0, 2: 3.0}  # the best layer on valid is 1
PAIRS = [(f"p{i}", f"q{i}") for i in range(12)]


def _result(error_by_layer: dict[int, float], *, item_file: str, run: RunTag) -> AbxResult:
    scores = [
        ConditionScore(
            layer=layer,
            speaker="across",
            context="within",
            error=error,
            cells=CellScores(
                a=[a for a, _ in PAIRS], b=[b for _, b in PAIRS], error=[error] * len(PAIRS),
                triplets=[10] * len(PAIRS),
            ),
        )
        for layer, error in error_by_layer.items()
    ]  # fmt: skip
    return AbxResult(
        task="phone",
        features="/features",
        item_file=item_file,
        language=run.eval_language,
        labels=["p", "q"],
        model={"kind": "test"},
        conventions=Conventions(
            last_frame="kept", alignment="dtw", max_size_group=10, max_x_across=5, seed=0,
            collapse="test", fastabx_version="0.9.0",
        ),
        run=run,
        scores=scores,
        vgssl_version="test",
    )  # fmt: skip


@pytest.fixture
def study(tmp_path: Path) -> tuple[dict, str, Path]:
    corpus = tmp_path / "corpus"
    (corpus / "manifests").mkdir(parents=True)
    (corpus / "items").mkdir()
    for language in ("en", "fr"):
        (corpus / "manifests" / f"{language}_train.tsv").write_text("/audio\n")
    header = "#file onset offset #phone prev-phone next-phone speaker\n"
    (corpus / "items" / "en_valid_triphone.item").write_text(header + "en/valid/u 0.0 0.3 a b c s00\n")
    (corpus / "items" / "fr_valid_triphone.item").write_text(header)  # no item: as if there were none
    config = {
        "corpus": {"path": "corpus", "synth": None},
        "languages": ["en", "fr"],
        "objectives": ["ssl-a", "vgs+"],
        "train": {"max_steps": 10},
        "evaluation": {"speakers": ["across"], "contexts": ["within"], "baselines": ["mfcc"]},
        "analysis": {"bootstrap": 200},
    }
    config_path = tmp_path / "study.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    loaded = load_study_config(config_path)
    layout = StudyLayout(tmp_path / "out")
    located = locate_corpus(loaded, layout.out)
    runs = enumerate_runs(objectives=["ssl-a", "vgs+"], languages=["en", "fr"], seeds=[0], pairwise=False)
    train_config = TrainConfig.model_construct(
        max_steps=10, precision="fp32", data=DataConfig.model_construct(hours=0.1), captions=None
    )
    plans = [RunPlan(run, layout.run(run.name), train_config) for run in runs]
    for run in runs:
        kind = "bi" if run.is_multilingual else "mono"
        for language in run.languages:
            tag = RunTag(objective=run.objective, train_languages=list(run.languages), seed=0, run=run.name)
            tag = tag.model_copy(update={"eval_language": language})
            base = CHOSEN[(run.objective, kind)]
            paths = layout.run(run.name)
            test = {layer: base + offset for layer, offset in TEST_OFFSETS.items()}
            write_result(_result(test, item_file=f"{language}_test", run=tag), paths.phone_abx(language))
            if language == "en":
                valid = {layer: base + 2 + offset for layer, offset in VALID_OFFSETS.items()}
                write_result(_result(valid, item_file="en_valid", run=tag), paths.valid_phone_abx(language))
    mfcc = layout.baseline("mfcc")
    for language in ("en", "fr"):
        tag = RunTag(run="mfcc", eval_language=language)
        write_result(_result({0: 20.0}, item_file=f"{language}_test", run=tag), mfcc.phone_abx(language))
    write_result(_result({0: 25.0}, item_file="en_valid", run=tag), mfcc.valid_phone_abx("en"))
    report_md = write_report(loaded, located, layout, plans, ["en", "fr"], hours=None)
    return json.loads(layout.report_json.read_text(encoding="utf-8")), report_md.read_text(), layout.out


def _row(report: dict, model: str, language: str) -> dict:
    return next(r for r in report["phone_abx"] if (r["model"], r["eval_language"]) == (model, language))


def test_the_layer_chosen_on_valid_gives_the_reported_test_error(study) -> None:
    report, markdown, _ = study
    row = _row(report, "ssl-a_en+fr", "en")
    assert row["layer"] == 1 and row["layer_chosen_on"] == "valid"
    assert row["error"] == pytest.approx(13.15)  # the test error at layer 1, not the test minimum
    assert row["test_best_layer"] == 2 and row["test_best_error"] == pytest.approx(12.15)
    assert row["valid_error"] == pytest.approx(15.15) and row["warning"] is None
    errors = {
        (e["eval_language"], e["objective"], tuple(e["train_languages"])): e
        for e in report["gap_analysis"]["errors"]
    }
    assert errors[("en", "ssl-a", ("en", "fr"))]["layers"] == [1]
    assert errors[("en", "ssl-a", ("en", "fr"))]["error"]["point"] == pytest.approx(13.15)
    gaps = {(g["eval_language"], g["label"]): g["value"]["point"] for g in report["gap_analysis"]["gaps"]}
    assert gaps[("en", "ssl-a")] == pytest.approx(31.5, abs=1e-3)  # at layer 1; layer 2 would give 35 %
    assert "on the valid items" in report["gap_analysis"]["layer_rule"]
    learning = next(r for r in report["learning"] if (r["model"], r["eval_language"]) == ("ssl-a_en", "en"))
    assert learning["layer"] == 1 and learning["error"] == pytest.approx(10.0)
    assert learning["baselines"]["mfcc"]["layer_chosen_on"] == "valid"
    assert "13.15 (L1)" in markdown and "12.15 (L2)" in markdown and "best on test" in markdown


def test_without_valid_items_the_layer_is_chosen_on_test_with_a_warning(study) -> None:
    report, markdown, _ = study
    row = _row(report, "ssl-a_en+fr", "fr")
    assert row["layer"] == 2 and row["layer_chosen_on"] == "test" and "no valid items" in row["warning"]
    gaps = {(g["eval_language"], g["label"]): g["value"]["point"] for g in report["gap_analysis"]["gaps"]}
    assert gaps[("fr", "ssl-a")] == pytest.approx(100 * multilingual_gap(9.0, 12.15), abs=1e-3)
    assert any(w.startswith("fr: no valid items") for w in report["warnings"])
    assert not any(w.startswith("en") for w in report["warnings"])
    assert "## Warnings" in markdown and "12.15 (L2†)" in markdown
    assert report["setup"]["corpus"]["valid_items"]["fr"] is None


def test_a_configured_valid_item_file_replaces_the_corpus_one_and_is_evaluated(tmp_path: Path) -> None:
    dev = tmp_path / "dev" / "fr_dev.item"
    dev.parent.mkdir()
    dev.write_text("#file onset offset #phone prev-phone next-phone speaker\nfr/valid/u 0.0 0.3 a b c s00\n")
    corpus = StudyCorpus(tmp_path / "corpus", ("en", "fr"), None, valid_items={"fr": dev})
    assert corpus.layer_choice_items("fr") == dev
    assert corpus.layer_choice_items("en") is None  # no corpus valid items either
    model = ModelToEvaluate("mfcc", ModelPaths(tmp_path / "mfcc"), ("en", "fr"), RunTag(run="mfcc"))
    pending = model.pending(corpus, EvaluationSection(language_abx=False))
    assert [path.name for path in pending] == [
        "phone_abx_en.json",
        "phone_abx_fr.json",
        "phone_abx_fr_valid.json",
    ]
