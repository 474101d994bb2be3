"""Learning per minute: the demo's SSL-A (en) and VGS+ (en), checkpoints evaluated at wall-clock points.

Each model is trained once, as `vgssl demo` trains it, but for `--budget-factor` (default 4) times the demo's
steps, with a checkpoint every `--every` steps (all kept). Every checkpoint is measured like the study
measures a model — across-speaker phone ABX (triphone items, within context), layer chosen on the VALID
items, test error at that layer — and, for VGS+, test speech→image R@10 against chance. Normalised MFCC-39
and the random-init model are measured the same way. A checkpoint's minutes are its file's time minus the
run's start; note that the checkpoints of one long run follow its own (longer) learning-rate schedule, so
an intermediate one is not the model a shorter run would end with.

    .venv/bin/python benchmarks/learning_curve.py --corpus demo-out/corpus --out curve/ [--budget-factor 4]

Writes OUT/learning_curve.{json,csv,md} and OUT/learning_curve.png. Last line:
RESULT ssla_abx_en=<at the demo's steps> mfcc_abx_en=… vgs_r10_en=<at the demo's steps> chance_r10=…
minutes_to_mfcc=<first SSL-A checkpoint at or below MFCC, or none>
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from recipe_probe import Probe, add_probe_arguments, chosen, phone_abx_by_layer, retrieval_r10, write_tables
from recipe_sweep import measure_baselines, random_init_checkpoint


def demo_steps(study: Path) -> int:
    return int(yaml.safe_load(study.read_text(encoding="utf-8"))["train"]["max_steps"])


def curve(probe: Probe, corpus: Path, *, every: int) -> list[dict]:
    run = probe.out / "run"
    cache = probe.out / "curve.json"
    points = json.loads(cache.read_text()) if cache.is_file() else []
    done = {point["step"] for point in points}
    if not (run / "checkpoints" / "last.pt").is_file() or probe.train_config()["max_steps"] > _last_step(run):
        probe.train()
    start = (run / "config.yaml").stat().st_mtime
    for checkpoint in sorted((run / "checkpoints").glob("step_*.pt")):
        step = int(checkpoint.stem.split("_")[1])
        if step in done or step % every:
            continue
        errors = phone_abx_by_layer(str(checkpoint), corpus, probe.language, probe.out / "eval")
        layer, test, best = chosen(errors)
        point = {
            "step": step,
            "minutes": round((checkpoint.stat().st_mtime - start) / 60, 2),
            "abx": test,
            "layer": layer,
            "abx_best_test": best,
        }
        if probe.objective == "vgs+":
            point["r10"], point["chance_r10"] = retrieval_r10(
                run, corpus, probe.language, probe.out / "eval", checkpoint=checkpoint
            )
        points.append(point)
        points.sort(key=lambda p: p["step"])
        cache.write_text(json.dumps(points, indent=1))
        print(f"{probe.objective} step {step}: {point}", flush=True)
    return points


def _last_step(run: Path) -> int:
    steps = [int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("step_*.pt")]
    return max(steps, default=0)


def plot(curves: dict[str, list[dict]], baselines: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (abx, r10) = plt.subplots(1, 2, figsize=(10, 4))
    for name, points in curves.items():
        abx.plot([p["minutes"] for p in points], [p["abx"] for p in points], marker="o", label=name)
    for name, result in baselines.items():
        abx.axhline(result["abx"], linestyle="--", color="grey" if name == "mfcc" else "black", label=name)
    abx.set(xlabel="training minutes", ylabel="across-speaker phone ABX (%)", title="phone ABX (en test)")
    abx.legend()
    vgs = curves.get("vgs+", [])
    if vgs:
        r10.plot([p["minutes"] for p in vgs], [p["r10"] for p in vgs], marker="o", label="vgs+ R@10")
        r10.axhline(vgs[0]["chance_r10"], linestyle="--", color="grey", label="chance")
        r10.legend()
    r10.set(xlabel="training minutes", ylabel="speech→image R@10 (%)", title="retrieval (en test)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_probe_arguments(parser)
    parser.add_argument("--budget-factor", type=float, default=4.0)
    parser.add_argument("--points", type=int, default=8, help="checkpoints evaluated per run")
    args = parser.parse_args()

    steps = demo_steps(args.study)
    total = round(steps * args.budget_factor)
    every = max(1, total // args.points)
    # Keep every step file: validations also write one (best.pt), and a smaller keep_last would delete the
    # early checkpoints before they are measured.
    overrides = {"max_steps": total, "checkpoint.every": every, "checkpoint.keep_last": total}
    curves = {}
    for objective in ("ssl-a", "vgs+"):
        probe = Probe(args.study, args.corpus.resolve(), (args.out / objective).resolve(), objective,
                      args.language, 0, overrides)  # fmt: skip
        curves[objective] = curve(probe, args.corpus, every=every)
    checkpoint = random_init_checkpoint(probe, args.out / "baselines" / "random-init.pt")
    baselines = measure_baselines(args.corpus, args.language, args.out, checkpoint)

    report = {"demo_steps": steps, "total_steps": total, "curves": curves, "baselines": baselines}
    (args.out / "learning_curve.json").write_text(json.dumps(report, indent=1))
    columns = ["objective", "step", "minutes", "abx", "layer", "abx_best_test", "r10", "chance_r10"]
    rows = [{"objective": name, **point} for name, points in curves.items() for point in points]
    rows += [
        {"objective": name, "abx": result["abx"], "layer": result["layer"]}
        for name, result in baselines.items()
    ]
    lines = write_tables(rows, columns, args.out / "learning_curve")
    plot(curves, baselines, args.out / "learning_curve.png")
    print("\n".join(lines))

    def at_demo(points: list[dict]) -> dict:
        return min(points, key=lambda p: abs(p["step"] - steps))

    mfcc = baselines["mfcc"]["abx"]
    reached = [p for p in curves["ssl-a"] if p["abx"] <= mfcc]
    minutes = f"{reached[0]['minutes']:.1f}" if reached else "none"
    vgs, lang = at_demo(curves["vgs+"]), args.language
    ssla, random_init = at_demo(curves["ssl-a"])["abx"], baselines["random-init"]["abx"]
    print(
        f"RESULT ssla_abx_{lang}={ssla:.2f} mfcc_abx_{lang}={mfcc:.2f} random_abx_{lang}={random_init:.2f} "
        f"vgs_r10_{lang}={vgs['r10']:.1f} chance_r10={vgs['chance_r10']:.1f} minutes_to_mfcc={minutes}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
