"""The literature's known-answer experiment: does grounding teach phones better than wav2vec 2.0 alone?

Khorrami et al. (EUSIPCO 2023) trained FaST-VGS+ from scratch on SpokenCOCO with
L = α · L_AV + (1 − α) · L_w2v2 and found, on LibriSpeech phone ABX across speaker at the best layer:
wav2vec 2.0 only 9.53 %, grounding only 6.44 %, both (α = 0.5) 6.81 %. This benchmark runs the same
comparison on the built-in corpus, as the study preset trains its runs (`--study`, default the demo's),
changed only where the setting demands:

* every training step is a caption step (`objective.caption_step_fraction: 1`) and every caption is used
  (`captions.grounded_fraction: null`), so every model hears exactly the same speech, in the same batches;
* models (`--models`, any of): `w2v2` (the SSL objective only: the study's caption-speech control),
  `grounded` (the speech–image loss only, on the unmasked pass), `alpha<α>` (both, in the α form, on the
  masked pass FaST-VGS+ uses: `alpha0.5`), and any `NAME:key=value,...` variant of VGS+ (dotted overrides
  of the run's training config);
* seeds `--seeds` (default 0 1 2), two runs at a time on one thread each (`--parallel`).

Each model is measured as the study measures one: phone ABX on triphone items, within context, across and
within speaker, each at the layer chosen on its VALID items (test error reported at that layer; valid
within-speaker has few cells on the built-in corpus, so read its layers with care), and test speech→image
R@10 for the grounded ones. Intervals: a paired hierarchical bootstrap (resample the seeds of
each model, then the phone-pair cells shared by all models; `vgssl.evaluate.gap`'s method).

    .venv/bin/python benchmarks/grounding_replication.py --corpus demo-out/corpus --out replication/

Also prints each model's error on the test cells grouped by how often the pair's rarer phone occurs in the
training captions' speech (OUT/replication_exposure.md): grounding can only teach what captions say.
Finished runs are skipped on a rerun. Writes OUT/replication.{json,csv,md}; the last line is
RESULT w2v2_across=… grounded_across=… vgsplus_across=… grounded_minus_w2v2=… lo=… hi=…
(errors in %; vgsplus is `--vgsplus`, default alpha0.5; the difference is grounded − w2v2 across speaker,
negative when grounding teaches phones better, with its 95 % interval).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from recipe_probe import (
    Probe,
    add_probe_arguments,
    last_metrics,
    parse_overrides,
    phone_abx_conditions,
    retrieval_r10,
    write_tables,
)
from vgssl.evaluate.gap import resample_seed_means

SPEAKERS = ("across", "within")
# Every step a caption step, every caption used: all models hear the same speech.
SAME_SPEECH = {"objective.caption_step_fraction": 1.0, "captions.grounded_fraction": None}
GROUNDING_ONLY = {"objective.weights": {"ssl": 0.0, "caption_ssl": 0.0, "vg": 1.0}}


def model_spec(text: str) -> tuple[str, str, dict[str, Any]]:
    """`--models` entry -> (name, study objective, overrides)."""
    name, sep, rest = text.partition(":")
    if sep:
        return name, "vgs+", parse_overrides([pair for pair in rest.split(",") if pair])
    if name == "w2v2":
        return name, "ssl-a", {}
    if name == "grounded":
        return name, "vgs+", {**GROUNDING_ONLY, "grounding.audio_pass": "unmasked"}
    if name.startswith("alpha"):
        alpha = float(name.removeprefix("alpha"))
        return name, "vgs+", {"objective.weights": {"alpha": alpha}, "grounding.audio_pass": "masked"}
    raise SystemExit(f"--models {text!r}: expected w2v2, grounded, alpha<α> or NAME:key=value,...")


def run_one(study: Path, corpus: Path, out: Path, name: str, objective: str, overrides: dict, seed: int,
            language: str) -> dict[str, Any]:  # fmt: skip
    """Train and measure one (model, seed); cached in its results.json."""
    import torch

    torch.set_num_threads(1)
    done = out / "results.json"
    if done.is_file():
        return json.loads(done.read_text())
    probe = Probe(study, corpus, out, objective, language, seed, {**SAME_SPEECH, **overrides})
    seconds = probe.train()
    run = out / "run"
    measured = phone_abx_conditions(str(run), corpus, language, out)
    result: dict[str, Any] = {
        "model": name,
        "seed": seed,
        "overrides": overrides,
        "train_seconds": round(seconds, 1),
    }
    for speaker in SPEAKERS:
        errors = {
            split: {int(k): v for k, v in layers.items()}
            for split, layers in measured["errors"][speaker].items()
        }
        layer = min(errors["valid"], key=errors["valid"].get)
        result[speaker] = {
            "layer": layer,
            "error": errors["test"][layer],
            "errors": errors,
            "cells": measured["cells"][speaker][layer],
        }
    metrics = last_metrics(run)
    keys = ("step", "caption_contrastive", "caption_accuracy", "vg_loss", "vg_collapsed_loss")
    result["final"] = {k: metrics.get(k) for k in keys}
    if objective == "vgs+":
        result["r10"], result["chance_r10"] = retrieval_r10(run, corpus, language, out)
    done.write_text(json.dumps(result, indent=1))
    return result


def interval(
    results: list[dict], models: list[str], speaker: str, *, replicates: int = 2000
) -> dict[str, np.ndarray]:
    """Bootstrap replicates of each model's mean error over seeds (seeds, then the shared cells)."""
    rng = np.random.default_rng(0)
    cells = sorted(results[0][speaker]["cells"])
    weights = rng.multinomial(len(cells), np.full(len(cells), 1 / len(cells)), size=replicates) / len(cells)
    out = {}
    for model in models:
        runs = [r for r in results if r["model"] == model]
        matrix = np.array([[r[speaker]["cells"].get(c, np.nan) for c in cells] for r in runs])
        matrix = np.where(np.isnan(matrix), np.nanmean(matrix, axis=0), matrix)  # a cell missing in one run
        out[model] = resample_seed_means(matrix @ weights.T, rng=rng)
    return out


