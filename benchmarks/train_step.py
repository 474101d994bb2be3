"""One training step of our wav2vec 2.0 model against transformers' `Wav2Vec2ForPreTraining`, same config.

Both models: conv front-end (wav2vec 2.0's 7 × 512 CNN, group norm), 4 pre-LN layers × 256, 4 heads, FFN 1024,
a 2 × 320 Gumbel codebook, 100 negatives, span masking 0.65 / 10, dropout 0.1, no layer drop; the same batch
(8 × 4 s of speech-like audio at 16 kHz by default); a step is forward, backward and an AdamW update. Ours is
timed through the trainer's own `accumulate_gradients`; the reference includes its masking and negative
sampling (`_compute_mask_indices`, `_sample_negative_indices`), which it needs every step. Each model runs in
its own subprocess (one after the other, importing the same libraries) so peak RSS is measured separately.
Also times our fbank front-end at the same size.

    .venv/bin/python benchmarks/train_step.py [--batch 8] [--seconds 4] [--steps 3] [--warmup 1]
Last line: RESULT speedup=<reference / ours> time_ratio=<ours / reference> memory_ratio=<ours / reference>
fbank_vs_conv=<our fbank step time / our conv step time>
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

SAMPLE_RATE = 16_000
SHARED = {"dim": 256, "layers": 4, "heads": 4, "ffn_dim": 1024, "entries": 320, "negatives": 100}


def speech_like_batch(batch: int, seconds: float) -> torch.Tensor:
    """Harmonic tones in 50-150 ms segments plus a little noise: enough structure for the quantizer."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(batch):
        segments, total = [], 0
        while total < seconds * SAMPLE_RATE:
            length = int(rng.integers(800, 2400))
            t = np.arange(length) / SAMPLE_RATE
            f0, formant = rng.uniform(100, 250), rng.uniform(300, 2500)
            tone = np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(2 * np.pi * formant * t)
            segments.append(0.2 * tone * np.hanning(length) + 0.01 * rng.standard_normal(length))
            total += length
        rows.append(np.concatenate(segments)[: int(seconds * SAMPLE_RATE)])
    return torch.tensor(np.stack(rows), dtype=torch.float32)


def ours_step(frontend: str, wav: torch.Tensor):
    from vgssl.model.config import ModelConfig

    config = ModelConfig(
        frontend=frontend,
        dim=SHARED["dim"],
        layers=SHARED["layers"],
        heads=SHARED["heads"],
        ffn_dim=SHARED["ffn_dim"],
        norm_first=True,
        codebook_entries=SHARED["entries"],
        num_negatives=SHARED["negatives"],
        feature_grad_mult=1.0,
    )
    return training_step(config, wav)


def training_step(config, wav: torch.Tensor, autocast_dtype: torch.dtype | None = None):
    """A function that runs one of our training steps (the trainer's `accumulate_gradients`, then AdamW) of
    a fresh model with `config` on the batch `wav`, and returns the loss per masked frame."""
    from vgssl.model.wav2vec2 import Wav2Vec2
    from vgssl.train.data import Batch
    from vgssl.train.distributed import DistributedContext
    from vgssl.train.gradients import accumulate_gradients

    model = Wav2Vec2(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    context = DistributedContext(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    batch = Batch(
        wav=wav, padding_mask=torch.zeros_like(wav, dtype=torch.bool), utt_ids=[""] * len(wav), problems=[]
    )

    def step(number: int) -> float:
        totals = accumulate_gradients(
            model, [batch], seed=0, step=number, context=context, autocast_dtype=autocast_dtype
        )
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return (totals["contrastive"] + totals["diversity"]) / totals["num_masked"]

    return step


def reference_step(wav: torch.Tensor):
    from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

    config = Wav2Vec2Config(
        hidden_size=SHARED["dim"],
        num_hidden_layers=SHARED["layers"],
        num_attention_heads=SHARED["heads"],
        intermediate_size=SHARED["ffn_dim"],
        do_stable_layer_norm=True,
        feat_extract_norm="group",
        conv_bias=False,
        num_codevector_groups=2,
        num_codevectors_per_group=SHARED["entries"],
        codevector_dim=256,
        proj_codevector_dim=256,
        num_negatives=SHARED["negatives"],
        mask_time_prob=0.65,
        mask_time_length=10,
        mask_time_min_masks=2,
        hidden_dropout=0.1,
        attention_dropout=0.1,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        layerdrop=0.0,
        diversity_loss_weight=0.1,
        contrastive_logits_temperature=0.1,
    )
    model = Wav2Vec2ForPreTraining(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    frames = int(model._get_feat_extract_output_lengths(wav.shape[1]))

    def step(number: int) -> float:
        mask = _compute_mask_indices((len(wav), frames), mask_prob=0.65, mask_length=10, min_masks=2)
        negatives = _sample_negative_indices((len(wav), frames), SHARED["negatives"], mask_time_indices=mask)
        output = model(
            wav,
            mask_time_indices=torch.from_numpy(mask),
            sampled_negative_indices=torch.from_numpy(negatives),
        )
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        # Its loss is a sum over masked frames: per frame, as ours, for a readable print.
        return float(output.loss) / int(mask.sum())

    return step


def measure(which: str, args: argparse.Namespace) -> dict[str, float]:
    import transformers  # noqa: F401 - every child imports the same libraries, so baselines match

    import vgssl.train.loop  # noqa: F401

    torch.manual_seed(0)
    wav = speech_like_batch(args.batch, args.seconds)
    step = reference_step(wav) if which == "reference" else ours_step(which, wav)
    for number in range(args.warmup):
        step(number)
    times, losses = [], []
    for number in range(args.warmup, args.warmup + args.steps):
        started = time.perf_counter()
        losses.append(step(number))
        times.append(time.perf_counter() - started)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds_per_step": float(np.median(times)), "peak_rss_gib": peak_kib / 2**20, "loss": losses[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--only", choices=["conv", "fbank", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(measure(args.only, args)))
        return

    results = {}
    for which in ("conv", "reference", "fbank"):
        command = [sys.executable, __file__, "--only", which]
        command += ["--batch", str(args.batch), "--seconds", str(args.seconds)]
        command += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[which] = json.loads(output.strip().splitlines()[-1])

    threads = torch.get_num_threads()
    print(f"batch {args.batch} × {args.seconds:g} s, torch threads {threads}, median of {args.steps} steps")
    print(f"{'model':<34} {'s/step':>8} {'peak RSS GiB':>13} {'loss/frame':>11}")
    names = {
        "conv": "vgssl Wav2Vec2 (conv)",
        "reference": "transformers Wav2Vec2ForPreTraining",
        "fbank": "vgssl Wav2Vec2 (fbank)",
    }
    for which, name in names.items():
        r = results[which]
        print(f"{name:<34} {r['seconds_per_step']:>8.3f} {r['peak_rss_gib']:>13.2f} {r['loss']:>11.3f}")
    ours, reference = results["conv"], results["reference"]
    speedup = reference["seconds_per_step"] / ours["seconds_per_step"]
    memory_ratio = ours["peak_rss_gib"] / reference["peak_rss_gib"]
    fbank_vs_conv = results["fbank"]["seconds_per_step"] / ours["seconds_per_step"]
    print(
        f"RESULT speedup={speedup:.2f} time_ratio={1 / speedup:.2f} memory_ratio={memory_ratio:.2f} "
        f"fbank_vs_conv={fbank_vs_conv:.2f}"
    )


if __name__ == "__main__":
    main()
