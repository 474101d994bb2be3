"""`vgssl abx FEATURES ITEMFILE --out RESULT.json`: phone ABX per layer with fastabx."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from vgssl.errors import BadOptionError, OutputExistsError

HELP = "phone ABX error per layer (within/across speaker, within/any context; angular + DTW)"
DESCRIPTION = """\
Phone ABX discrimination (ZeroSpeech 2021 style, fastabx) on the features of `vgssl extract`, for every
layer × speaker mode × context mode. Writes RESULT.json (scores, the collapsed per-phone-pair cells that
`vgssl gap` bootstraps over, the item file, the language and the conventions: 50 Hz, frame i at
0.01 + 0.02 i s, the last-frame rule, subsampling and seed) and RESULT.csv (one row per layer and
condition). Errors are in %, chance is 50 %. Items are sliced exactly (every frame time inside an item,
the last one included) unless --librilight-slicing drops each item's last frame as Libri-Light's and
ZeroSpeech 2021's ABX do, to compare with their published numbers. Tag the result for `vgssl gap` with
--run-tag objective=ssl-a --run-tag train_languages=en,fr --run-tag seed=0."""


def _group_size(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2 or 'none', got {text!r}")
    return value


def _choices(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [part for part in text.split(",") if part]
        wrong = [value for value in values if value not in allowed]
        if wrong or not values:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated subset of {','.join(allowed)}, got {text!r}"
            )
        return list(dict.fromkeys(values))

    return parse


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by `vgssl abx` and `vgssl abx-lang`."""
    parser.add_argument(
        "features", metavar="FEATURES", type=Path, help="the OUT directory of `vgssl extract`"
    )
    parser.add_argument("item_file", metavar="ITEMFILE", type=Path, help="the .item file")
    parser.add_argument("--out", type=Path, required=True, help="result JSON (a CSV is written next to it)")
    parser.add_argument("--layers", default="all", help="'all' or comma-separated layer indices")
    parser.add_argument(
        "--max-size-group", type=_group_size, default=10, help="max A, B or X per cell ('none': all)"
    )
    parser.add_argument(
        "--max-x-across", type=_group_size, default=5, help="max X speakers per (A, B) ('none': all)"
    )
    parser.add_argument("--seed", type=int, default=0, help="subsampling seed")
    parser.add_argument(
        "--device", default="auto", help="torch device for scoring; auto = cuda when available"
    )
    parser.add_argument(
        "--run-tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata for `vgssl gap` (repeatable): objective, train_languages, eval_language, seed, run",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing result")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    # string defaults go through `type` too, so the help shows them as a user would type them
    speaker_help, context_help = "speaker modes, comma-separated", "context modes, comma-separated"
    parser.add_argument(
        "--speaker", type=_choices(("within", "across")), default="within,across", help=speaker_help
    )
    parser.add_argument(
        "--context", type=_choices(("within", "any")), default="within,any", help=context_help
    )
    parser.add_argument(
        "--language", default=None, help="evaluated language (default: from the item file name)"
    )
    parser.add_argument(
        "--librilight-slicing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="drop each item's last frame as Libri-Light / ZeroSpeech 2021 ABX do (--no-librilight-slicing: "
        "exact); default: exact unless FASTABX_WITH_LIBRILIGHT_BUG=1 is set. Recorded in the result "
        "(conventions.last_frame)",
    )


def check_output(out: Path, *, overwrite: bool) -> None:
    if out.suffix != ".json":
        raise BadOptionError(f"--out {out} must end in .json (the CSV twin gets the same name with .csv)")
    twin = out.with_suffix(".csv")  # the pair is one output: neither half is replaced alone
    existing = [path for path in (out, twin) if path.exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{' and '.join(map(str, existing))} exist(s); --out writes {out.name} and {twin.name} together: "
            "pass --overwrite to replace them, or choose another --out"
        )


def run(args: argparse.Namespace) -> int:
    from vgssl.evaluate.abx import layer_dirs, run_phone_abx
    from vgssl.evaluate.features import parse_layers, resolve_device
    from vgssl.evaluate.results import parse_run_tags, write_result

    check_output(args.out, overwrite=args.overwrite)
    run_tag = parse_run_tags(args.run_tag)
    result = run_phone_abx(
        args.features,
        args.item_file,
        layers=parse_layers(args.layers, list(layer_dirs(args.features))),
        speakers=args.speaker,
        contexts=args.context,
        max_size_group=args.max_size_group,
        max_x_across=args.max_x_across,
        seed=args.seed,
        device=resolve_device(args.device),
        language=args.language,
        run=run_tag,
        progress=not args.quiet,
        librilight_slicing=args.librilight_slicing,
    )
    csv_path = write_result(result, args.out)
    slicing = "librilight" if result.conventions.last_frame != "kept" else "exact"
    why = (
        " (from FASTABX_WITH_LIBRILIGHT_BUG)"
        if args.librilight_slicing is None and slicing != "exact"
        else ""
    )
    print(f"slicing: {slicing}{why}, last frame of each item {result.conventions.last_frame}")
    for score in result.scores:
        condition = f"speaker {score.speaker:<6}  context {score.context:<6}"
        print(f"layer {score.layer:>2}  {condition}  {score.error:6.2f} %")
    print(f"wrote {args.out} and {csv_path}")
    return 0
