"""`vgssl train CONFIG.yaml`: audio-only (SSL-A) or visually grounded (VGS+) training, also under torchrun.

`--set KEY=VALUE` (repeatable) overrides any config key before validation: dotted keys reach into sections
(`--set optim.lr=1e-3`), and VALUE is read as YAML (`--set logging.tensorboard=false`, `--set
max_steps=200`). An override is validated exactly like the file, so a wrong key or value is the config's
`ConfigError` naming that key.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vgssl.train.config import TrainConfig

HELP = "train a self-supervised speech model from a YAML config: audio-only (SSL-A) or grounded (VGS+)"
DESCRIPTION = (
    "Train, or resume, the run of CONFIG.yaml: the wav2vec 2.0 objective on speech alone (SSL-A), or, when "
    "the config has grounding, captions and objective sections, together with a speech-image matching loss "
    "(VGS+); captions without grounding make the caption-speech control. Re-running the same command in the "
    "same run directory resumes exactly where the last checkpoint left off; a finished run says so and "
    "exits 0. Every --set must be repeated on resumption. For several "
    "processes or GPUs: torchrun --standalone --nproc_per_node N -m vgssl train CONFIG.yaml."
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _override(text: str) -> tuple[str, object]:
    """`KEY=VALUE` -> (dotted key, VALUE read as YAML; a value YAML cannot read stays a string)."""
    import yaml

    from vgssl.yaml_config import parse_yaml_value

    key, separator, value = text.partition("=")
    key = key.strip()
    if not separator or not key or any(not part for part in key.split(".")):
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE, KEY dotted for sections (optim.lr=1e-3), got {text!r}"
        )
    try:
        parsed = parse_yaml_value(value)
    except yaml.YAMLError:
        parsed = value
    return key, parsed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config", type=Path, metavar="CONFIG.yaml", help="training config (see configs/tiny-ssl.yaml)"
    )
    parser.add_argument("--run-dir", type=Path, help="run directory, overriding the config's run_dir")
    parser.add_argument(
        "--max-steps",
        type=_positive_int,
        help="total optimizer steps, overriding max_steps (and the LR schedule)",
    )
    parser.add_argument(
        "--stop-at",
        type=_positive_int,
        metavar="STEP",
        help="checkpoint and exit after this step without changing the schedule (for time-limited jobs); "
        "re-run the same command to continue",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        type=_override,
        action="append",
        metavar="KEY=VALUE",
        help="override a config key, dotted for sections (optim.lr=1e-3; VALUE is read as YAML); repeatable; "
        "the run directory refuses a resumption whose config differs, so repeat every --set",
    )


def load_train_config(args: argparse.Namespace) -> TrainConfig:
    """The validated config of CONFIG.yaml with the --set, --run-dir and --max-steps overrides applied."""
    from vgssl.errors import BadOptionError
    from vgssl.train.config import load_config

    overrides: dict[str, object] = {}
    for key, value in args.overrides or ():
        if key in overrides:
            raise BadOptionError(f"--set {key} is given twice")
        overrides[key] = value
    for key, option, value in (
        ("run_dir", "--run-dir", None if args.run_dir is None else str(args.run_dir.resolve())),
        ("max_steps", "--max-steps", args.max_steps),
    ):
        if value is None:
            continue
        if key in overrides:
            raise BadOptionError(f"--set {key}=... and {option} both set {key}: give one of them")
        overrides[key] = value
    return load_config(args.config, overrides=overrides)


def run(args: argparse.Namespace) -> int:
    config = load_train_config(args)

    from vgssl.train.loop import train

    train(config, stop_at=args.stop_at)
    return 0
