"""`vgssl prepare mls ROOT --language french --out CORPUS`: one Multilingual LibriSpeech language from disk
into a prepared corpus."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "Multilingual LibriSpeech (openslr SLR94 layout), one language -> manifests and transcripts"
DESCRIPTION = """\
Read one language of Multilingual LibriSpeech as published:
ROOT/<split>/audio/<speaker>/<book>/<speaker>_<book>_<utt>.flac (or .opus) with ROOT/<split>/transcripts.txt
(<id><TAB>text) and, optionally, segments.txt (used only to select by hours without opening every file).
ROOT is the language directory (mls_french/) or the directory holding it. Writes
CORPUS/manifests/{code}_{split}.tsv (fairseq TSV: root = ROOT, then
path<TAB>num_samples<TAB>language<TAB>speaker, pointing at the original files; nothing is copied) and
CORPUS/transcripts/{code}_{split}.tsv (uttid<TAB>text). Split directories train, dev and test become train,
valid and test. Audio must be 16 kHz: a 48 kHz .opus release has to be converted first (the error says how).
The corpus card, CORPUS/corpus.json, lists every source written into the corpus."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vgssl.prepare.mls import LANGUAGES
    from vgssl.prepare.speech_options import add_speech_arguments

    parser.add_argument(
        "root", metavar="ROOT", help="the MLS language directory (mls_french/, holding train/ ...)"
    )
    parser.add_argument(
        "--language",
        required=True,
        help=f"the MLS language: {', '.join(LANGUAGES)} (or its code: {', '.join(LANGUAGES.values())})",
    )
    parser.add_argument(
        "--code", default=None, help="language code for the manifests (default: the language's, e.g. fr)"
    )
    add_speech_arguments(
        parser,
        subsets="Defaults: train=train, valid=dev, test=test.",
        example="valid=dev --split test=",
    )


def run(args: argparse.Namespace) -> int:
    from vgssl.prepare import mls
    from vgssl.prepare.speech import prepare_speech
    from vgssl.prepare.speech_options import format_summary, hours_by_split, resolve_splits, warn_short

    name = mls.language_name(args.language)
    code = args.code or mls.LANGUAGES[name]
    root, found = mls.find_splits(Path(args.root), name)
    splits = resolve_splits(args.split, found=found, defaults=mls.DEFAULT_SPLITS, kind="MLS")
    hours = hours_by_split(args)
    summaries = prepare_speech(
        Path(args.out),
        kind="mls",
        root=root,
        language=code,
        splits=splits,
        read_subset=lambda split: mls.read_split(root, split, progress=not args.no_progress),
        hours=hours,
        seed=args.seed,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        options={"mls_language": name},
    )
    for note in warn_short(summaries, hours):
        print(note, file=sys.stderr)
    used = {subset for subsets in splits.values() for subset in subsets}
    print(format_summary("mls", code, summaries, skipped=[split for split in found if split not in used]))
    return 0
