"""The grounding gain of VGS+ recipe variants, monolingual and bilingual, against the study's SSL-A runs.

For each seed, the study preset's (`--study`, default the demo's) SSL-A runs — `--language` alone and with
`--other` (matched-total: half of each) — are trained once, and each VGS+ variant is trained on the same two
training sets. A variant is `NAME:key=value,...`: dotted overrides of the VGS+ run's training config
(`base:` is the preset as it is). Every run is measured on `--language` as the study measures it: across-
speaker phone ABX (triphone items, within context) at the layer chosen on the VALID items; VGS+ runs also by
test speech→image R@10. Per variant:

    gain_mono = (E_ssla,mono − E_vgs,mono) / E_ssla,mono     gain_bi = the same for the bilingual runs
    gap_vgs = (E_vgs,bi − E_vgs,mono) / E_vgs,mono           (gap_ssla is the same for every variant)

with E the mean over seeds (test error at the valid-chosen layer), and each seed's own gains. The same
gains on the VALID items (`valid_gain_*`) are what a variant is chosen by, never the test ones.

    .venv/bin/python benchmarks/gain_sweep.py --corpus demo-out/corpus --out gains/ \\
        --variant base: --variant vg0.1:objective.weights.vg=0.1 [--seeds 0 1]

Two runs train at a time, one thread each; finished runs are skipped on a rerun. Writes
OUT/gain_sweep.{json,csv,md}; the last line is RESULT best=<variant with the highest min(valid_gain_mono,
valid_gain_bi)> gain_mono=… gain_bi=… (test) gap_ssla=… gap_vgs=…
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from recipe_probe import (
    Probe,
    add_probe_arguments,
    chosen,
    last_metrics,
    parse_overrides,
    phone_abx_by_layer,
    retrieval_r10,
    write_tables,
)


def measure(probe: Probe, corpus: Path) -> dict[str, Any]:
    """Train (or reuse) one run and measure it on the probe's language; cached in results.json."""
    import torch

    torch.set_num_threads(1)
    done = probe.out / "results.json"
    if done.is_file():
        return json.loads(done.read_text())
    seconds = probe.train()
    run = probe.out / "run"
    errors = phone_abx_by_layer(str(run), corpus, probe.language, probe.out)
    layer, test, _ = chosen(errors)
    result: dict[str, Any] = {
        "abx": test,
        "abx_valid": errors["valid"][layer],
        "layer": layer,
        "errors": errors,
        "train_seconds": round(seconds, 1),
    }
    metrics = last_metrics(run)
    result["final"] = {k: metrics.get(k) for k in ("step", "contrastive", "vg_loss", "vg_collapsed_loss")}
    if probe.objective == "vgs+":
        result["r10"], result["chance_r10"] = retrieval_r10(run, corpus, probe.language, probe.out)
    done.write_text(json.dumps(result, indent=1))
    return result


