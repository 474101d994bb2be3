"""`vgssl prepare SOURCE ...`: one subcommand per published corpus layout, each in its own module.

A subcommand module defines `HELP`, `add_arguments(parser)` and `run(args)`, like a top-level command.
"""

from __future__ import annotations

import argparse
import importlib

HELP = "write the study layout from real corpora on disk (LibriSpeech, MLS, SpokenCOCO, alignments)"
DESCRIPTION = """\
Read a corpus from a local directory in its published layout and write manifests, caption JSON and ABX
item files in the study layout (README, `vgssl synth`) under --out, pointing at the original audio (nothing
is copied or downloaded). Several `prepare` commands may write into one corpus; its card (corpus.json) lists
every source. Run `vgssl prepare SOURCE --help` for each source's options."""

SUBCOMMANDS: dict[str, str] = {
    "librispeech": "vgssl.prepare.librispeech_command",
    "mls": "vgssl.prepare.mls_command",
    "spokencoco": "vgssl.prepare.spokencoco_command",
    "items": "vgssl.prepare.items_command",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    subparsers = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_prepare=module.run)


def run(args: argparse.Namespace) -> int | None:
    return args._prepare(args)
