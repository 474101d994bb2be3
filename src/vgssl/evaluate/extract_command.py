"""`vgssl extract MODEL SOURCE OUT`: layer-wise features at 50 Hz, one (T, D) tensor per file and layer."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from vgssl.errors import BadOptionError, OutputExistsError, VgsslError

if TYPE_CHECKING:
    from vgssl.audio.lengths import Utterance

HELP = "extract layer-wise features (50 Hz) from a model or an MFCC/fbank baseline"
DESCRIPTION = """\
Extract features for every audio file of SOURCE (a fairseq manifest or a ZeroSpeech item file) and
write OUT/<layer>/<key>.pt, a float32 (T, D) tensor per file, plus OUT/features.json describing the
model, the layers and the frame convention (T = floor((N - 400) / 320) + 1 frames; frame i at
0.01 + 0.02 i s). MODEL is mfcc (39-d, normalised per utterance), mfcc-raw, fbank (80 log-mel), a vgssl
checkpoint or run directory, or a local transformers wav2vec2/HuBERT directory. Existing outputs are
skipped unless --overwrite, so an interrupted extraction resumes where it stopped."""

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


class MissingAudioError(VgsslError):
    """Files named by an item file cannot be found under the audio root."""


class ModelMismatchError(VgsslError):
    """OUT already holds features of another model."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", metavar="MODEL", help="mfcc, mfcc-raw, fbank, a vgssl checkpoint/run dir or a HF dir"
    )
    parser.add_argument(
        "source", metavar="SOURCE", type=Path, help="a manifest (.tsv) or an item file (.item)"
    )
    parser.add_argument("out", metavar="OUT", type=Path, help="output directory")
    parser.add_argument("--layers", default="all", help="'all' or comma-separated layer indices, e.g. 0,3,5")
    parser.add_argument("--overwrite", action="store_true", help="recompute existing feature files")
    parser.add_argument(
        "--batch-seconds", type=float, default=60.0, help="padded audio per batch, in seconds"
    )
    parser.add_argument("--device", default="auto", help="torch device; auto = cuda when available, else cpu")
    parser.add_argument(
        "--audio-root",
        type=Path,
        default=None,
        help="where an item file's #file keys are found (default: the corpus audio/ next to its items/)",
    )


def read_source(source: Path, *, audio_root: Path | None) -> list[Utterance]:
    """The utterances of a manifest, or of the files an item file names (each once)."""
    from vgssl.data.items import is_item_file, item_keys
    from vgssl.data.manifest import read_manifest
    from vgssl.evaluate.features import SAMPLE_RATE, Utterance

    if not source.is_file():
        raise BadOptionError(
            f"SOURCE {source} does not exist; give a manifest (.tsv) or an item file (.item)"
        )
    if not is_item_file(source):
        manifest = read_manifest(source)
        return [Utterance(e.key, manifest.audio_path(e), e.num_samples) for e in manifest.entries]

    import soundfile

    root = audio_root or source.resolve().parent.parent / "audio"
    keys = sorted(item_keys(source))
    utterances, missing = [], []
    for key in keys:
        path = next(
            (root / f"{key}{ext}" for ext in AUDIO_EXTENSIONS if (root / f"{key}{ext}").is_file()), None
        )
        if path is None:
            missing.append(key)
            continue
        info = soundfile.info(str(path))
        utterances.append(Utterance(key, path, round(info.frames * SAMPLE_RATE / info.samplerate)))
    if missing:
        raise MissingAudioError(
            f"{len(missing)} of {len(keys)} files named in {source} have no audio under {root} "
            f"(tried {', '.join(AUDIO_EXTENSIONS)}), e.g. {', '.join(missing[:5])}; pass --audio-root"
        )
    _check_items_inside_audio(source, {u.key: u for u in utterances})
    return utterances


