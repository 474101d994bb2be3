"""The `vgssl` command: one subcommand per stage of the data's path.

Each subcommand lives in its own module that defines `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int | None`. Modules import heavy libraries (torch, fastabx) inside `run`, so `vgssl --help`
stays fast. A `VgsslError` is printed as a one-line message with exit status 2, never as a traceback.

Every entry of `COMMANDS` must import and define all three: a module that is missing or fails to import is a
`CommandRegistryError` naming the command and the module, never a command that silently disappears.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from vgssl import __version__
from vgssl.errors import VgsslError

# Order is the data's path: corpus -> model -> train -> evaluate -> study.
COMMANDS: dict[str, str] = {
    "synth": "vgssl.corpus.synth_command",
    "prepare": "vgssl.prepare.command",
    "image-features": "vgssl.prepare.image_features_command",
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


COMMAND_INTERFACE = ("HELP", "add_arguments", "run")


class CommandRegistryError(VgsslError):
    """A registered command's module is missing, fails to import or lacks HELP/add_arguments/run."""


def _command_modules() -> dict[str, ModuleType]:
    """Every command of `COMMANDS`, imported; any that cannot be is a `CommandRegistryError`."""
    modules = {}
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except Exception as error:
            raise CommandRegistryError(
                f"command {name!r}: its module {module_name} cannot be imported "
                f"({type(error).__name__}: {error})"
            ) from error
        missing = [attribute for attribute in COMMAND_INTERFACE if not hasattr(module, attribute)]
        if missing:
            raise CommandRegistryError(
                f"command {name!r}: its module {module_name} does not define {', '.join(missing)}"
            )
        modules[name] = module
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vgssl",
        description="Visually grounded, multilingual self-supervised speech learning.",
    )
    parser.add_argument("--version", action="version", version=f"vgssl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _command_modules().items():
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
    try:
        parser = build_parser()
    except CommandRegistryError as error:
        print(f"vgssl: error: {error}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
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