def caption_phone_counts(corpus: Path, language: str) -> dict[str, int]:
    """How often each phone occurs in the training captions' speech (the only speech grounding hears)."""
    counts: dict[str, int] = {}
    with (corpus / "alignments" / f"{language}_train.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            utterance = json.loads(line)
            if utterance.get("kind") == "caption":
                for _, _, phone in utterance["phones"]:
                    counts[phone] = counts.get(phone, 0) + 1
    return counts


def exposure_table(results: list[dict], models: list[str], counts: dict[str, int]) -> list[str]:
    """Across-speaker error per model (mean over seeds) on the test cells grouped by how often the rarer
    phone of the pair occurs in caption speech: does grounding help the phones it hears most?"""
    bins = [(0, 0, "never"), (1, 499, "1-499"), (500, 1999, "500-1999"), (2000, 10**9, ">=2000")]
    cell_errors = {}
    for model in models:
        runs = [r["across"]["cells"] for r in results if r["model"] == model]
        shared = set.intersection(*(set(cells) for cells in runs))
        cell_errors[model] = {cell: float(np.mean([cells[cell] for cells in runs])) for cell in shared}
    shared = set.intersection(*(set(errors) for errors in cell_errors.values()))
    lines = ["| rarer phone's count in caption speech | cells | " + " | ".join(models) + " |",
             "|---|---|" + "---|" * len(models)]  # fmt: skip
    for low, high, label in bins:
        cells = [c for c in shared if low <= min(counts.get(p, 0) for p in c.split("|")) <= high]
        if cells:
            means = [f"{np.mean([cell_errors[m][c] for c in cells]):.2f}" for m in models]
            lines.append(f"| {label} | {len(cells)} | " + " | ".join(means) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_probe_arguments(parser)
    parser.add_argument(
        "--models", nargs="+", default=["w2v2", "grounded", "alpha0.1", "alpha0.5", "alpha0.9"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--vgsplus", default="alpha0.5", help="the model reported as vgsplus in RESULT")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once, one thread each")
    args = parser.parse_args()

    specs = [model_spec(text) for text in args.models]
    jobs = [(name, objective, overrides, seed) for seed in args.seeds for name, objective, overrides in specs]
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by each training child
    start = time.perf_counter()
    with ProcessPoolExecutor(args.parallel, mp_context=get_context("spawn")) as pool:
        study, corpus = args.study.resolve(), args.corpus.resolve()
        futures = [
            pool.submit(run_one, study, corpus, (args.out / f"{name}_seed{seed}").resolve(), name, objective,
                        overrides, seed, args.language)
            for name, objective, overrides, seed in jobs
        ]  # fmt: skip
        results = []
        for future in futures:
            result = future.result()
            results.append(result)
            print(f"{result['model']} seed {result['seed']}: across {result['across']['error']:.2f} "
                  f"(L{result['across']['layer']}) within {result['within']['error']:.2f} "
                  f"r10 {result.get('r10', '-')} train {result['train_seconds']} s", flush=True)  # fmt: skip
    names = [name for name, _, _ in specs]
    replicates = {speaker: interval(results, names, speaker) for speaker in SPEAKERS}
    rows = []
    for name in names:
        runs = [r for r in results if r["model"] == name]
        row: dict[str, Any] = {"model": name, "seeds": len(runs)}
        for speaker in SPEAKERS:
            mean = float(np.mean([r[speaker]["error"] for r in runs]))
            low, high = np.percentile(replicates[speaker][name], [2.5, 97.5])
            row[speaker] = f"{mean:.2f} [{low:.2f}, {high:.2f}]"
            row[f"{speaker}_mean"] = round(mean, 3)
            row[f"{speaker}_layers"] = " ".join(str(r[speaker]["layer"]) for r in runs)
            row[f"{speaker}_per_seed"] = " ".join(f"{r[speaker]['error']:.2f}" for r in runs)
        if "r10" in runs[0]:
            row["r10"] = round(float(np.mean([r["r10"] for r in runs])), 1)
            row["chance_r10"] = runs[0]["chance_r10"]
        row["train_seconds"] = round(float(np.mean([r["train_seconds"] for r in runs])), 1)
        rows.append(row)
    columns = ["model", "seeds", "across", "across_per_seed", "across_layers", "within", "within_per_seed",
               "within_layers", "r10", "chance_r10", "train_seconds"]  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    lines = write_tables(rows, columns, args.out / "replication")
    (args.out / "replication.json").write_text(json.dumps({"rows": rows, "runs": results}, indent=1))
    print("\n".join(lines))
    exposure = exposure_table(results, names, caption_phone_counts(args.corpus, args.language))
    (args.out / "replication_exposure.md").write_text("\n".join(exposure) + "\n")
    print("\nacross-speaker error by how often the cell's phones occur in caption speech (test, seed mean)")
    print("\n".join(exposure))
    print(f"wall {time.perf_counter() - start:.0f} s")
    mean = {row["model"]: row["across_mean"] for row in rows}
    if {"w2v2", "grounded"} <= set(names):
        difference = replicates["across"]["grounded"] - replicates["across"]["w2v2"]
        low, high = np.percentile(difference, [2.5, 97.5])
        vgsplus = mean.get(args.vgsplus, float("nan"))
        print(f"RESULT w2v2_across={mean['w2v2']:.2f} grounded_across={mean['grounded']:.2f} "
              f"vgsplus_across={vgsplus:.2f} grounded_minus_w2v2={mean['grounded'] - mean['w2v2']:.2f} "
              f"lo={low:.2f} hi={high:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