def _check_items_inside_audio(source: Path, utterances: dict[str, Utterance]) -> None:
    """Refuse items that end past their file (by more than half a frame), naming the first lines: `abx`
    would otherwise find no frames there and blame the features."""
    from vgssl.audio.frames import FRAME_SHIFT, SAMPLE_RATE
    from vgssl.data.items import ItemFileError, read_item_file

    item_file = read_item_file(source, columns=("#file", "onset", "offset"))
    at_file, at_offset = item_file.header.index("#file"), item_file.header.index("offset")
    outside = []
    for number, fields in item_file.rows():
        utterance = utterances[fields[at_file]]
        seconds = utterance.num_samples / SAMPLE_RATE
        if float(fields[at_offset]) > seconds + FRAME_SHIFT / 2:
            outside.append(f"{source}:{number}: item of {fields[at_file]} ends at {fields[at_offset]} s, "
                           f"but {utterance.path} lasts {seconds:.3f} s")  # fmt: skip
    if outside:
        raise ItemFileError(
            f"{len(outside)} item(s) end past their audio; the first: "
            + "; ".join(outside[:3])
            + ". Check the item file's times (seconds) and its --audio-root"
        )


def _check_same_model(out: Path, card: dict, *, overwrite: bool) -> list[int]:
    """Layers already recorded for this model in OUT; refuse to mix models in one directory.

    With `overwrite`, the features of another model are removed whole (every layer directory), so that OUT
    never holds layers of two models under one card.
    """
    from vgssl.evaluate.features import read_features_card

    previous = read_features_card(out)
    if previous is None:
        return []
    if previous.get("model") != card["model"]:
        if overwrite:
            for layer_dir in [p for p in out.iterdir() if p.is_dir() and p.name.isdigit()]:
                shutil.rmtree(layer_dir)
            return []
        raise ModelMismatchError(
            f"{out} holds features of {_summary(previous.get('model'))}, not of {_summary(card['model'])}; "
            f"choose another OUT or pass --overwrite (which replaces them all)"
        )
    return list(previous.get("layers", []))


def _summary(model: object) -> str:
    """A model description for a message: a checkpoint by its file, step and hash, anything else as is."""
    if isinstance(model, dict) and isinstance(model.get("checkpoint"), dict):
        checkpoint = model["checkpoint"]
        return (
            f"checkpoint {checkpoint['file']} (step {checkpoint['step']}, sha256 {checkpoint['sha256'][:12]})"
        )
    return str(model)


def run(args: argparse.Namespace) -> int:
    from vgssl.atomic import atomic_write_json
    from vgssl.evaluate.features import (
        extract_features,
        features_card,
        load_feature_model,
        parse_layers,
        resolve_device,
    )

    if args.batch_seconds <= 0:
        raise BadOptionError(f"--batch-seconds must be positive, got {args.batch_seconds}")
    if args.out.exists() and not args.out.is_dir():
        raise OutputExistsError(f"OUT {args.out} exists and is not a directory")
    device = resolve_device(args.device)
    utterances = read_source(args.source, audio_root=args.audio_root)
    if not utterances:
        raise BadOptionError(f"SOURCE {args.source} lists no audio (a header only?); nothing to extract")
    model = load_feature_model(args.model)
    layers = parse_layers(args.layers, range(model.num_layers()))
    card = features_card(model, layers=layers, source=args.source)
    card["layers"] = sorted(set(layers) | set(_check_same_model(args.out, card, overwrite=args.overwrite)))
    atomic_write_json(args.out / "features.json", card)
    start = time.perf_counter()
    report = extract_features(
        model, utterances, args.out, layers=layers, overwrite=args.overwrite,
        batch_seconds=args.batch_seconds, device=device,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    speed = f", {report.audio_seconds / elapsed:.0f}x real time" if report.written else ""
    print(
        f"wrote {report.written} files x {len(layers)} layers to {args.out} "
        f"({report.skipped} already there){speed}"
    )
    return 0