def relative(reference: float, other: float) -> float:
    return 100.0 * (reference - other) / reference


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_probe_arguments(parser)
    parser.add_argument("--other", default="fr")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--variant", action="append", required=True)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()

    variants = {}
    for text in args.variant:
        name, sep, rest = text.partition(":")
        if not sep or not name:
            raise SystemExit(f"--variant {text!r}: expected NAME:key=value,...")
        variants[name] = parse_overrides([pair for pair in rest.split(",") if pair])
    sets = {"mono": (args.language,), "bi": tuple(sorted((args.language, args.other)))}
    corpus = args.corpus.resolve()

    def probe(objective: str, kind: str, seed: int, name: str, overrides: dict) -> Probe:
        out = (args.out / f"{name}_{kind}_seed{seed}").resolve()
        return Probe(args.study, corpus, out, objective, args.language, seed, overrides, sets[kind])

    jobs = {
        ("ssl-a", kind, seed): probe("ssl-a", kind, seed, "ssl-a", {}) for seed in args.seeds for kind in sets
    }
    for name, overrides in variants.items():
        for seed in args.seeds:
            for kind in sets:
                jobs[(name, kind, seed)] = probe("vgs+", kind, seed, name, overrides)
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by each training child
    with ProcessPoolExecutor(args.parallel, mp_context=get_context("spawn")) as pool:
        futures = {key: pool.submit(measure, job, corpus) for key, job in jobs.items()}
        results = {}
        for key, future in futures.items():
            result = results[key] = future.result()
            print(f"{key}: {result['abx']:.2f} (L{result['layer']}) r10 {result.get('r10', '-')} "
                  f"{result['train_seconds']} s", flush=True)  # fmt: skip

    def mean(name: str, kind: str, field: str = "abx") -> float:
        return float(np.mean([results[(name, kind, seed)][field] for seed in args.seeds]))

    rows = []
    ssla = {kind: mean("ssl-a", kind) for kind in sets}
    ssla_valid = {kind: mean("ssl-a", kind, "abx_valid") for kind in sets}
    gap_ssla = -relative(ssla["mono"], ssla["bi"])
    rows.append({"variant": "ssl-a", "abx_mono": round(ssla["mono"], 2), "abx_bi": round(ssla["bi"], 2),
                 "gap": round(gap_ssla, 2), "layers": " ".join(str(results[("ssl-a", k, s)]["layer"])
                                                               for s in args.seeds for k in sets),
                 "train_seconds": round(mean("ssl-a", "mono", "train_seconds"), 1)})  # fmt: skip
    for name in variants:
        vgs = {kind: mean(name, kind) for kind in sets}
        vgs_valid = {kind: mean(name, kind, "abx_valid") for kind in sets}
        per_seed = {
            kind: [
                relative(results[("ssl-a", kind, s)]["abx"], results[(name, kind, s)]["abx"])
                for s in args.seeds
            ]
            for kind in sets
        }
        rows.append({
            "variant": name, "abx_mono": round(vgs["mono"], 2), "abx_bi": round(vgs["bi"], 2),
            "gap": round(-relative(vgs["mono"], vgs["bi"]), 2),
            "gain_mono": round(relative(ssla["mono"], vgs["mono"]), 2),
            "gain_bi": round(relative(ssla["bi"], vgs["bi"]), 2),
            "valid_gain_mono": round(relative(ssla_valid["mono"], vgs_valid["mono"]), 2),
            "valid_gain_bi": round(relative(ssla_valid["bi"], vgs_valid["bi"]), 2),
            "gain_mono_per_seed": " ".join(f"{g:.1f}" for g in per_seed["mono"]),
            "gain_bi_per_seed": " ".join(f"{g:.1f}" for g in per_seed["bi"]),
            "r10_mono": round(mean(name, "mono", "r10"), 1), "r10_bi": round(mean(name, "bi", "r10"), 1),
            "layers": " ".join(str(results[(name, k, s)]["layer"]) for s in args.seeds for k in sets),
            "train_seconds": round(mean(name, "mono", "train_seconds"), 1),
            "overrides": json.dumps(variants[name]),
        })  # fmt: skip
    columns = ["variant", "abx_mono", "abx_bi", "gap", "valid_gain_mono", "valid_gain_bi", "gain_mono",
               "gain_bi", "gain_mono_per_seed",
               "gain_bi_per_seed", "r10_mono", "r10_bi", "layers", "train_seconds", "overrides"]  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    lines = write_tables(rows, columns, args.out / "gain_sweep")
    report = {"language": args.language, "other": args.other, "seeds": args.seeds, "rows": rows,
              "runs": {"/".join(map(str, key)): value for key, value in results.items()}}  # fmt: skip
    (args.out / "gain_sweep.json").write_text(json.dumps(report, indent=1))
    print("\n".join(lines))
    best = max(rows[1:], key=lambda row: min(row["valid_gain_mono"], row["valid_gain_bi"]))  # never on test
    print(f"RESULT best={best['variant']} gain_mono={best['gain_mono']:.2f} gain_bi={best['gain_bi']:.2f} "
          f"gap_ssla={gap_ssla:.2f} gap_vgs={best['gap']:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
