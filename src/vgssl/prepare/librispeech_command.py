"""`vgssl prepare librispeech ROOT --out CORPUS`: LibriSpeech from disk into a prepared corpus."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "LibriSpeech (openslr SLR12 layout) -> manifests and transcripts of one language"
DESCRIPTION = """\
Read LibriSpeech as published, ROOT/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac with
<speaker>-<chapter>.trans.txt next to the audio (ROOT is the LibriSpeech/ directory the archives unpack
into), and write CORPUS/manifests/{lang}_{split}.tsv (fairseq TSV: root = ROOT, then
path<TAB>num_samples<TAB>language<TAB>speaker, pointing at the original files; nothing is copied) and
CORPUS/transcripts/{lang}_{split}.tsv (uttid<TAB>text, for a later alignment). By default every train-*
subset found is train, dev-clean is valid and test-clean is test; dev-other and test-other are used only
when mapped with --split. Audio must be 16 kHz (LibriSpeech is). The corpus card, CORPUS/corpus.json, lists
every source written into the corpus."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vgssl.prepare.speech_options import add_speech_arguments

    parser.add_argument(
        "root", metavar="ROOT", help="the LibriSpeech/ directory (holding train-clean-100/ ...)"
    )
    parser.add_argument(
        "--language", default="en", help="language code for the manifests' names and language column"
    )
    add_speech_arguments(
        parser,
        subsets="Defaults: train=all train-* found, valid=dev-clean, test=test-clean.",
        example="train=train-clean-100,train-clean-360 --split valid=dev-other",
    )


def run(args: argparse.Namespace) -> int:
    from vgssl.prepare import librispeech
    from vgssl.prepare.speech import prepare_speech
    from vgssl.prepare.speech_options import format_summary, hours_by_split, resolve_splits, warn_short

    root, found = librispeech.find_subsets(Path(args.root))
    splits = resolve_splits(
        args.split, found=found, defaults=librispeech.default_splits(found), kind="LibriSpeech"
    )
    hours = hours_by_split(args)
    summaries = prepare_speech(
        Path(args.out),
        kind="librispeech",
        root=root,
        language=args.language,
        splits=splits,
        read_subset=lambda subset: librispeech.read_subset(root, subset, progress=not args.no_progress),
        hours=hours,
        seed=args.seed,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        options={},
    )
    used = {subset for subsets in splits.values() for subset in subsets}
    for note in warn_short(summaries, hours):
        print(note, file=sys.stderr)
    skipped = [subset for subset in found if subset not in used]
    print(format_summary("librispeech", args.language, summaries, skipped=skipped))
    return 0
