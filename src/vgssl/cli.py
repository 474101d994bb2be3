"""The `vgssl` command: one subcommand per stage of the data's path.

Each subcommand lives in its own module that defines `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int | None`. Modules import heavy libraries (torch, fastabx) inside `run`, so `vgssl --help`
stays fast. A `VgsslError` is printed as a one-line message with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from vgssl import __version__
from vgssl.errors import VgsslError

# Order is the data's path: corpus -> model -> train -> evaluate -> study.
COMMANDS: dict[str, str] = {
    "synth": "vgssl.corpus.synth_command",
    "check-images": "vgssl.corpus.check_images_command",
    "train": "vgssl.train.command",
    "export-hf": "vgssl.model.export_command",
    "extract": "vgssl.evaluate.extract_command",
    "abx": "vgssl.evaluate.abx_command",
    "abx-lang": "vgssl.evaluate.abx_lang_command",
    "retrieval": "vgssl.evaluate.retrieval_command",
    "gap": "vgssl.evaluate.gap_command",
    "study": "vgssl.study.command",
    "demo": "vgssl.study.demo_command",
}


def _available_commands() -> dict[str, object]:
    modules = {}
    for name, module_name in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:  # a real missing dependency inside the module: surface it
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vgssl",
        description="Visually grounded, multilingual self-supervised speech learning.",
    )
    parser.add_argument("--version", action="version", version=f"vgssl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _available_commands().items():
        sub = subparsers.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args._run(args)
    except VgsslError as error:
        print(f"vgssl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vgssl {args.command}: interrupted; re-run the same command to resume.", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
