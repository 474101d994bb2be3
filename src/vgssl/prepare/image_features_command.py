"""`vgssl image-features CAPTIONS.json... --model DIR --out DIR`: frozen image features from a local model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from vgssl.errors import BadOptionError

if TYPE_CHECKING:
    from vgssl.prepare.vision_features import VisionEncoder

HELP = "pooled and patch-level features of every image of caption JSONs, from a local transformers model"
DESCRIPTION = """\
Encode every image of one or more caption JSONs (SpokenCOCO style: train, valid and test together, so one
directory serves a whole run) with a LOCAL transformers vision checkpoint (CLIP vision tower or CLIPModel,
DINOv2, ViT, ResNet; the directory save_pretrained wrote, with the image processor's
preprocessor_config.json; nothing is downloaded). Writes OUT/features.npy + OUT/index.txt (pooled: the
model's pooler output, or the mean of its patch tokens), OUT/regions/features.npy + index.txt (the patch
tokens of the last hidden state, or a CNN's last map) and OUT/encoder.json (model, weights' SHA-256, dims,
pooling, dtype, image count) — the layout `grounding.image_input: features` reads
(`grounding.feature_dim` and `captions.image_features` are in the card's "config"). Work goes to
OUT/.partial in chunks: an interrupted run continues when re-run with the same command."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("captions", metavar="CAPTIONS.json", type=Path, nargs="+", help="caption JSON files")
    parser.add_argument(
        "--model", metavar="DIR", type=Path, required=True, help="local transformers checkpoint"
    )
    parser.add_argument("--out", metavar="DIR", type=Path, required=True, help="feature directory to write")
    parser.add_argument(
        "--image-root", type=Path, default=None, help="where image paths start; None: each JSON's directory"
    )
    parser.add_argument(
        "--pooling",
        choices=("auto", "pooler", "mean", "cls"),
        default="auto",
        help="pooled features: the pooler output (auto when the model has one), the patch mean or CLS",
    )
    parser.add_argument(
        "--region-grid",
        type=int,
        default=None,
        metavar="G",
        help="average-pool the patch tokens to G x G regions; None: every patch",
    )
    parser.add_argument("--no-regions", action="store_true", help="write the pooled features only")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="stored precision")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    parser.add_argument("--chunk-size", type=int, default=2048, help="images per resumable chunk")
    parser.add_argument("--workers", type=int, default=0, help="processes decoding and preprocessing images")
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the model runs"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing features in OUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _device(choice: str) -> str:
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise BadOptionError("--device cuda: torch sees no CUDA device here; use --device cpu or auto")
    return choice


def _load_encoder(args: argparse.Namespace, model_dir: Path) -> VisionEncoder:
    """The encoder; with --no-progress, without transformers' weight-loading progress bar."""
    from transformers.utils import logging as hf_logging

    from vgssl.prepare.vision_features import VisionEncoder

    bar = hf_logging.is_progress_bar_enabled()
    if args.no_progress:
        hf_logging.disable_progress_bar()
    try:
        return VisionEncoder(
            model_dir, device=_device(args.device), pooling=args.pooling, region_grid=args.region_grid
        )
    finally:
        if bar:
            hf_logging.enable_progress_bar()


def run(args: argparse.Namespace) -> int:
    from vgssl.locks import exclusive_lock
    from vgssl.prepare.feature_chunks import FeatureOptions, write_image_features
    from vgssl.prepare.vision_features import collect_images

    for name in ("batch_size", "chunk_size"):
        if getattr(args, name) < 1:
            raise BadOptionError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.workers < 0:
        raise BadOptionError(f"--workers must be 0 or more, got {args.workers}")
    if args.region_grid is not None and (args.region_grid < 1 or args.no_regions):
        raise BadOptionError("--region-grid needs a positive G and regions (leave out --no-regions)")
    model_dir = args.model.absolute()
    if not model_dir.is_dir():
        raise BadOptionError(f"--model {model_dir} is not a directory (a local transformers checkpoint)")
    out = args.out.absolute()
    records = collect_images(args.captions, image_root=args.image_root)
    if not records:
        raise BadOptionError(f"{', '.join(map(str, args.captions))} list no images")
    options = FeatureOptions(
        pooling=args.pooling,
        regions=not args.no_regions,
        region_grid=args.region_grid,
        dtype=args.dtype,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        workers=args.workers,
    )
    encoder = _load_encoder(args, model_dir)
    with exclusive_lock(out, job="image-features"):
        card = write_image_features(
            records,
            encoder,
            out,
            options=options,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            sources=args.captions,
        )
    regions = card["regions"]
    print(
        f"wrote {card['images']} images' features to {out}: pooled {card['pooled']['shape']} "
        f"({card['pooled']['pooling']}){f', regions {regions["shape"]}' if regions else ''}, {card['dtype']}"
    )
    print(
        f"train with grounding.image_input: features, grounding.feature_dim: {card['feature_dim']}, "
        f"captions.image_features: {out}"
    )
    return 0
