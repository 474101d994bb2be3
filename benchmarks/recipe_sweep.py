"""Sweep a study preset's recipe: train variants of one run, measure each against MFCC and random init.

Every variant is the run `--objective` on `--language` of the study config, as `vgssl study` would train
it, plus its own overrides. Each is measured by across-speaker phone ABX (triphone items, within context;
layer chosen on the valid items, test error reported at that layer) and, for VGS+, test speech→image R@10
against chance; the baselines (normalised MFCC, random init) are measured the same way once.

    .venv/bin/python benchmarks/recipe_sweep.py --corpus demo-out/corpus --out sweep/ \\
        --variant base: --variant lr1e-3:optim.lr=0.001,max_steps=400 [--objective vgs+] [--language en]

A variant is `NAME:key=value,key=value` (values are YAML; an empty list keeps the preset). Finished variants
are skipped on a rerun (their results.json is kept). Writes OUT/sweep.json, OUT/sweep.csv and OUT/sweep.md;
the last line is `RESULT best=<name> abx=<test error at valid layer> mfcc=<...> random=<...>`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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


def parse_variant(text: str) -> tuple[str, dict]:
    name, sep, rest = text.partition(":")
    if not sep or not name:
        raise SystemExit(f"--variant {text!r}: expected NAME:key=value,...")
    return name, parse_overrides([pair for pair in rest.split(",") if pair])


def measure_baselines(corpus: Path, language: str, out: Path, random_config: Path) -> dict[str, dict]:
    results = {}
    for name, spec in (("mfcc", "mfcc"), ("random-init", str(random_config))):
        cache = out / "baselines" / f"{name}_{language}.json"
        if cache.is_file():
            results[name] = json.loads(cache.read_text())
            continue
        errors = phone_abx_by_layer(spec, corpus, language, out / "baselines" / name)
        layer, test, best = chosen(errors)
        results[name] = {"layer": layer, "abx": test, "abx_best_test": best, "errors": errors}
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(results[name], indent=1))
    return results


def run_variant(probe: Probe, corpus: Path, language: str) -> dict:
    done = probe.out / "results.json"
    if done.is_file():
        return json.loads(done.read_text())
    seconds = probe.train()
    run = probe.out / "run"
    errors = phone_abx_by_layer(str(run), corpus, language, probe.out)
    layer, test, best = chosen(errors)
    metrics = last_metrics(run)
    result = {
        "overrides": probe.overrides,
        "train_seconds": round(seconds, 1),
        "layer": layer,
        "abx": test,
        "abx_best_test": best,
        "errors": errors,
        "final": {
            k: metrics.get(k)
            for k in (
                "step",
                "contrastive",
                "accuracy",
                "code_perplexity",
                "vg_audio_to_image",
                "vg_accuracy_audio_to_image",
            )
        },
    }
    if probe.objective == "vgs+":
        result["r10"], result["chance_r10"] = retrieval_r10(run, corpus, language, probe.out)
    done.write_text(json.dumps(result, indent=1))
    return result


def random_init_checkpoint(probe: Probe, path: Path) -> Path:
    from vgssl.study.evaluation import write_random_init

    if not path.is_file():
        write_random_init(probe.train_config()["model"], seed=probe.seed, path=path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_probe_arguments(parser)
    parser.add_argument("--objective", choices=("ssl-a", "vgs+"), default="ssl-a")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", action="append", required=True)
    args = parser.parse_args()

    variants = [parse_variant(text) for text in args.variant]
    rows = []
    for name, overrides in variants:
        probe = Probe(args.study, args.corpus.resolve(), (args.out / name).resolve(), args.objective,
                      args.language, args.seed, overrides)  # fmt: skip
        result = run_variant(probe, args.corpus, args.language)
        rows.append({"name": name, **result})
        print(f"{name}: abx {result['abx']:.2f} (layer {result['layer']}) r10 {result.get('r10', '-')} "
              f"train {result['train_seconds']} s {result['final']}", flush=True)  # fmt: skip
    first = Probe(args.study, args.corpus.resolve(), (args.out / variants[0][0]).resolve(), "ssl-a",
                  args.language, args.seed, variants[0][1])  # fmt: skip
    checkpoint = random_init_checkpoint(first, args.out / "baselines" / "random-init.pt")
    baselines = measure_baselines(args.corpus, args.language, args.out, checkpoint)
    report = {
        "objective": args.objective,
        "language": args.language,
        "variants": rows,
        "baselines": baselines,
    }
    (args.out / "sweep.json").write_text(json.dumps(report, indent=1))
    columns = ["name", "abx", "layer", "abx_best_test", "r10", "chance_r10", "train_seconds"]
    table_rows = rows + [{"name": name, **result} for name, result in baselines.items()]
    lines = write_tables(table_rows, columns, args.out / "sweep")
    print("\n".join(lines))
    best = min(rows, key=lambda row: row["abx"])
    print(f"RESULT best={best['name']} abx={best['abx']:.2f} mfcc={baselines['mfcc']['abx']:.2f} "
          f"random={baselines['random-init']['abx']:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
