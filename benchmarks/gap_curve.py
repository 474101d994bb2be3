"""Where the multilingual gap and the grounding gain head as compute grows: the demo's four runs for one
language, trained `--budget-factor` (default 4) times the demo's steps, measured at every `--points`-th.

The four runs are the study's: SSL-A and VGS+, each trained on `--language` alone and on it plus `--other`
(the study's matched-total budget: the bilingual run hears half of each), built exactly as `vgssl study`
builds them from `--study` (the demo preset by default). Every checkpoint is measured as the study measures
a model: across-speaker phone ABX on `--language` (triphone items, within context), layer chosen on the
VALID items, test error at that layer; VGS+ checkpoints also by test speech→image R@10. From those come,
per checkpoint:

    gap_ssla = (E_ssla,bi − E_ssla,mono) / E_ssla,mono      gap_vgs = the same for VGS+
    gain_mono = (E_ssla,mono − E_vgs,mono) / E_ssla,mono    gain_bi = the same for the bilingual runs

An intermediate checkpoint of a long run follows that run's own (longer) learning-rate schedule: it is not
the model a shorter run would end with. One seed: read the curves' direction, not single points.

    .venv/bin/python benchmarks/gap_curve.py --corpus demo-out/corpus --out gap-curve/ [--seed 0]

Runs train two at a time, one thread each; finished checkpoints are not re-measured on a rerun. Writes
OUT/gap_curve.{json,csv,md,png}. Last line:
RESULT steps=<last> gap_ssla=… gap_vgs=… gain_mono=… gain_bi=… (in %, at the last checkpoint)
demo_gap_ssla=… demo_gain_mono=… demo_gain_bi=… (at the demo's steps)
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

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from recipe_probe import Probe, add_probe_arguments, chosen, phone_abx_by_layer, retrieval_r10, write_tables

RUNS = (("ssl-a", "mono"), ("ssl-a", "bi"), ("vgs+", "mono"), ("vgs+", "bi"))


def measure_run(probe: Probe, corpus: Path, every: int) -> list[dict[str, Any]]:
    """Train (or finish) one run, then measure each kept checkpoint at a multiple of `every`."""
    import torch

    torch.set_num_threads(1)
    run = probe.out / "run"
    cache = probe.out / "curve.json"
    points = json.loads(cache.read_text()) if cache.is_file() else []
    if not (run / "checkpoints" / f"step_{probe.train_config()['max_steps']}.pt").is_file():
        probe.train()
    done = {point["step"] for point in points}
    for checkpoint in sorted((run / "checkpoints").glob("step_*.pt")):
        step = int(checkpoint.stem.split("_")[1])
        if step in done or step % every:
            continue
        errors = phone_abx_by_layer(str(checkpoint), corpus, probe.language, probe.out / "eval")
        layer, test, _ = chosen(errors)
        point: dict[str, Any] = {"step": step, "abx": test, "layer": layer}
        if probe.objective == "vgs+":
            point["r10"], point["chance_r10"] = retrieval_r10(
                run, corpus, probe.language, probe.out / "eval", checkpoint=checkpoint
            )
        points.append(point)
        points.sort(key=lambda p: p["step"])
        cache.write_text(json.dumps(points, indent=1))
    return points


def ratios(curves: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """Per step present in all four curves: the two gaps and the two gains, in %."""
    by_step = {name: {p["step"]: p for p in points} for name, points in curves.items()}
    steps = sorted(set.intersection(*(set(points) for points in by_step.values())))
    rows = []
    for step in steps:
        e = {name: by_step[name][step]["abx"] for name in by_step}
        rows.append({
            "step": step,
            "gap_ssla": round(100 * (e["ssl-a/bi"] - e["ssl-a/mono"]) / e["ssl-a/mono"], 2),
            "gap_vgs": round(100 * (e["vgs+/bi"] - e["vgs+/mono"]) / e["vgs+/mono"], 2),
            "gain_mono": round(100 * (e["ssl-a/mono"] - e["vgs+/mono"]) / e["ssl-a/mono"], 2),
            "gain_bi": round(100 * (e["ssl-a/bi"] - e["vgs+/bi"]) / e["ssl-a/bi"], 2),
        })  # fmt: skip
    return rows


def plot(curves: dict[str, list[dict]], rows: list[dict], demo_steps: int, language: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (errors, relative) = plt.subplots(1, 2, figsize=(11, 4))
    for name, points in curves.items():
        errors.plot([p["step"] for p in points], [p["abx"] for p in points], marker="o", label=name)
    errors.set(xlabel="training steps", ylabel=f"across-speaker phone ABX, {language} test (%)")
    for key in ("gap_ssla", "gap_vgs", "gain_mono", "gain_bi"):
        relative.plot([r["step"] for r in rows], [r[key] for r in rows], marker="o", label=key)
    relative.axhline(0, color="black", linewidth=0.8)
    relative.set(xlabel="training steps", ylabel="relative difference (%)")
    for axis in (errors, relative):
        axis.axvline(demo_steps, linestyle=":", color="grey", label="demo's steps")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_probe_arguments(parser)
    parser.add_argument("--other", default="fr", help="the second language of the bilingual runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-factor", type=float, default=4.0)
    parser.add_argument("--points", type=int, default=8, help="checkpoints measured per run")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once, one thread each")
    args = parser.parse_args()

    demo_steps = int(yaml.safe_load(args.study.read_text(encoding="utf-8"))["train"]["max_steps"])
    total = round(demo_steps * args.budget_factor)
    every = max(1, total // args.points)
    # Every step file is kept: a smaller keep_last would delete early checkpoints before they are measured.
    overrides = {"max_steps": total, "checkpoint.every": every, "checkpoint.keep_last": total}
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by each training child
    probes = {}
    for objective, kind in RUNS:
        languages = (args.language,) if kind == "mono" else tuple(sorted((args.language, args.other)))
        out = (args.out / f"{objective}_{'+'.join(languages)}").resolve()
        probes[f"{objective}/{kind}"] = Probe(
            args.study, args.corpus.resolve(), out, objective, args.language, args.seed, overrides, languages
        )
    with ProcessPoolExecutor(args.parallel, mp_context=get_context("spawn")) as pool:
        futures = {
            name: pool.submit(measure_run, probe, args.corpus.resolve(), every)
            for name, probe in probes.items()
        }
        curves = {name: future.result() for name, future in futures.items()}
    rows = ratios(curves)
    table = [{"step": r["step"], **{f"abx {n}": next(p["abx"] for p in curves[n] if p["step"] == r["step"])
                                    for n in curves}, **r} for r in rows]  # fmt: skip
    columns = ["step", *(f"abx {name}" for name in curves), "gap_ssla", "gap_vgs", "gain_mono", "gain_bi"]
    args.out.mkdir(parents=True, exist_ok=True)
    lines = write_tables(table, columns, args.out / "gap_curve")
    report = {"demo_steps": demo_steps, "total_steps": total, "language": args.language, "other": args.other,
              "seed": args.seed, "curves": curves, "ratios": rows}  # fmt: skip
    (args.out / "gap_curve.json").write_text(json.dumps(report, indent=1))
    plot(curves, rows, demo_steps, args.language, args.out / "gap_curve.png")
    print("\n".join(lines))
    last = rows[-1]
    demo = min(rows, key=lambda r: abs(r["step"] - demo_steps))
    print(f"RESULT steps={last['step']} gap_ssla={last['gap_ssla']:.2f} gap_vgs={last['gap_vgs']:.2f} "
          f"gain_mono={last['gain_mono']:.2f} gain_bi={last['gain_bi']:.2f} "
          f"demo_gap_ssla={demo['gap_ssla']:.2f} demo_gain_mono={demo['gain_mono']:.2f} "
          f"demo_gain_bi={demo['gain_bi']:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
