"""What a rerun reproduces: the demo's SSL-A (en) trained twice with one config, seed and thread count, and
once with another thread count, in fp32 and bf16; final weights and phone ABX compared.

    .venv/bin/python benchmarks/reproducibility.py --corpus demo-out/corpus --out repro/ [--steps 100]

Each run trains in its own `vgssl train` process (`OMP_NUM_THREADS` set per run). Last line:
RESULT fp32_rerun_max_abs=… bf16_rerun_max_abs=… fp32_threads_max_abs=… bf16_threads_max_abs=…
fp32_threads_abx_delta=… (points; 0 = bit-identical)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from recipe_probe import Probe, add_probe_arguments, chosen, phone_abx_by_layer


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    return {name: value.float() for name, value in checkpoint["model"].items()}


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[name] - b[name]).abs().max()) for name in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_probe_arguments(parser)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    threads = max(1, os.cpu_count() or 1)
    other = max(1, threads // 2) if threads > 1 else 2
    for precision in ("fp32", "bf16"):
        for name, count in (("a", threads), ("b", threads), ("threads", other)):
            key = f"{precision}-{name}"
            probe = Probe(
                study_config=args.study, corpus=args.corpus, out=args.out / key,
                overrides={"max_steps": args.steps, "precision": precision},
            )  # fmt: skip
            os.environ["OMP_NUM_THREADS"] = str(count)
            seconds = probe.train()
            print(f"{key}: {count} thread(s), trained in {seconds:.1f} s", flush=True)
    result: dict[str, float] = {}
    for precision in ("fp32", "bf16"):
        first = final_weights(args.out / f"{precision}-a" / "run")
        result[f"{precision}_rerun_max_abs"] = max_difference(
            first, final_weights(args.out / f"{precision}-b" / "run")
        )
        result[f"{precision}_threads_max_abs"] = max_difference(
            first, final_weights(args.out / f"{precision}-threads" / "run")
        )
    errors = {
        key: chosen(
            phone_abx_by_layer(str(args.out / key / "run"), args.corpus, "en", args.out / key / "abx")
        )[1]
        for key in ("fp32-a", "fp32-b", "fp32-threads")
    }
    result["fp32_rerun_abx_delta"] = round(errors["fp32-b"] - errors["fp32-a"], 4)
    result["fp32_threads_abx_delta"] = round(errors["fp32-threads"] - errors["fp32-a"], 4)
    (args.out / "reproducibility.json").write_text(json.dumps({"result": result, "abx": errors}, indent=2))
    print("RESULT " + " ".join(f"{key}={value:.3g}" for key, value in result.items()))


if __name__ == "__main__":
    main()
