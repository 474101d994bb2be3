"""The training config: YAML errors name the file, the line and the key; paths resolve against the YAML."""

import re
from pathlib import Path

import pytest

from vgssl.cli import build_parser, main
from vgssl.errors import BadOptionError
from vgssl.train.command import load_train_config
from vgssl.train.config import ConfigError, load_config

VALID = """\
run_dir: runs/a
max_steps: 10
model:
  dim: 32
  layers: 2
data:
  train:
    - manifest: data/en.tsv
      language: en
optim:
  lr: 0.001
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "en.tsv").write_text("audio\nx.wav\t16000\n")
    return tmp_path


def write(config_dir: Path, text: str) -> Path:
    path = config_dir / "train.yaml"
    path.write_text(text)
    return path


def test_relative_paths_resolve_against_the_yaml_directory(config_dir: Path, monkeypatch) -> None:
    monkeypatch.chdir("/")
    config = load_config(write(config_dir, VALID))
    assert config.run_dir == config_dir / "runs" / "a"
    assert config.data.train[0].manifest == config_dir / "data" / "en.tsv"
    assert config.model.dim == 32 and config.optim.lr == 0.001
    assert config.data.mixture == "matched-total"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            VALID.replace("  lr: 0.001", "  lr: 0.001\n  lr_max: 3"),
            ":12: optim.lr_max: Extra inputs are not permitted",
        ),
        (VALID.replace("  dim: 32", "  dim: wide"), ":4: model.dim: Input should be a valid integer"),
        (VALID.replace("data/en.tsv", "data/missing.tsv"), ":8: data.train[0].manifest: file not found: "),
        (VALID.replace("max_steps: 10\n", ""), ":1: max_steps: Field required"),
        (
            VALID.replace("optim:", "precision: fp16\noptim:"),
            ":10: precision: Input should be 'auto', 'fp32'",
        ),
    ],
)
def test_errors_name_file_line_and_key(config_dir: Path, text: str, expected: str) -> None:
    path = write(config_dir, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}{expected}" in str(caught.value)


def test_every_problem_is_reported_at_once(config_dir: Path) -> None:
    path = write(
        config_dir, VALID.replace("  dim: 32", "  dim: wide").replace("max_steps: 10", "max_steps: -1")
    )
    with pytest.raises(ConfigError, match="2 problem") as caught:
        load_config(path)
    assert "max_steps: Input should be greater than 0" in str(caught.value)


def test_duplicate_keys_and_bad_yaml_are_errors(config_dir: Path) -> None:
    with pytest.raises(ConfigError, match="duplicate key 'max_steps'"):
        load_config(write(config_dir, VALID + "max_steps: 20\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(config_dir, "run_dir: [unclosed\n"))


def test_overrides_are_validated_like_the_file(config_dir: Path) -> None:
    path = write(config_dir, VALID)
    config = load_config(path, overrides={"max_steps": 99, "run_dir": "/tmp/elsewhere", "optim.lr": 0.5})
    assert (config.max_steps, config.run_dir, config.optim.lr) == (99, Path("/tmp/elsewhere"), 0.5)
    with pytest.raises(ConfigError, match="max_steps: Input should be greater than 0"):
        load_config(path, overrides={"max_steps": 0})


def test_train_set_overrides_reach_the_config(config_dir: Path) -> None:
    path = write(config_dir, VALID)
    argv = ["train", str(path), "--set", "optim.lr=1e-3", "--set", "model.dim=48", "--set", "seed=7"]
    args = build_parser().parse_args([*argv, "--set", "logging.tensorboard=false", "--max-steps", "5"])
    config = load_train_config(args)
    assert (config.optim.lr, config.model.dim, config.seed, config.max_steps) == (1e-3, 48, 7, 5)
    assert config.logging.tensorboard is False
    assert config.run_dir == config_dir / "runs" / "a"  # untouched keys keep the file's values
    commands = next(action for action in build_parser()._actions if action.dest == "command").choices
    train_help = commands["train"].format_help()
    assert "--set KEY=VALUE" in train_help and "(VGS+)" in train_help
    both = build_parser().parse_args(["train", str(path), "--set", "max_steps=3", "--max-steps", "4"])
    with pytest.raises(BadOptionError, match=re.escape("--set max_steps=... and --max-steps both set")):
        load_train_config(both)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("optim.lrr=1e-3", ": optim.lrr: Extra inputs are not permitted"),
        ("model.dim=wide", ":4: model.dim: Input should be a valid integer"),
        ("max_steps.every=3", "override max_steps.every: max_steps is not a section of keys"),
    ],
)
def test_train_set_with_a_bad_key_is_the_config_error_naming_it(
    config_dir: Path, override: str, expected: str, capsys: pytest.CaptureFixture
) -> None:
    path = write(config_dir, VALID)
    args = build_parser().parse_args(["train", str(path), "--set", override])
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_train_config(args)
    assert main(["train", str(path), "--set", override]) == 2  # a one-line error, before any training
    assert expected in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", str(path), "--set", "optim.lr"])
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_clips_too_short_to_mask_are_refused(config_dir: Path) -> None:
    text = VALID.replace("data:\n", "data:\n  min_seconds: 0.01\n")
    with pytest.raises(ConfigError, match=r"too short to mask model\.min_masks=2 frames"):
        load_config(write(config_dir, text))
