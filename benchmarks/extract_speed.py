"""Feature-extraction throughput of `vgssl extract`, in seconds of audio per wall-clock second.

Writes `--files` wav files of 2–6 s (noisy harmonic tones) and a manifest in a temporary directory, then
extracts, through the same code as `vgssl extract` (reading audio, batching by length, encoding, writing one
file per utterance and layer), with:
* the `mfcc` baseline (39-d, normalised),
* a randomly initialised vgssl model of the default size (fbank front-end, 4 layers × 256), all 5 layers.

    .venv/bin/python benchmarks/extract_speed.py [--files 60] [--device cpu] [--batch-seconds 60]
Last line: RESULT mfcc_audio_s_per_s=... model_audio_s_per_s=... audio_s=... device=...
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vgssl.audio.io import write_wav
from vgssl.data.manifest import ManifestEntry, write_manifest
from vgssl.evaluate.extract_command import read_source
from vgssl.evaluate.features import extract_features, load_feature_model, resolve_device
from vgssl.model.config import ModelConfig
from vgssl.model.pretrained import CHECKPOINT_FORMAT
from vgssl.model.wav2vec2 import Wav2Vec2


def make_audio(root: Path, files: int) -> tuple[Path, float]:
    rng = np.random.default_rng(0)
    entries = []
    for index in range(files):
        samples = int(rng.uniform(2.0, 6.0) * 16_000)
        time_axis = np.arange(samples) / 16_000
        pitch = rng.uniform(90, 250)
        wave = sum(np.sin(2 * np.pi * pitch * k * time_axis) / k for k in range(1, 6))
        wave = 0.1 * wave + 0.01 * rng.standard_normal(samples)
        write_wav(root / "audio" / f"u{index:03d}.wav", wave.astype(np.float32))
        entries.append(ManifestEntry(f"u{index:03d}.wav", samples))
    write_manifest(root / "test.tsv", root / "audio", entries)
    return root / "test.tsv", sum(e.num_samples for e in entries) / 16_000


def throughput(spec: str, manifest: Path, out: Path, *, device: torch.device, batch_seconds: float) -> float:
    model = load_feature_model(spec)
    layers = list(range(model.num_layers()))
    started = time.perf_counter()
    report = extract_features(
        model, read_source(manifest, audio_root=None), out, layers=layers, overwrite=True,
        batch_seconds=batch_seconds, device=device, progress=False,
    )  # fmt: skip
    return report.audio_seconds / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-seconds", type=float, default=60.0)
    args = parser.parse_args()
    device = resolve_device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest, audio_seconds = make_audio(root, args.files)
        config = ModelConfig()
        torch.manual_seed(0)
        checkpoint = root / "model.pt"
        state = Wav2Vec2(config).state_dict()
        torch.save(
            {"format": CHECKPOINT_FORMAT, "model_config": config.model_dump(), "model": state}, checkpoint
        )
        options = {"device": device, "batch_seconds": args.batch_seconds}
        mfcc_speed = throughput("mfcc", manifest, root / "mfcc", **options)
        model_speed = throughput(str(checkpoint), manifest, root / "model", **options)

    threads = torch.get_num_threads()
    print(f"{args.files} files, {audio_seconds:.0f} s of audio, device {device}, {threads} threads")
    print(f"mfcc (39-d): {mfcc_speed:.0f} s of audio per second")
    model_name = f"vgssl model {config.layers} x {config.dim}, {config.frontend} front-end"
    print(f"{model_name}, all {config.layers + 1} layers: {model_speed:.0f} s of audio per second")
    print(
        f"RESULT mfcc_audio_s_per_s={mfcc_speed:.1f} model_audio_s_per_s={model_speed:.1f} "
        f"audio_s={audio_seconds:.0f} device={device}"
    )


if __name__ == "__main__":
    main()
