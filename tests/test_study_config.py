"""Study grid and config: enumeration, validation with YAML lines, languages checked against the corpus."""

import json
from pathlib import Path

import pytest
import yaml

from vgssl.cli import main
from vgssl.study.config import StudyConfigError, load_study_config
from vgssl.study.corpus import locate_corpus, study_languages
from vgssl.study.grid import enumerate_runs, training_sets
from vgssl.study.layout import StudyLayout
from vgssl.study.training import control_statement, plan_runs, run_train_dict

TINY_PRESET = Path(__file__).parent.parent / "configs" / "tiny.yaml"


def test_two_languages_give_the_papers_six_runs():
    runs = enumerate_runs(objectives=["ssl-a", "vgs+"], languages=["en", "fr"], seeds=[0], pairwise=False)
    assert [run.name for run in runs] == [
        "ssl-a_en",
        "ssl-a_fr",
        "ssl-a_en+fr",
        "vgs+_en",
        "vgs+_fr",
        "vgs+_en+fr",
    ]
    assert [run.label for run in runs][-1] == "vgs+ en+fr"
    assert [run.is_multilingual for run in runs] == [False, False, True] * 2


def test_three_languages_with_and_without_pairs():
    # A set's languages are sorted, as `vgssl gap` names training sets.
    assert training_sets(["en", "fr", "es"], pairwise=False) == [
        ("en",),
        ("fr",),
        ("es",),
        ("en", "es", "fr"),
    ]
    assert training_sets(["en", "fr", "es"], pairwise=True) == [
        ("en",), ("fr",), ("es",), ("en", "fr"), ("en", "es"), ("es", "fr"), ("en", "es", "fr"),
    ]  # fmt: skip
    # With two languages the only pair is "all together": no duplicate run.
    assert training_sets(["en", "fr"], pairwise=True) == [("en",), ("fr",), ("en", "fr")]
    assert training_sets(["en"], pairwise=True) == [("en",)]


def test_seeds_multiply_the_grid_and_name_the_runs():
    runs = enumerate_runs(objectives=["ssl-a"], languages=["en", "fr", "es"], seeds=[0, 7], pairwise=True)
    assert len(runs) == 7 * 2
    assert len({run.name for run in runs}) == len(runs)
    assert runs[1].name == "ssl-a_en_seed7" and runs[1].label == "ssl-a en seed 7"


