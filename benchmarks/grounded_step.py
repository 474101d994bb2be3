"""A grounded (VGS+) training step against an audio-only step of the same model: time and peak memory.

The model is the default VGS+ model (`ModelConfig()`: fbank front-end, 4 pre-LN layers × 256, 2 × 160
codebook; `GroundingConfig()`: tap layer 3, one-layer CLS pooler, CNN on 128 × 128 images, joint space 256).
Every step goes through the trainer's `grounded_gradients` and an AdamW update:

* audio  — an audio-only step: SSL loss on an audio batch (`--batch` × `--seconds` of speech-like audio);
* joint  — the same audio batch plus a caption batch (`--pairs` captions × `--caption-seconds`, each with
  its image): SSL on the audio batch, SSL on the masked captions, speech–image loss on the unmasked captions;
* captions — a caption-only step (what `interleave` runs on its caption steps), the grounding branch on an
  unmasked pass of its own (`grounding.audio_pass: unmasked`);
* captions-masked — the same step with the branch on the caption SSL loss's masked pass (`audio_pass:
  masked`, FaST-VGS+: one forward for both losses);
* control — the caption step of the caption-speech control (SSL-A): the captions' SSL loss alone.

Each variant runs in its own subprocess, so peaks are measured separately; the variants take turns for
`--rounds` rounds, so that a shared machine's changing load hits them alike, and each reports the median of
all its timed steps. Memory is the peak resident set
size of that process (`ru_maxrss`, whole process: Python, torch and the model included), and, on CUDA,
`torch.cuda.max_memory_allocated`; the step's own share, peak RSS minus the RSS once model, optimiser and
batches exist, is printed too.

    .venv/bin/python benchmarks/grounded_step.py [--batch 8] [--seconds 4] [--pairs 8] [--caption-seconds 3]
                                                 [--steps 3] [--rounds 2] [--device cpu|cuda]
Last line: RESULT time_ratio=<joint / audio> memory_ratio=<joint / audio peak RSS (GPU: peak allocated)>
captions_time_ratio=<captions / audio> step_memory_ratio=<joint / audio RSS above the set-up baseline>
masked_over_unmasked=<captions-masked / captions> unmasked_over_control=<captions / control>
masked_over_control=<captions-masked / control>
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

SAMPLE_RATE = 16_000
VARIANTS = ("audio", "joint", "captions", "captions-masked", "control")


def speech_like(rows: int, seconds: float, rng: np.random.Generator) -> torch.Tensor:
    """Harmonic tones in 50-150 ms segments plus a little noise: enough structure for the quantizer."""
    waves = []
    for _ in range(rows):
        segments, total = [], 0
        while total < seconds * SAMPLE_RATE:
            length = int(rng.integers(800, 2400))
            t = np.arange(length) / SAMPLE_RATE
            f0, formant = rng.uniform(100, 250), rng.uniform(300, 2500)
            tone = np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(2 * np.pi * formant * t)
            segments.append(0.2 * tone * np.hanning(length) + 0.01 * rng.standard_normal(length))
            total += length
        waves.append(np.concatenate(segments)[: int(seconds * SAMPLE_RATE)])
    return torch.tensor(np.stack(waves), dtype=torch.float32)


def current_rss_gib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**30


def measure(variant: str, args: argparse.Namespace) -> dict[str, float]:
    from vgssl.model.config import ModelConfig
    from vgssl.model.vgs import GroundingConfig, VgsModel
    from vgssl.train.captions import CaptionBatch
    from vgssl.train.config import ObjectiveConfig
    from vgssl.train.data import Batch
    from vgssl.train.distributed import DistributedContext
    from vgssl.train.grounded_step import grounded_gradients
    from vgssl.train.objective import LossWeighting

    device = torch.device(args.device)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    grounding = GroundingConfig(audio_pass="masked" if variant == "captions-masked" else "unmasked")
    model = VgsModel(ModelConfig(), grounding).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    weighting = LossWeighting(ObjectiveConfig())
    context = DistributedContext(rank=0, local_rank=0, world_size=1, device=device)

    def batch(wav: torch.Tensor) -> Batch:
        padding = torch.zeros_like(wav, dtype=torch.bool)
        return Batch(wav=wav, padding_mask=padding, utt_ids=[""] * len(wav), problems=[])

    audio = [batch(speech_like(args.batch, args.seconds, rng))] if variant in ("audio", "joint") else []
    captions = []
    if variant != "audio":
        size = grounding.image_size
        images = torch.randn(args.pairs, 3, size, size, generator=torch.Generator().manual_seed(0))
        if variant == "control":  # captions heard without their images: no grounding phase
            images = torch.empty(0)
        captions = [
            CaptionBatch(
                audio=batch(speech_like(args.pairs, args.caption_seconds, rng)),
                images=images,
                image_groups=torch.arange(args.pairs),
            )
        ]
    baseline_gib = current_rss_gib()

    def step(number: int) -> float:
        totals = grounded_gradients(
            model, weighting, audio_batches=audio, caption_batches=captions, seed=0, step=number,
            context=context, autocast_dtype=None,
        )  # fmt: skip
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return weighting.objective_value(totals.losses)

    for number in range(args.warmup):
        step(number)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for number in range(args.warmup, args.warmup + args.steps):
        started = time.perf_counter()
        loss = step(number)
        times.append(time.perf_counter() - started)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result = {
        "step_seconds": times,
        "peak_rss_gib": peak_gib,
        "step_rss_gib": peak_gib - baseline_gib,
        "loss": loss,
    }
    if device.type == "cuda":
        result["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=8, help="audio-only utterances per step")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each audio-only utterance")
    parser.add_argument("--pairs", type=int, default=8, help="caption–image pairs per step")
    parser.add_argument("--caption-seconds", type=float, default=3.0, help="length of each caption")
    parser.add_argument(
        "--steps", type=int, default=3, help="timed steps per variant (the median is reported)"
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="turns each variant takes, alternating")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure(args.only, args)))
        return

    runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            command = [sys.executable, __file__, "--only", variant, "--device", args.device]
            command += [
                "--batch",
                str(args.batch),
                "--seconds",
                str(args.seconds),
                "--pairs",
                str(args.pairs),
            ]
            command += ["--caption-seconds", str(args.caption_seconds)]
            command += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            runs[variant].append(json.loads(output.strip().splitlines()[-1]))
    results = {}
    for variant, measured in runs.items():
        results[variant] = {
            key: float(np.median([run[key] for run in measured]))
            for key in measured[0]
            if key != "step_seconds"
        }
        results[variant]["seconds_per_step"] = float(
            np.median([t for run in measured for t in run["step_seconds"]])
        )

    print(
        f"device {args.device}, torch threads {torch.get_num_threads()}, median of "
        f"{args.rounds} × {args.steps} steps; audio batch {args.batch} × {args.seconds:g} s, "
        f"caption batch {args.pairs} × {args.caption_seconds:g} s + images"
    )
    gpu = "peak_gpu_gib" in results["audio"]
    header = f"{'step':<16} {'s/step':>8} {'peak RSS GiB':>13} {'step RSS GiB':>13}"
    print(header + (f" {'peak GPU GiB':>13}" if gpu else "") + f" {'loss':>8}")
    for variant, r in results.items():
        line = f"{variant:<16} {r['seconds_per_step']:>8.3f} {r['peak_rss_gib']:>13.2f}"
        line += f" {r['step_rss_gib']:>13.2f}" + (f" {r['peak_gpu_gib']:>13.2f}" if gpu else "")
        print(line + f" {r['loss']:>8.3f}")
    audio, joint = results["audio"], results["joint"]

    def per_step(variant: str) -> float:
        return results[variant]["seconds_per_step"]

    memory_key = "peak_gpu_gib" if gpu else "peak_rss_gib"
    print(
        f"RESULT time_ratio={joint['seconds_per_step'] / audio['seconds_per_step']:.2f} "
        f"memory_ratio={joint[memory_key] / audio[memory_key]:.2f} "
        f"captions_time_ratio={results['captions']['seconds_per_step'] / audio['seconds_per_step']:.2f} "
        f"step_memory_ratio={joint['step_rss_gib'] / max(audio['step_rss_gib'], 1e-9):.2f} "
        f"masked_over_unmasked={per_step('captions-masked') / per_step('captions'):.2f} "
        f"unmasked_over_control={per_step('captions') / per_step('control'):.2f} "
        f"masked_over_control={per_step('captions-masked') / per_step('control'):.2f}"
    )


if __name__ == "__main__":
    main()
