"""`vgssl gap RESULTS... --out DIR`: multilingual gap, grounding gain, bootstrap CIs, the two hypotheses."""

from __future__ import annotations

import argparse
from pathlib import Path

from vgssl.errors import BadOptionError, OutputExistsError

HELP = "multilingual gap and grounding gain from tagged phone ABX results, with bootstrap CIs"
DESCRIPTION = """\
Combine phone ABX results of runs tagged with --run-tag objective=ssl-a|vgs+, train_languages=..., seed=...
(written by `vgssl abx`). Per evaluated language and averaged: multilingual gap (E_multi - E_mono) / E_mono
for each objective, grounding gain (E_ssl-a - E_vgs+) / E_ssl-a for mono- and multilingual training, 95 %
bootstrap intervals over ABX cells (and seeds), and the paper's two hypotheses (audio-only gap > grounded gap;
multilingual gain > monolingual gain). Writes DIR/gap.md, DIR/gap.json, DIR/layers.png and DIR/gaps.png."""


def _layer(text: str) -> int | str:
    if text == "best":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'best' or a layer index, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results", metavar="RESULTS", type=Path, nargs="+", help="result JSON files of `vgssl abx`"
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--layer",
        type=_layer,
        default="best",
        help="'best' (per run, lowest error in the condition) or an index",
    )
    parser.add_argument(
        "--speaker", choices=("within", "across"), default="across", help="speaker mode analysed"
    )
    parser.add_argument(
        "--context", choices=("within", "any"), default="within", help="context mode analysed"
    )
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap draws")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing gap.json")


def run(args: argparse.Namespace) -> int:
    from vgssl.atomic import atomic_write_json, atomic_write_text
    from vgssl.evaluate.gap import analyse, select_runs
    from vgssl.evaluate.gap_markdown import markdown
    from vgssl.evaluate.plots import plot_gaps_and_gains, plot_layer_curves
    from vgssl.evaluate.results import read_result

    if args.bootstrap < 100:
        raise BadOptionError(
            f"--bootstrap must be at least 100 replicates for a 95 % interval, got {args.bootstrap}"
        )
    if (args.out / "gap.json").exists() and not args.overwrite:
        raise OutputExistsError(f"{args.out / 'gap.json'} exists; pass --overwrite to replace it")
    results = [(path, read_result(path)) for path in args.results]
    runs = select_runs(results, layer=args.layer, speaker=args.speaker, context=args.context)
    condition = f"{args.speaker}-speaker, {args.context}-context"
    layer_rule = (
        f"per run, the layer with the lowest {condition} error (marked with a star in layers.png)"
        if args.layer == "best"
        else f"layer {args.layer} for every run"
    )
    report = analyse(
        runs,
        speaker=args.speaker,
        context=args.context,
        layer_rule=layer_rule,
        replicates=args.bootstrap,
        seed=args.bootstrap_seed,
    )
    document = report.to_json()
    document["runs"] = [
        {
            "label": r.label,
            "source": r.source,
            "eval_language": r.eval_language,
            "layer": r.layer,
            "error": r.error,
        }
        for r in runs
    ]
    atomic_write_json(args.out / "gap.json", document)
    text = markdown(report)
    atomic_write_text(args.out / "gap.md", text)
    plot_layer_curves(runs, args.out / "layers.png", condition=condition)
    plot_gaps_and_gains(report, args.out / "gaps.png")
    print(text)
    print(f"wrote {args.out}/gap.md, gap.json, layers.png, gaps.png")
    return 0
