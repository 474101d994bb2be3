"""`vgssl abx-lang FEATURES ITEMFILE --out RESULT.json`: language ABX per layer on mean-pooled segments."""

from __future__ import annotations

import argparse

from vgssl.evaluate.abx_command import add_common_arguments, check_output

HELP = "language ABX error per layer (mean-pooled segments, X from another speaker)"
DESCRIPTION = """\
Language discrimination with fastabx on the features of `vgssl extract`. ITEMFILE has the columns
`#file onset offset #language speaker length` (length = a duration bin). Each segment is mean-pooled; A and X
share a language and B has another; A and B come from one speaker, X from another; all three are different
segments of the same duration bin. Lower error = more language information; chance is 50 %."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from vgssl.evaluate.abx import layer_dirs
    from vgssl.evaluate.features import parse_layers, resolve_device
    from vgssl.evaluate.language_abx import run_language_abx
    from vgssl.evaluate.results import parse_run_tags, write_result

    check_output(args.out, overwrite=args.overwrite)
    result = run_language_abx(
        args.features,
        args.item_file,
        layers=parse_layers(args.layers, list(layer_dirs(args.features))),
        max_size_group=args.max_size_group,
        max_x_across=args.max_x_across,
        seed=args.seed,
        device=resolve_device(args.device),
        run=parse_run_tags(args.run_tag),
        progress=not args.quiet,
    )
    csv_path = write_result(result, args.out)
    for score in result.scores:
        print(f"layer {score.layer:>2}  language ABX {score.error:6.2f} %")
    print(f"wrote {args.out} and {csv_path}")
    return 0
