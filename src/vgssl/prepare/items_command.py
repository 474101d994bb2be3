"""`vgssl prepare items MODE ...`: ABX item files of real speech, in the study layout.

Modes: `phones` (phone items from forced alignments: MFA TextGrids or a phone CTM), `languages` (language
items from manifests with language and speaker columns) and `import` (a published item file, used as it
is). Each claims its outputs in the corpus card, writes them atomically and records itself, under the
corpus's lock.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

HELP = "ABX item files: phone items from forced alignments, language items, or a published item file"
DESCRIPTION = """\
Write ABX item files into a prepared corpus (items/, ZeroSpeech format, the conventions of `vgssl synth`).
`phones`: phone items (phoneme and triphone) from Montreal Forced Aligner TextGrids or a Kaldi-style phone
CTM of a manifest's audio. `languages`: language items (fixed windows or whole utterances, duration-binned
and balanced per language) from manifests of two or more languages. `import`: a published item file
(Libri-light dev-clean.item, ZeroSpeech 2017) checked against its audio, copied under items/, with a
manifest of its audio if the corpus has none. Run `vgssl prepare items MODE --help` for each mode."""
_MANIFEST_NAME = re.compile(r"^(?P<lang>[A-Za-z0-9-]+)_(?P<split>train|valid|test)\.tsv$")
SPLITS = ("train", "valid", "test")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", metavar="CORPUS", type=Path, required=True, help="the prepared corpus to write into"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace item files written before")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    modes = parser.add_subparsers(dest="items_mode", metavar="MODE", required=True)
    formatter = argparse.ArgumentDefaultsHelpFormatter
    phones = modes.add_parser(
        "phones", help="phone items from forced alignments", formatter_class=formatter,
        description="Phone ABX items (items/{lang}_{split}_{phoneme,triphone}.item) and the alignments "
        "(alignments/{lang}_{split}.jsonl) from MFA TextGrids (<dir>/<speaker>/<uttid>.TextGrid or flat, a "
        "'phones' tier and optionally 'words') or a phone CTM (<uttid> <channel> <start> <duration> <phone> "
        "[conf]) of a manifest's audio. #file is the manifest path without extension, the speaker the "
        "manifest's speaker column. Silence labels ('', sil, sp, spn, nsn, <eps>; any case) are silence.",
    )  # fmt: skip
    phones.add_argument(
        "--manifest", type=Path, required=True, help="the manifest of the aligned audio (language, speaker)"
    )
    source = phones.add_mutually_exclusive_group(required=True)
    source.add_argument("--textgrids", type=Path, help="directory of MFA TextGrids")
    source.add_argument("--ctm", type=Path, help="a phone CTM file (Kaldi: ali-to-phones --ctm-output)")
    phones.add_argument(
        "--language", help="language code (default: from the manifest name {lang}_{split}.tsv)"
    )
    phones.add_argument("--split", choices=SPLITS, help="split (default: from the manifest name)")
    phones.add_argument("--phone-tier", default="phones", help="TextGrid tier of the phones")
    phones.add_argument("--word-tier", default="words", help="TextGrid tier of the words (optional)")
    phones.add_argument(
        "--strip-stress", action=argparse.BooleanOptionalAction, default=True,
        help="strip ARPAbet stress digits (AH0 -> AH) and IPA stress marks: ZeroSpeech/Libri-light items "
        "discriminate phonemes, not stress variants of one vowel",
    )  # fmt: skip
    phones.add_argument(
        "--strip-position", action=argparse.BooleanOptionalAction, default=True,
        help="strip Kaldi word-position suffixes (AH_B -> AH)",
    )  # fmt: skip
    phones.add_argument(
        "--silence", action="append", default=[], metavar="LABEL", help="another silence label (repeatable)"
    )
    phones.add_argument(
        "--brief-pause", type=_non_negative, default=0.02,
        help="seconds; shorter silences are transparent (their neighbours are each other's context)",
    )  # fmt: skip
    phones.add_argument(
        "--tolerance", type=_non_negative, default=0.01,
        help="seconds a phone may end past the audio (it is cut) before the alignment is refused",
    )  # fmt: skip
    _common(phones)

    languages = modes.add_parser(
        "languages", help="language items from manifests of several languages", formatter_class=formatter,
        description="Language ABX items (#file onset offset #language speaker length) from manifests "
        "with language and speaker columns: fixed windows (--window) or whole utterances (--whole), the "
        "length column a duration bin, balanced so that every bin holds as many segments of each language. "
        "Writes items/test_language.item (items/{split}_language.item for another split).",
    )  # fmt: skip
    languages.add_argument(
        "--manifest", type=Path, action="append", required=True, help="a manifest per language (repeat)"
    )
    shape = languages.add_mutually_exclusive_group()
    shape.add_argument("--window", type=_positive, default=1.0, help="window length in seconds")
    shape.add_argument("--whole", action="store_true", help="whole utterances instead of windows")
    languages.add_argument("--bin-seconds", type=_positive, default=0.5, help="duration bin (--whole)")
    languages.add_argument(
        "--min-seconds", type=_non_negative, default=0.5, help="shortest utterance (--whole)"
    )
    languages.add_argument("--max-seconds", type=_positive, default=None, help="longest utterance (--whole)")
    languages.add_argument(
        "--windows-per-utterance", type=_count, default=None, help="at most N per utterance"
    )
    languages.add_argument("--max-per-speaker", type=_count, default=None, help="at most N per speaker")
    languages.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    languages.add_argument("--split", choices=SPLITS, default="test", help="the split the items are of")
    languages.add_argument(
        "--prefix-speakers", action="store_true", help="write speakers as LANG:SPEAKER (ids of two corpora)"
    )
    _common(languages)

    imported = modes.add_parser(
        "import", help="a published item file, checked against its audio", formatter_class=formatter,
        description="Check a published item file (Libri-light dev-clean.item, ZeroSpeech 2017) with vgssl's "
        "item reader and against its audio (<audio-root>/<#file>.wav|.flac, 16 kHz; every item must cover a "
        "frame and end inside its file), copy it to items/{lang}_{split}_{flavour}.item (language items: "
        "items/test_language.item) and write manifests/{lang}_{split}.tsv of its audio unless one exists "
        "(an existing one must hold every file), so that `vgssl extract` and `vgssl study` find the audio.",
    )  # fmt: skip
    imported.add_argument("item_file", metavar="FILE", type=Path, help="the .item file")
    imported.add_argument("--audio-root", type=Path, required=True, help="the directory #file is relative to")
    imported.add_argument("--language", help="language code (required for phone items)")
    imported.add_argument("--split", choices=SPLITS, required=True, help="the split the items are of")
    imported.add_argument(
        "--flavour", choices=("triphone", "phoneme"), default="triphone",
        help="what the onsets/offsets span: triphone (ZeroSpeech 2017/2021) or the central phone",
    )  # fmt: skip
    imported.add_argument(
        "--find-by-basename", action="store_true",
        help="find each #file anywhere below --audio-root by name and rewrite #file to its path there",
    )  # fmt: skip
    imported.add_argument("--drop-bad-items", action="store_true", help="leave out items abx cannot score")
    imported.add_argument("--link", action="store_true", help="symlink the file instead of copying it")
    _common(imported)


def run(args: argparse.Namespace) -> int:
    from vgssl.prepare import items_prepare

    progress = not args.no_progress
    if args.items_mode == "phones":
        from vgssl.prepare.alignment_readers import DEFAULT_SILENCES, LabelRules

        language, split = language_and_split(args.manifest, args.language, args.split)
        rules = LabelRules(
            silences=frozenset((*DEFAULT_SILENCES, *(label.lower() for label in args.silence))),
            strip_stress=args.strip_stress,
            strip_position=args.strip_position,
        )
        summary = items_prepare.prepare_phone_items(
            args.manifest, corpus=args.out, textgrids=args.textgrids, ctm=args.ctm, language=language,
            split=split, phone_tier=args.phone_tier, word_tier=args.word_tier, rules=rules,
            brief_pause=args.brief_pause, tolerance=args.tolerance, overwrite=args.overwrite,
            progress=progress,
        )  # fmt: skip
    elif args.items_mode == "languages":
        from vgssl.prepare.language_items import SegmentRules

        rules = SegmentRules(
            window=None if args.whole else args.window, bin_seconds=args.bin_seconds,
            min_seconds=args.min_seconds, max_seconds=args.max_seconds,
            windows_per_utterance=args.windows_per_utterance,
        )  # fmt: skip
        summary = items_prepare.prepare_language_items(
            args.manifest, corpus=args.out, split=args.split, rules=rules,
            max_per_speaker=args.max_per_speaker, seed=args.seed, prefix_speakers=args.prefix_speakers,
            overwrite=args.overwrite,
        )  # fmt: skip
    else:
        summary = items_prepare.prepare_imported_items(
            args.item_file, corpus=args.out, audio_root=args.audio_root, language=args.language,
            split=args.split, flavour=args.flavour, by_basename=args.find_by_basename,
            drop_bad=args.drop_bad_items, link=args.link, overwrite=args.overwrite, progress=progress,
        )  # fmt: skip
    for note in summary.notes:
        print(note, file=sys.stderr)
    print("\n".join(summary.lines))
    return 0


def language_and_split(manifest: Path, language: str | None, split: str | None) -> tuple[str, str]:
    """The language and split given, else read from a manifest name `{lang}_{split}.tsv`."""
    from vgssl.errors import BadOptionError

    match = _MANIFEST_NAME.match(manifest.name)
    language = language or (match["lang"] if match else None)
    split = split or (match["split"] if match else None)
    if language is None or split is None:
        raise BadOptionError(
            f"--manifest {manifest}: its name is not {{lang}}_{{split}}.tsv, so pass --language and --split"
        )
    return language, split
