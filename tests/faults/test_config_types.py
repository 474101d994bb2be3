"""Strict config types: a number key takes only a YAML number, a boolean only true/false.

Lax validation turned `clip_norm: yes` into 1.0 and `dim: "128"` into 128 without a word; both are errors
now, named with their file and line. Paths, lists-as-tuples and `1e-3` keep working.
"""

from pathlib import Path

import pytest

from vgssl.study.config import StudyConfigError, load_study_config
from vgssl.train.command import _override
from vgssl.train.config import ConfigError, load_config

TRAIN = """\
run_dir: runs/a
max_steps: 10
model:
  dim: 32
  layers: 2
  gumbel_temperature: [2.0, 0.5, 0.99]
data:
  train:
    - manifest: data/en.tsv
      language: en
optim:
  lr: 1e-3
  clip_norm: 5
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "en.tsv").write_text("audio\nx.wav\t16000\n")
    return tmp_path


def _write(directory: Path, text: str) -> Path:
    path = directory / "train.yaml"
    path.write_text(text)
    return path


def test_numbers_paths_tuples_and_exponent_floats_still_read(config_dir: Path) -> None:
    config = load_config(_write(config_dir, TRAIN))
    assert config.optim.lr == 1e-3 and isinstance(config.optim.lr, float)
    assert config.optim.clip_norm == 5.0  # an integer is a float
    assert config.model.gumbel_temperature == (2.0, 0.5, 0.99)
    assert config.data.train[0].manifest == config_dir / "data" / "en.tsv"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  clip_norm: 5", "  clip_norm: yes", ":13: optim.clip_norm: Input should be a valid number"),
        ("  dim: 32", '  dim: "32"', ":4: model.dim: Input should be a valid integer"),
        ("max_steps: 10", "max_steps: 10.0", ":2: max_steps: Input should be a valid integer"),
        ("  lr: 1e-3", '  lr: "0.001"', ":12: optim.lr: Input should be a valid number"),
    ],
)
def test_a_number_given_as_text_or_a_boolean_is_an_error(config_dir, old, new, expected) -> None:
    assert old in TRAIN
    with pytest.raises(ConfigError) as raised:
        load_config(_write(config_dir, TRAIN.replace(old, new)))
    assert expected in str(raised.value)


def test_set_overrides_read_values_like_the_config_file(config_dir: Path) -> None:
    assert _override("optim.lr=1e-3") == ("optim.lr", 1e-3)
    config = load_config(_write(config_dir, TRAIN), overrides=dict([_override("optim.clip_norm=2")]))
    assert config.optim.clip_norm == 2.0
    with pytest.raises(ConfigError, match=r"optim\.clip_norm: Input should be a valid number"):
        load_config(_write(config_dir, TRAIN), overrides=dict([_override("optim.clip_norm=yes")]))


def test_the_study_config_is_strict_too(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text("corpus:\n  synth: {tiny: true}\nseeds: [0, '1']\ntrain:\n  max_steps: 5\n")
    with pytest.raises(StudyConfigError, match=r":3: seeds\[1\]: Input should be a valid integer"):
        load_study_config(path)
