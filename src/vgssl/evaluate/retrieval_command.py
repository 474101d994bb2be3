"""`vgssl retrieval CKPT CAPTIONS.json --out R.json`: speech–image retrieval Recall@1/5/10 per language."""

from __future__ import annotations

import argparse
from pathlib import Path

from vgssl.errors import BadOptionError, OutputExistsError

HELP = "speech->image and image->speech retrieval Recall@1/5/10 per language of a VGS+ model"
DESCRIPTION = """\
Embed every spoken caption and every image of CAPTIONS.json (SpokenCOCO style) with the VGS+ model CKPT (a
checkpoint or a run directory: its best checkpoint, else its last) and write R.json: Recall@1/5/10 in %
in both directions for each caption language (an image matches any of its captions), over all languages
pooled, and the chance level of each number. Models trained on precomputed image features need
--image-features, a directory in the layout documented in vgssl.data.images."""


def _languages(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="VGS+ checkpoint .pt file or run directory")
    parser.add_argument("captions", metavar="CAPTIONS.json", type=Path, help="SpokenCOCO-style caption file")
    parser.add_argument("--out", type=Path, required=True, help="result JSON")
    parser.add_argument(
        "--languages", type=_languages, default=None, help="comma-separated caption languages (default: all)"
    )
    parser.add_argument(
        "--language", default=None, help="language of captions without a 'lang' field (real SpokenCOCO: en)"
    )
    parser.add_argument("--audio-root", type=Path, default=None, help="wav paths' root (default: JSON's dir)")
    parser.add_argument(
        "--image-root", type=Path, default=None, help="image paths' root (default: JSON's dir)"
    )
    parser.add_argument(
        "--image-features", type=Path, default=None, help="precomputed image features (feature models only)"
    )
    parser.add_argument(
        "--on-missing",
        choices=("fail", "skip"),
        default="fail",
        help="a caption whose wav or image is missing: stop, or skip it and count it",
    )
    parser.add_argument("--batch-seconds", type=float, default=60.0, help="padded audio per batch, seconds")
    parser.add_argument("--device", default="auto", help="torch device; auto = cuda when available, else cpu")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing R.json")


def run(args: argparse.Namespace) -> int:
    from vgssl.atomic import atomic_write_json
    from vgssl.data.captions import read_caption_set
    from vgssl.data.images import ImageFeatureStore, PixelImages
    from vgssl.evaluate.features import resolve_device
    from vgssl.model.pretrained import find_checkpoint
    from vgssl.model.retrieval import METHOD, RETRIEVAL_FORMAT, embed_caption_set, retrieval_scores
    from vgssl.model.vgs import load_vgs_model

    if args.out.suffix != ".json":
        raise BadOptionError(f"--out {args.out} must end in .json")
    if args.out.exists() and not args.overwrite:
        raise OutputExistsError(f"{args.out} exists; pass --overwrite to replace it")
    if args.batch_seconds <= 0:
        raise BadOptionError(f"--batch-seconds must be positive, got {args.batch_seconds}")
    device = resolve_device(args.device)
    checkpoint = find_checkpoint(args.checkpoint)
    model = load_vgs_model(checkpoint, map_location=device)
    grounding = model.grounding_config
    if grounding.image_input == "features":
        if args.image_features is None:
            raise BadOptionError(
                f"{checkpoint} was trained on precomputed image features ({grounding.feature_dim}-d): "
                "pass --image-features DIR"
            )
        image_source = ImageFeatureStore(args.image_features, dim=grounding.feature_dim)
    else:
        if args.image_features is not None:
            raise BadOptionError(f"{checkpoint} reads image pixels; drop --image-features")
        image_source = PixelImages(grounding.image_size)
    caption_set = read_caption_set(
        args.captions,
        languages=args.languages,
        default_language=args.language,
        audio_root=args.audio_root,
        image_root=args.image_root,
        on_missing=args.on_missing,
        require_image_files=grounding.image_input == "pixels",
    )
    if not caption_set.images:
        raise BadOptionError(f"{args.captions} has no caption in languages {args.languages}")
    embeddings = embed_caption_set(
        model, caption_set, image_source, device=device, batch_seconds=args.batch_seconds
    )
    scores = retrieval_scores(embeddings)
    atomic_write_json(
        args.out,
        {
            "format": RETRIEVAL_FORMAT,
            "checkpoint": str(checkpoint.resolve()),
            "captions": str(args.captions.resolve()),
            "image_input": grounding.image_input,
            "tap_layer": model.tap_layer,
            "method": METHOD,
            "skipped": caption_set.skipped,
            "languages": scores,
        },
    )
    for name, score in scores.items():
        cells = "  ".join(
            f"{direction.replace('_to_', '->')} "
            + " ".join(
                f"{k} {value:5.1f} (chance {score['chance'][direction][k]:4.1f})"
                for k, value in score[direction].items()
            )
            for direction in ("speech_to_image", "image_to_speech")
        )
        print(f"{name:>4} ({score['captions']} captions, {score['images']} images)  {cells}")
    print(f"wrote {args.out}")
    return 0
