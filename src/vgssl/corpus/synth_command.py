"""`vgssl synth OUT`: build the built-in multilingual spoken-caption corpus."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

HELP = "build the built-in multilingual spoken-caption corpus (speech, images, alignments, item files)"
DESCRIPTION = (
    HELP + ". Speech comes from espeak-ng with exact phone and word alignments; images are drawn scenes of "
    "shapes described by per-language caption grammars. See the README for the output layout."
)


def _languages(value: str) -> tuple[str, ...]:
    return tuple(code.strip() for code in value.split(",") if code.strip())


def _range(value: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (two numbers), got {value!r}") from None
    return low, high


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="output directory (must not exist or be empty)")
    parser.add_argument(
        "--langs", type=_languages, default=None, help="comma-separated language codes (en,fr)"
    )
    parser.add_argument("--hours", type=float, default=None, help="audio-only training speech per language")
    parser.add_argument("--test-minutes", type=float, default=None, help="test speech per language (ABX set)")
    parser.add_argument("--images", type=int, default=None, help="training images (valid/test added on top)")
    parser.add_argument("--test-images", type=int, default=None, help="held-out images for retrieval")
    parser.add_argument("--captions-per-image", type=int, default=None, help="spoken captions per language")
    parser.add_argument("--image-size", type=int, default=None, help="image side in pixels")
    parser.add_argument("--train-speakers", type=int, default=None, help="number of training speakers")
    parser.add_argument("--test-speakers", type=int, default=None, help="number of held-out test speakers")
    parser.add_argument("--seed", type=int, default=None, help="random seed (same seed: identical files)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="synthesis processes")
    parser.add_argument(
        "--clean",
        action="store_true",
        help="clean speech: no noise, reverb, speed, timbre or pause transforms",
    )
    parser.add_argument(
        "--acoustics",
        metavar="YAML",
        default=None,
        help="YAML of acoustics options overriding the realistic defaults (names as in corpus.json)",
    )
    parser.add_argument("--snr-db", type=_range, metavar="LOW,HIGH", help="additive-noise SNR range in dB")
    parser.add_argument("--rt60", type=_range, metavar="LOW,HIGH", help="reverberation time range in seconds")
    parser.add_argument("--speed", type=_range, metavar="LOW,HIGH", help="speed-perturbation factor range")
    parser.add_argument("--tiny", action="store_true", help="a preset that builds in seconds, for tests")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _acoustics_options(args: argparse.Namespace) -> object:
    """The acoustics section: the defaults, then the YAML file, then the range flags."""
    from vgssl.corpus.acoustics import AcousticsConfig
    from vgssl.errors import BadOptionError

    overrides: dict[str, object] = {}
    if args.acoustics is not None:
        import yaml

        try:
            loaded = yaml.safe_load(Path(args.acoustics).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise BadOptionError(f"--acoustics {args.acoustics}: cannot read it as YAML: {error}") from None
        if not isinstance(loaded, dict):
            raise BadOptionError(f"--acoustics {args.acoustics}: expected a mapping of option: value")
        overrides.update(loaded)
    flags = {"snr_db_range": args.snr_db, "rt60_s_range": args.rt60, "speed_factor_range": args.speed}
    overrides.update({key: value for key, value in flags.items() if value is not None})
    return AcousticsConfig(**overrides) if overrides else None


def run(args: argparse.Namespace) -> int:
    from vgssl.corpus.build import build_corpus
    from vgssl.corpus.card import format_card
    from vgssl.corpus.spec import make_spec
    from vgssl.errors import BadOptionError

    if args.workers < 1:
        raise BadOptionError(f"--workers must be at least 1, got {args.workers}")
    acoustics = _acoustics_options(args)
    spec = make_spec(
        tiny=args.tiny,
        languages=args.langs,
        hours=args.hours,
        test_minutes=args.test_minutes,
        images=args.images,
        test_images=args.test_images,
        captions_per_image=args.captions_per_image,
        image_size=args.image_size,
        train_speakers=args.train_speakers,
        test_speakers=args.test_speakers,
        seed=args.seed,
        clean=args.clean or None,
        acoustics=acoustics,
    )
    command = shlex.join(["vgssl", "synth", *sys.argv[2:]]) if len(sys.argv) > 1 else "vgssl synth"
    card = build_corpus(
        spec,
        args.out,
        workers=args.workers,
        overwrite=args.overwrite,
        command=command,
        progress=not args.no_progress,
    )
    print(format_card(card))
    return 0
