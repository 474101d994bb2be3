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
from vgssl.study.training import plan_runs

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
