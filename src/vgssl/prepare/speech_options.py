"""The command-line options `vgssl prepare librispeech` and `vgssl prepare mls` share, and the `--split`
mapping from a source's subset names to the study's splits (train, valid, test)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence

from vgssl.errors import BadOptionError
from vgssl.prepare.speech import SPLITS, Split, SplitSummary


def _hours(value: str) -> float:
    try:
        hours = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of hours, got {value!r}") from None
    if not math.isfinite(hours) or hours <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of hours, got {value!r}")
    return hours


def add_speech_arguments(parser: argparse.ArgumentParser, *, subsets: str, example: str) -> None:
    """The options after ROOT and the language: --out, --split, --hours*, --seed, --overwrite, --no-progress.
    `subsets` says which subset names there are and where they go by default; `example` is a --split value."""
    parser.add_argument(
        "--out",
        metavar="CORPUS",
        required=True,
        help="the prepared corpus to write into (made if missing; other prepare commands may share it)",
    )
    parser.add_argument(
        "--split",
        metavar="SPLIT=SUBSET[,SUBSET]",
        action="append",
        default=[],
        help=f"map subsets to a split (train, valid or test), replacing that split's default; repeatable; "
        f"an empty list (`--split test=`) leaves the split out. {subsets} Example: --split {example}",
    )
    parser.add_argument(
        "--hours",
        type=_hours,
        default=None,
        help="hours of train speech to take (whole utterances, speakers balanced; None takes all)",
    )
    parser.add_argument(
        "--hours-valid", type=_hours, default=None, help="hours of valid speech (None takes all)"
    )
    parser.add_argument(
        "--hours-test", type=_hours, default=None, help="hours of test speech (None takes all)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the selection by hours")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace this language's manifests and transcripts if present",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def hours_by_split(args: argparse.Namespace) -> dict[Split, float | None]:
    return {"train": args.hours, "valid": args.hours_valid, "test": args.hours_test}


def resolve_splits(
    flags: Sequence[str], *, found: Sequence[str], defaults: Mapping[Split, Sequence[str]], kind: str
) -> dict[Split, list[str]]:
    """The subsets of each split: `defaults` (only subsets that were `found`), then each `--split` flag
    replacing its split's list. A subset that was not found or is in two splits is an error."""
    mapping: dict[Split, list[str]] = {
        split: [s for s in defaults.get(split, ()) if s in found] for split in SPLITS
    }
    for flag in flags:
        name, equals, value = flag.partition("=")
        name = name.strip()
        if not equals or name not in SPLITS:
            raise BadOptionError(
                f"--split {flag!r}: expected SPLIT=SUBSET[,SUBSET] with SPLIT one of {', '.join(SPLITS)}"
            )
        subsets = list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
        missing = [subset for subset in subsets if subset not in found]
        if missing:
            raise BadOptionError(
                f"--split {flag!r}: no subset {', '.join(missing)} under ROOT; the {kind} subsets found are "
                f"{', '.join(found) or 'none'}"
            )
        mapping[name] = subsets  # type: ignore[index]  # checked against SPLITS above
    owner: dict[str, str] = {}
    for split, subsets in mapping.items():
        for subset in subsets:
            if subset in owner:
                raise BadOptionError(
                    f"subset {subset} would be in both {owner[subset]} and {split}: one subset's speech in "
                    "two splits leaks test speech into training; map it once (--split)"
                )
            owner[subset] = split
    chosen = {split: subsets for split, subsets in mapping.items() if subsets}
    if not chosen:
        raise BadOptionError(
            f"no {kind} subset is mapped to any split (found: {', '.join(found) or 'none'}); map some with "
            "--split, e.g. --split train=SUBSET"
        )
    return chosen


def format_summary(
    kind: str, language: str, summaries: Sequence[SplitSummary], *, skipped: Sequence[str]
) -> str:
    """What the command prints: one line per split, then a note for budgets the subsets could not fill and
    for subsets left out."""
    lines = [f"prepare {kind}: {language}"]
    for s in summaries:
        lines.append(
            f"  {s.split:<5} {s.utterances:>7} utterances {s.hours:9.3f} h {s.speakers:>5} speakers  "
            f"<- {', '.join(s.subsets)}  ({s.manifest})"
        )
        if s.hours < s.available_hours - 1e-9:
            source = "estimated from segments" if s.estimated else "in the subsets"
            lines.append(f"        selected from {s.available_hours:.3f} h {source}")
    if skipped:
        lines.append(f"  not used: {', '.join(skipped)} (map them with --split SPLIT=SUBSET)")
    return "\n".join(lines)


def warn_short(summaries: Sequence[SplitSummary], hours: Mapping[Split, float | None]) -> list[str]:
    """Warnings for hours asked of a split that is not written, or more than its subsets hold (all of it
    was taken)."""
    notes = []
    written = {s.split for s in summaries}
    for split, asked in hours.items():
        if asked is not None and split not in written:
            notes.append(f"warning: --hours for {split} ignored: no subset is mapped to {split}")
    for s in summaries:
        asked = hours.get(s.split)
        if asked is not None and s.available_hours < asked:
            notes.append(
                f"warning: {s.split}: asked for {asked:g} h, the subsets hold only "
                f"{s.available_hours:.3f} h; took all of it"
            )
    return notes
