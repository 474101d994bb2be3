"""`vgssl prepare spokencoco ROOT --images COCO_ROOT --out CORPUS`: SpokenCOCO captions into a corpus."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from vgssl.audio.frames import SAMPLE_RATE
from vgssl.errors import BadOptionError

HELP = "SpokenCOCO (or any SpokenCOCO-shaped caption set) into captions_{split}.json and caption manifests"
DESCRIPTION = """\
Read SpokenCOCO as published (ROOT/SpokenCOCO_{train,val}.json, wavs under ROOT/wavs/, images under the COCO
root given by --images) and write CORPUS/captions_{split}.json (SpokenCOCO style, every caption with its
"lang"; absolute paths into the original trees, nothing copied) and
CORPUS/manifests/{lang}_{split}_captions.tsv (fairseq TSV with language and speaker columns). Split files,
by default: FaST-VGS's Karpathy files if ROOT has them (SpokenCOCO_{train,val,test}_unrolled_karpathy.json,
else SpokenCOCO_{train,val,test}_karpathy.json -> train, valid, test), else SpokenCOCO_train.json -> train
and SpokenCOCO_val.json -> test (no valid split unless --valid-images holds some training images out).
--split SPLIT=FILE replaces the mapping. Every wav is checked (exists, readable, 16 kHz) and every image
exists. A caption set of another language (--language fr) is merged into the same caption files by image.
Then `vgssl image-features CORPUS/captions_*.json --model DIR --out CORPUS/image_features` gives the image
side."""

_LANGUAGE = re.compile(r"^[A-Za-z0-9-]+$")


def _split_file(text: str) -> tuple[str, Path]:
    split, sep, file = text.partition("=")
    if not sep or split not in ("train", "valid", "test") or not file:
        raise argparse.ArgumentTypeError(f"expected SPLIT=FILE with SPLIT train, valid or test; got {text!r}")
    return split, Path(file)


def _max_images(text: str) -> dict[str, int]:
    """`N` (every split) or `train=N,test=M`."""
    limits: dict[str, int] = {}
    try:
        if "=" not in text:
            return {"*": _positive(int(text))}
        for part in text.split(","):
            split, _, number = part.partition("=")
            if split.strip() not in ("train", "valid", "test"):
                raise ValueError(f"unknown split {split.strip()!r}")
            limits[split.strip()] = _positive(int(number))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected N or SPLIT=N[,SPLIT=N] with N >= 1: {error}") from None
    return limits


def _positive(value: int) -> int:
    if value < 1:
        raise ValueError(f"{value} is not positive")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "root", metavar="ROOT", type=Path, help="the SpokenCOCO directory (JSON files, wavs/)"
    )
    parser.add_argument(
        "--images",
        metavar="COCO_ROOT",
        type=Path,
        required=True,
        help="the COCO image root, holding train2014/ and val2014/ (the JSON's image paths)",
    )
    parser.add_argument("--out", metavar="CORPUS", type=Path, required=True, help="the prepared corpus")
    parser.add_argument(
        "--language", default="en", help="language code of these captions (a manifest name part)"
    )
    parser.add_argument(
        "--split",
        dest="splits",
        type=_split_file,
        action="append",
        default=None,
        metavar="SPLIT=FILE",
        help="caption JSON of a split (relative to ROOT), repeatable; replaces the default mapping",
    )
    parser.add_argument(
        "--audio-root", type=Path, default=None, help="where the JSON's wav paths start; None: ROOT"
    )
    parser.add_argument(
        "--max-images",
        type=_max_images,
        default=None,
        metavar="N|SPLIT=N,...",
        help="at most N images per split, drawn with --seed; None: all",
    )
    parser.add_argument(
        "--valid-images",
        type=int,
        default=0,
        help="hold out this many training images as the valid split (only without a valid file)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --max-images and --valid-images")
    parser.add_argument(
        "--uttid-prefix",
        default="",
        help="prefix of every uttid (keeps ids of two languages apart when they repeat)",
    )
    parser.add_argument(
        "--on-missing",
        choices=("fail", "skip"),
        default="fail",
        help="a missing wav or image: stop, or leave it out and count it",
    )
    parser.add_argument(
        "--on-bad-audio",
        choices=("fail", "skip"),
        default="fail",
        help="an unreadable, empty or non-16 kHz wav: stop, or leave it out and count it",
    )
    parser.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1), help="threads reading wav headers"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace this language's captions and manifests where they exist",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _split_mapping(args: argparse.Namespace, root: Path) -> tuple[str, dict[str, Path], list[str]]:
    """(layout name, split -> JSON file, notes for the user)."""
    from vgssl.prepare.spokencoco import default_split_files

    notes = []
    if args.splits:
        mapping: dict[str, Path] = {}
        for split, file in args.splits:
            if split in mapping:
                raise BadOptionError(f"--split {split}= is given twice ({mapping[split]} and {file})")
            mapping[split] = file if file.is_absolute() else root / file
        layout = "given"
    else:
        layout, mapping = default_split_files(root)
        if layout == "original":
            notes.append(
                f"{root} has no Karpathy split files: SpokenCOCO_train.json -> train, SpokenCOCO_val.json -> "
                "test (COCO 2014's own split; FaST-VGS uses the Karpathy split)"
            )
    if "valid" in mapping and args.valid_images:
        raise BadOptionError(
            "--valid-images holds training images out as the valid split, but a valid file "
            f"is mapped ({mapping['valid']}); use one or the other"
        )
    if "valid" not in mapping and not args.valid_images:
        notes.append(
            "no valid split is written: VGS+ training logs retrieval on captions_valid.json and "
            "`vgssl study` needs it; pass --valid-images N (e.g. 1000) or --split valid=FILE"
        )
    if args.valid_images and "train" not in mapping:
        raise BadOptionError("--valid-images holds out training images, but no train file is mapped")
    return layout, mapping, notes


def run(args: argparse.Namespace) -> int:
    from vgssl.locks import exclusive_lock
    from vgssl.prepare.card import claim_outputs, record_source
    from vgssl.prepare.spokencoco import SPLITS, check_files, hold_out, read_spokencoco, select_images
    from vgssl.prepare.spokencoco_write import (
        caption_manifest,
        merged_captions,
        refuse_existing_language,
        write_caption_files,
    )

    root, image_root, corpus = args.root.absolute(), args.images.absolute(), args.out.absolute()
    if not _LANGUAGE.match(args.language):
        raise BadOptionError(
            f"--language {args.language!r}: use letters, digits and '-' (e.g. en, fr, pt-BR)"
        )
    for name, path in (("ROOT", root), ("--images", image_root)):
        if not path.is_dir():
            raise BadOptionError(f"{name} {path} is not a directory")
    if args.valid_images < 0:
        raise BadOptionError(f"--valid-images must be 0 or more, got {args.valid_images}")
    audio_root = (args.audio_root or root).absolute()
    layout, mapping, notes = _split_mapping(args, root)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    splits = [split for split in SPLITS if split in mapping or (split == "valid" and args.valid_images)]
    manifests = [caption_manifest(args.language, split) for split in splits]
    # Refused before the (slow) file checks, and again under the lock before anything is written.
    claim_outputs(corpus, manifests, kind="spokencoco", overwrite=args.overwrite)
    refuse_existing_language(corpus, splits, language=args.language, overwrite=args.overwrite)

    limits = args.max_images or {}
    selected = {}
    for stream, split in enumerate(SPLITS):
        if split in mapping:
            images = read_spokencoco(mapping[split], audio_root=audio_root, image_root=image_root)
            limit = limits.get(split, limits.get("*"))
            selected[split] = select_images(images, max_images=limit, seed=args.seed, stream=stream)
    if args.valid_images:
        selected["train"], selected["valid"] = hold_out(selected["train"], args.valid_images, seed=args.seed)
    written, skipped = {}, {}
    for split in splits:
        check = check_files(
            selected[split],
            on_missing=args.on_missing,
            on_bad_audio=args.on_bad_audio,
            workers=args.workers,
            progress=not args.no_progress,
            description=f"{split}: checking wavs",
        )
        written[split], skipped[split] = check.images, check.skipped

    with exclusive_lock(corpus, job="prepare"):
        claim_outputs(corpus, manifests, kind="spokencoco", overwrite=args.overwrite)
        refuse_existing_language(corpus, splits, language=args.language, overwrite=args.overwrite)
        documents = merged_captions(corpus, written, language=args.language, uttid_prefix=args.uttid_prefix)
        wrote = write_caption_files(corpus, documents, written, language=args.language, audio_root=audio_root)
        options = {
            "images": str(image_root),
            "audio_root": str(audio_root),
            "language": args.language,
            "layout": layout,
            "splits": {split: str(file) for split, file in mapping.items()},
            "max_images": limits or None,
            "valid_images": args.valid_images,
            "seed": args.seed,
            "uttid_prefix": args.uttid_prefix,
            "on_missing": args.on_missing,
            "on_bad_audio": args.on_bad_audio,
            "skipped": skipped,
        }
        card = record_source(corpus, kind="spokencoco", root=root, options=options, wrote=wrote)
    for split in splits:
        captions = [caption for image in written[split] for caption in image.captions]
        hours = sum(caption.num_samples for caption in captions) / SAMPLE_RATE / 3600
        left_out = ", ".join(f"{count} {why}" for why, count in skipped[split].items() if count)
        source = mapping.get(split, f"{args.valid_images} images held out of train")
        print(
            f"{split}: {len(written[split])} images, {len(captions)} {args.language} captions, {hours:.2f} h "
            f"(from {source}){'; left out ' + left_out if left_out else ''}"
        )
    print(f"wrote {corpus}: captions {card['captions']}")
    return 0
