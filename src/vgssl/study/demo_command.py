"""`vgssl demo`: the main job on the built-in corpus, with no download."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HELP = "build the default built-in corpus (if missing) and print its card"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo-out", help="directory for the corpus and results")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="synthesis processes")
    parser.add_argument("--tiny", action="store_true", help="use the tiny corpus preset (seconds)")


def run(args: argparse.Namespace) -> int:
    from vgssl.corpus.build import build_corpus
    from vgssl.corpus.card import CARD_NAME, format_card, read_card
    from vgssl.corpus.spec import make_spec

    corpus = Path(args.out) / "corpus"
    if (corpus / CARD_NAME).is_file():
        card = read_card(corpus)
        print(f"using the existing corpus in {corpus}", file=sys.stderr)
    else:
        command = f"vgssl synth {corpus}" + (" --tiny" if args.tiny else "")
        card = build_corpus(
            make_spec(tiny=args.tiny), corpus, workers=args.workers, overwrite=True, command=command
        )
    print(format_card(card))
    return 0