def _write(tmp_path: Path, config: dict, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _tiny(**changes) -> dict:
    config = yaml.safe_load(TINY_PRESET.read_text(encoding="utf-8"))
    config.update(changes)
    return config


def _fake_built_corpus(directory: Path, languages: list[str]) -> Path:
    """Just the card, which is all a study reads before training (the languages it lists)."""
    directory.mkdir(parents=True)
    card = {"format": "vgssl-corpus-v1", "languages": {language: {} for language in languages}}
    (directory / "corpus.json").write_text(json.dumps(card), encoding="utf-8")
    return directory


def test_the_presets_validate():
    presets = Path(__file__).parent.parent / "src" / "vgssl" / "study" / "presets"
    names = sorted(path.name for path in presets.glob("*.yaml"))
    assert names == ["demo.yaml", "paper-like.yaml", "tiny.yaml"]
    for name in names:
        assert load_study_config(presets / name).config.objectives == ["ssl-a", "vgs+"]


def test_unknown_language_in_a_built_corpus_is_named_with_its_line(tmp_path):
    corpus = _fake_built_corpus(tmp_path / "corpus", ["en", "fr"])
    config = _tiny(languages=["en", "de"], corpus={"path": str(corpus)})
    study = load_study_config(_write(tmp_path, config))
    located = locate_corpus(study, tmp_path / "out")
    with pytest.raises(StudyConfigError) as caught:
        study_languages(study, located)
    line = next(
        n for n, text in enumerate((tmp_path / "study.yaml").read_text().splitlines(), 1) if "- de" in text
    )
    assert (
        f"study.yaml:{line}: languages[1]: language 'de' is not in the corpus {corpus} (it has en, fr)"
        in str(caught.value)
    )


def test_unknown_language_fails_before_the_corpus_is_built(tmp_path, capsys):
    config = _tiny(languages=["en", "es"])  # the tiny preset builds en and fr only
    out = tmp_path / "out"
    assert main(["study", str(_write(tmp_path, config)), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "languages[1]: language 'es' is not in the corpus" in error
    assert "(it will have en, fr); add it to corpus.synth.languages" in error
    assert not out.exists()  # nothing built, nothing trained


def test_config_problems_are_all_listed_with_their_lines(tmp_path):
    config = _tiny(objectives=["ssl-a", "ssl-b"], seeds=[0, 0])
    config["train"]["run_dir"] = "somewhere"
    config["train"]["grounding"] = {}
    with pytest.raises(StudyConfigError) as caught:
        load_study_config(_write(tmp_path, config))
    message = str(caught.value)
    assert "3 problem(s)" in message
    assert "objectives[1]: Input should be 'ssl-a' or 'vgs+'" in message
    assert "seeds: Value error, values repeat: [0, 0]" in message
    assert "train: Value error, run_dir is set by the study" in message


def test_the_analysed_condition_must_be_evaluated(tmp_path):
    config = _tiny()
    config["evaluation"]["speakers"] = ["within"]  # the analysis reads across-speaker scores
    with pytest.raises(StudyConfigError, match=r"analysis\.speaker across is not in evaluation\.speakers"):
        load_study_config(_write(tmp_path, config))


def test_training_config_mistakes_point_at_the_study_config(tmp_path):
    config = _tiny(run_overrides={"ssl-a_fr": {"optim": {"lr": -1}}, "ssl-a_de": {}})
    config["train"]["model"]["heads"] = 3  # 32 is not divisible by 3
    config["grounded"]["grounding"]["pooling"] = "max"
    path = _write(tmp_path, config)
    study = load_study_config(path)
    corpus = locate_corpus(study, tmp_path / "out")
    runs = enumerate_runs(objectives=["ssl-a", "vgs+"], languages=["en", "fr"], seeds=[0], pairwise=False)
    with pytest.raises(StudyConfigError) as caught:
        plan_runs(study, runs, corpus, StudyLayout(tmp_path / "out"), hours=None)
    problems = str(caught.value).splitlines()[1:]
    lines = path.read_text().splitlines()

    def line_of(text: str) -> int:
        return next(n for n, line in enumerate(lines, 1) if text in line)

    assert any(
        p.startswith(f"{path}:{line_of('ssl-a_de')}: run_overrides.ssl-a_de: no run is named")
        for p in problems
    )
    assert any(
        f":{line_of('lr: -1')}: run_overrides.ssl-a_fr.optim.lr: Input should be greater" in p
        for p in problems
    )
    assert any(f":{line_of('pooling: max')}: grounded.grounding.pooling:" in p for p in problems)
    # The shared model section breaks all six runs but is reported once, where it is written.
    assert sum("train.model: Value error, dim=32 is not divisible by heads=3" in p for p in problems) == 1
    assert len(problems) == 4


def test_ssl_a_runs_hear_the_caption_speech_of_vgs_runs_unless_the_control_is_off(tmp_path):
    runs = enumerate_runs(objectives=["ssl-a", "vgs+"], languages=["en", "fr"], seeds=[0], pairwise=False)
    sections = {}
    for control in ("default", "caption-speech", "none"):
        config = _tiny() if control == "default" else _tiny(control=control)
        config["grounded"]["objective"] = {"schedule": "interleave", "caption_step_fraction": 0.5}
        study = load_study_config(_write(tmp_path, config, name=f"{control}.yaml"))
        corpus = locate_corpus(study, tmp_path / "out")
        layout = StudyLayout(tmp_path / "out")
        assert plan_runs(study, runs, corpus, layout, hours=None) == []  # valid, up to the corpus files
        raws = {
            run.name: run_train_dict(study, run, corpus, layout.run(run.name), hours=None) for run in runs
        }
        sections[control] = raws
        vgs = raws["vgs+_en"]
        assert vgs["captions"]["valid"] == {"captions": str(corpus.captions("valid"))}
        assert "grounding" in vgs and vgs["objective"]["schedule"] == "interleave"
        assert control_statement(study).startswith("Control: none" if control == "none" else "Control: every")
    for control in ("default", "caption-speech"):
        ssl = sections[control]["ssl-a_en+fr"]
        vgs = sections[control]["vgs+_en+fr"]
        assert "grounding" not in ssl
        assert ssl["captions"] == {key: value for key, value in vgs["captions"].items() if key != "valid"}
        assert ssl["captions"]["train"] == [{"captions": str(corpus.captions("train"))}]
        assert ssl["captions"]["grounded_fraction"] == 0.4 and ssl["objective"] == vgs["objective"]
        assert {key: ssl[key] for key in ("data", "model", "optim")} == {
            key: vgs[key] for key in ("data", "model", "optim")
        }
    for name in ("ssl-a_en", "ssl-a_en+fr"):
        assert not {"captions", "objective", "grounding"} & set(sections["none"][name])
    assert "captions" in sections["none"]["vgs+_en"]


def test_an_unknown_control_is_refused(tmp_path):
    with pytest.raises(StudyConfigError, match=r"control: Input should be 'caption-speech' or 'none'"):
        load_study_config(_write(tmp_path, _tiny(control="images")))
