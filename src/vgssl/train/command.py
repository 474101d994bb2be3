"""`vgssl train CONFIG.yaml`: audio-only self-supervised pretraining, also under `torchrun -m vgssl train`."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train an audio-only self-supervised model (wav2vec 2.0 objective) from a YAML config"
DESCRIPTION = (
    "Train, or resume, the run of CONFIG.yaml. Re-running the same command in the same run directory "
    "resumes exactly where the last checkpoint left off; a finished run says so and exits 0. For several "
    "processes or GPUs: torchrun --standalone --nproc_per_node N -m vgssl train CONFIG.yaml."
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


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


def run(args: argparse.Namespace) -> int:
    from vgssl.train.config import load_config
    from vgssl.train.loop import train

    overrides: dict[str, object] = {}
    if args.run_dir is not None:
        overrides["run_dir"] = str(args.run_dir.resolve())
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    config = load_config(args.config, overrides=overrides)
    train(config, stop_at=args.stop_at)
    return 0
