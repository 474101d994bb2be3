"""`vgssl check-images CAPTIONS.json [--image-features DIR]`: check a caption set's images or features."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

HELP = "check that every image of a caption JSON has a readable image file or precomputed features"
DESCRIPTION = """\
Read CAPTIONS.json (SpokenCOCO style) and report what training or retrieval would find: captions whose wav
is missing or unreadable, images whose file is missing or unreadable, and the image sizes (images of
another size than --image-size are resized when read). With --image-features DIR, check the precomputed
features instead: one feature array per image, all of one shape, of dimension --dim when given (layouts:
see vgssl.data.images). Exit status 0 when everything is usable, 1 when something is missing."""


if TYPE_CHECKING:
    from vgssl.data.captions import CaptionSet


def _languages(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("captions", metavar="CAPTIONS.json", type=Path, help="SpokenCOCO-style caption file")
    parser.add_argument(
        "--image-features", type=Path, default=None, help="precomputed image feature directory"
    )
    parser.add_argument(
        "--dim", type=int, default=None, help="expected feature dimension (grounding.feature_dim)"
    )
    parser.add_argument("--image-size", type=int, default=None, help="the model's image size, in pixels")
    parser.add_argument("--languages", type=_languages, default=None, help="caption languages to check")
    parser.add_argument("--language", default=None, help="language of captions without a 'lang' field")
    parser.add_argument("--audio-root", type=Path, default=None, help="wav paths' root (default: JSON's dir)")
    parser.add_argument(
        "--image-root", type=Path, default=None, help="image paths' root (default: JSON's dir)"
    )


def run(args: argparse.Namespace) -> int:
    from vgssl.data.captions import read_caption_set
    from vgssl.data.images import ImageFeatureStore, check_features

    caption_set = read_caption_set(
        args.captions,
        languages=args.languages,
        default_language=args.language,
        audio_root=args.audio_root,
        image_root=args.image_root,
        on_missing="skip",
        require_image_files=args.image_features is None,
    )
    print(caption_set.summary())
    problems = sum(caption_set.skipped.values()) + _check_wavs(caption_set)
    if args.image_features is not None:
        store = ImageFeatureStore(args.image_features, dim=args.dim)
        check = check_features(caption_set, store)
        print(
            f"features {args.image_features} ({store.layout} layout): {check.found} of {check.images} "
            f"images, shape per image {check.shape}"
        )
        if check.missing:
            print(f"  {len(check.missing)} images have no features, e.g. {', '.join(check.missing[:5])}")
        problems += len(check.missing)
    else:
        from PIL import Image, UnidentifiedImageError

        sizes: Counter[tuple[int, int]] = Counter()
        for image in caption_set.images:
            try:
                with Image.open(image.image) as opened:
                    sizes[opened.size] += 1
            except (OSError, UnidentifiedImageError) as error:
                print(f"  cannot read image {image.image} (entry {image.image_id}): {error}")
                problems += 1
        listed = ", ".join(f"{width}x{height}: {count}" for (width, height), count in sizes.most_common(5))
        print(f"image sizes: {listed or 'none'}")
        if args.image_size is not None:
            other = sum(count for size, count in sizes.items() if size != (args.image_size, args.image_size))
            print(f"  {other} images are not {args.image_size}x{args.image_size} and will be resized")
    print("ok" if problems == 0 else f"{problems} problem(s)")
    return 0 if problems == 0 else 1


def _check_wavs(caption_set: CaptionSet) -> int:
    """Open every caption's audio (its header: cheap); print and count the ones that cannot be read."""
    import soundfile

    unreadable = 0
    for caption in caption_set.captions:
        try:
            info = soundfile.info(str(caption.wav))
            if info.frames == 0:
                raise ValueError("it holds no samples")
        except Exception as error:  # soundfile raises several types for corrupt files
            print(f"  cannot read caption audio {caption.wav} (caption {caption.uttid}): {error}")
            unreadable += 1
    print(f"caption audio: {len(caption_set.captions) - unreadable} of {len(caption_set.captions)} readable")
    return unreadable
