"""Overhead of `vgssl abx` over calling fastabx directly, on the same features, in one run.

Makes a fake phone ABX set (files of phone segments with noisy phone-dependent features, several speakers,
a ZeroSpeech item file), then times, each in a fresh Python process so both pay the same imports:
* ours: `vgssl abx FEATURES ITEMFILE` end to end (checks, 4 conditions per layer, cells, JSON + CSV);
* direct: `fastabx.zerospeech_abx` once per layer and condition, as a user of fastabx would call it;
and checks their errors: equal within speaker; across speaker, equal up to fastabx's run-to-run choice of
X speakers (see vgssl.evaluate.abx: ours sorts the cells first, so it is reproducible). Each command runs
`--repeats` times; the fastest run counts.

    .venv/bin/python benchmarks/abx_speed.py [--files 100] [--layers 1] [--dim 64] [--device cpu]
Last line: RESULT overhead=<ours / direct - 1> ours_s=... direct_s=... items=... conditions=...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

CONDITIONS = [("within", "within"), ("within", "any"), ("across", "within"), ("across", "any")]

# The direct way: one fastabx.zerospeech_abx call per layer and condition, in a fresh process.
DIRECT = """
import json, sys
import fastabx
item, root, device = sys.argv[1], sys.argv[2], sys.argv[3]
layers, conditions = json.loads(sys.argv[4]), json.loads(sys.argv[5])
errors = []
for layer in layers:
    for speaker, context in conditions:
        errors.append(100 * fastabx.zerospeech_abx(
            item, f"{root}/{layer}", max_size_group=10, max_x_across=5, speaker=speaker, context=context,
            seed=0, device=device, progress=False))
print(json.dumps(errors))
"""


def make_dataset(
    root: Path, *, files: int, layers: int, dim: int, phones: int = 30, speakers: int = 10
) -> int:
    rng = np.random.default_rng(0)
    prototypes = rng.normal(0.0, 1.0, (phones, dim))
    speaker_shift = rng.normal(0.0, 0.7, (speakers, dim))
    rows = ["#file onset offset #phone prev-phone next-phone speaker"]
    for index in range(files):
        speaker = index % speakers
        key = f"s{speaker:02d}/utt{index:04d}"
        sequence = rng.integers(0, phones, 40)
        bounds = np.concatenate([[1], 1 + np.cumsum(rng.integers(3, 10, sequence.size))])
        frames = int(bounds[-1]) + 2
        for layer in range(layers):
            noise = 0.8 + 0.4 * layer
            features = rng.normal(0.0, noise, (frames, dim)) + speaker_shift[speaker]
            for phone, start, end in zip(sequence, bounds[:-1], bounds[1:], strict=True):
                features[start:end] += prototypes[phone]
            path = root / "features" / str(layer) / f"{key}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(torch.tensor(features, dtype=torch.float32), path)
        for j in range(1, sequence.size - 1):
            prev, centre, nxt = sequence[j - 1 : j + 2]
            onset, offset = bounds[j - 1] * 0.02, bounds[j + 2] * 0.02
            rows.append(f"{key} {onset:.2f} {offset:.2f} p{centre} p{prev} p{nxt} s{speaker:02d}")
    (root / "items").mkdir()
    (root / "items" / "xx_test_triphone.item").write_text("\n".join(rows) + "\n")
    return len(rows) - 1


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - started, output


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        items = make_dataset(root, files=args.files, layers=args.layers, dim=args.dim)
        item = root / "items" / "xx_test_triphone.item"
        layers = list(range(args.layers))
        ours_command = [
            sys.executable, "-m", "vgssl", "abx", str(root / "features"), str(item), "--out",
            str(root / "result.json"), "--quiet", "--overwrite", "--device", args.device,
        ]  # fmt: skip
        direct_command = [
            sys.executable, "-c", DIRECT, str(item), str(root / "features"), args.device, json.dumps(layers),
            json.dumps(CONDITIONS),
        ]  # fmt: skip
        ours_times, direct_times = [], []
        for _ in range(args.repeats):
            ours_times.append(timed(ours_command)[0])
            seconds, output = timed(direct_command)
            direct_times.append(seconds)
        direct_errors = json.loads(output)
        result = json.loads((root / "result.json").read_text())
        ours_errors = [score["error"] for score in result["scores"]]
    for score, ours_error, direct_error in zip(result["scores"], ours_errors, direct_errors, strict=True):
        tolerance = 1e-9 if score["speaker"] == "within" else 0.1 * direct_error
        if abs(ours_error - direct_error) > tolerance:
            raise SystemExit(f"vgssl abx and fastabx disagree: {ours_errors} vs {direct_errors}")

    ours, direct = min(ours_times), min(direct_times)
    conditions = len(layers) * len(CONDITIONS)
    print(f"{items} items, {args.files} files, {args.layers} layer(s) x 4 conditions, dim {args.dim}")
    print(f"vgssl abx end to end: {ours:.2f} s; fastabx.zerospeech_abx per condition: {direct:.2f} s")
    print(f"errors (%), ours:   {[round(e, 3) for e in ours_errors]}")
    print(f"errors (%), direct: {[round(e, 3) for e in direct_errors]}")
    print(
        f"RESULT overhead={ours / direct - 1:.3f} ours_s={ours:.2f} direct_s={direct:.2f} "
        f"items={items} conditions={conditions} device={args.device}"
    )


if __name__ == "__main__":
    main()
