"""fp32 against bf16 autocast for the demo's model on CPU, with and without dropout: time per training step.

The model is the demo preset's (`train.model` of configs/demo.yaml); a step is the trainer's
`accumulate_gradients` on one audio batch (`--batch` × `--seconds` of speech-like audio; the preset's
`batch_seconds` is 40) and an AdamW update. The four variants live in one process and take turns step by
step, so a shared machine's changing load hits them alike; each reports the median of its timed steps.
Set the threads with OMP_NUM_THREADS (the demo trains two runs at once, one thread each).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/precision_step.py [--batch 10] [--seconds 4] [--steps 6]
Last line: RESULT bf16_over_fp32=<bf16 / fp32, preset dropout> bf16_over_fp32_dropout=<same, dropout 0.1>
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from train_step import speech_like_batch, training_step
from vgssl.model.config import ModelConfig

PRESET = Path(__file__).parent.parent / "src" / "vgssl" / "study" / "presets" / "demo.yaml"


def make_step(model_section: dict, wav: torch.Tensor, dtype: torch.dtype | None):
    torch.manual_seed(0)
    return training_step(ModelConfig(**model_section), wav, dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant (their median counts)")
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()

    section = yaml.safe_load(PRESET.read_text(encoding="utf-8"))["train"]["model"]
    with_dropout = {**section, "dropout": 0.1, "attention_dropout": 0.1}
    wav = speech_like_batch(args.batch, args.seconds)
    variants = {
        "fp32": make_step(section, wav, None),
        "bf16": make_step(section, wav, torch.bfloat16),
        "fp32, dropout 0.1": make_step(with_dropout, wav, None),
        "bf16, dropout 0.1": make_step(with_dropout, wav, torch.bfloat16),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for number in range(args.warmup + args.steps):
        for name, step in variants.items():
            started = time.perf_counter()
            step(number)
            if number >= args.warmup:
                times[name].append(time.perf_counter() - started)
    median = {name: float(np.median(values)) for name, values in times.items()}
    dropout = section.get("dropout", 0.1), section.get("attention_dropout", 0.1)
    print(
        f"demo model (preset dropout {dropout[0]}, attention dropout {dropout[1]}), batch {args.batch} × "
        f"{args.seconds:g} s, torch threads {torch.get_num_threads()}, median of {args.steps} steps"
    )
    for name, seconds in median.items():
        print(f"{name:<20} {seconds:.3f} s/step")
    print(
        f"RESULT bf16_over_fp32={median['bf16'] / median['fp32']:.2f} "
        f"bf16_over_fp32_dropout={median['bf16, dropout 0.1'] / median['fp32, dropout 0.1']:.2f}"
    )


if __name__ == "__main__":
    main()
