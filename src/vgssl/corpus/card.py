"""The corpus card, `corpus.json`: what a corpus holds and how it was made. Readers check it first.

It is written last, so its presence is the completion marker of a build. Everything except the `build`
block is a deterministic function of the corpus spec (two builds with one seed give identical cards but for
`build`, which holds the command line and wall time).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgssl import __version__
from vgssl.audio.frames import FRAME_RATE
from vgssl.errors import VgsslError

if TYPE_CHECKING:
    from vgssl.corpus.plan import CorpusPlan
    from vgssl.corpus.utterance import UtteranceRecord

CARD_NAME = "corpus.json"
CARD_FORMAT = "vgssl-corpus-v1"


class IncompleteCorpusError(VgsslError):
    """A corpus directory has no card: it was never built, or its build was interrupted."""


@dataclass(frozen=True)
class ItemCounts:
    """How many items a build wrote: phone items per split, language and flavour; language-ABX segments."""

    phone: dict[str, dict[str, dict[str, int]]]  # split ("valid", "test") -> language -> flavour -> items
    language_segments: int


def read_card(corpus: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(corpus) / CARD_NAME
    if not path.is_file():
        raise IncompleteCorpusError(
            f"{corpus} has no {CARD_NAME}: it is not a finished vgssl corpus (an interrupted build leaves "
            f"none). Build it with `vgssl synth {corpus} --overwrite`."
        )
    card = json.loads(path.read_text(encoding="utf-8"))
    if card.get("format") != CARD_FORMAT:
        raise IncompleteCorpusError(f"{path} is not a {CARD_FORMAT} card (format={card.get('format')!r})")
    return card


def _hours(records: list[UtteranceRecord], **match: str) -> float:
    samples = sum(
        r.num_samples for r in records if all(getattr(r.job, key) == value for key, value in match.items())
    )
    return round(samples / 16_000 / 3600, 4)


def make_card(
    plan: CorpusPlan,
    records: list[UtteranceRecord],
    item_counts: ItemCounts,
    build_info: dict[str, Any],
) -> dict[str, Any]:
    spec = plan.spec
    languages = {}
    for language in spec.languages:
        mine = [r for r in records if r.job.language == language]
        phones = Counter(s.label for r in mine for s in r.alignment.phones if s.label != "SIL")
        speech = {split: _hours(mine, split=split, kind="speech") for split in ("train", "valid", "test")}
        captions = {split: _hours(mine, split=split, kind="caption") for split in ("train", "valid", "test")}
        languages[language] = {
            "espeak_voice": mine[0].job.espeak_language,
            "hours": {"speech": speech, "captions": captions},
            "utterances": dict(Counter(f"{r.job.kind}/{r.job.split}" for r in mine)),
            "grounded_fraction_of_train_audio": round(
                captions["train"] / (captions["train"] + speech["train"]), 4
            ),
            "phones": sorted(phones),
            # Speakers of the audio-only speech: across-speaker ABX needs several in a split.
            "speech_speakers": {
                split: len({r.job.speaker.id for r in mine if (r.job.split, r.job.kind) == (split, "speech")})
                for split in ("train", "valid", "test")
            },
            "items": item_counts.phone["test"][language],
            "valid_items": item_counts.phone["valid"][language],
        }
    return {
        "format": CARD_FORMAT,
        "complete": True,
        "vgssl_version": __version__,
        "seed": spec.seed,
        "spec": spec.model_dump(mode="json"),
        "languages": languages,
        "speakers": {
            "train": [asdict(s) for s in plan.train_speakers],
            "test": [asdict(s) for s in plan.test_speakers],
        },
        "images": dict(Counter(image.split for image in plan.images)),
        "language_items": {"segments": item_counts.language_segments},
        "sample_rate": 16_000,
        "frame_convention": {
            "frame_rate": FRAME_RATE,
            "frame_centre_seconds": "0.01 + 0.02 * i",
            "frames_per_file": "floor((num_samples - 400) / 320) + 1",
            "item_rule": "an item holds at least one frame centre inside [onset, offset] and inside the file",
        },
        "layout": {
            "audio": "audio/{lang}/{split}/{uttid}.wav",
            "manifests": "manifests/{lang}_{split}.tsv (speech), manifests/{lang}_{split}_captions.tsv",
            "captions": "captions_{split}.json (SpokenCOCO style, paths relative to the corpus)",
            "alignments": "alignments/{lang}_{split}.jsonl",
            "items": "items/{lang}_{valid,test}_{phoneme,triphone}.item, items/test_language.item",
        },
        "build": build_info,
    }


def _valid_items(info: dict[str, Any]) -> str:
    """The valid items of a card's language, for the summary (cards of older builds have none)."""
    valid = info.get("valid_items")
    if valid is None:
        return "; no valid items"
    speakers = info.get("speech_speakers", {}).get("valid")
    by = f" from {speakers} speaker(s)" if speakers is not None else ""
    return f"; valid items {valid['phoneme']} phoneme / {valid['triphone']} triphone{by}"


def format_card(card: dict[str, Any]) -> str:
    """A short human-readable summary of a card."""
    spec = card["spec"]
    speakers = card["speakers"]
    lines = [
        f"vgssl corpus (seed {card['seed']}, vgssl {card['vgssl_version']})",
        f"  speakers: {len(speakers['train'])} train, {len(speakers['test'])} test (disjoint)",
        "  images: " + ", ".join(f"{split} {n}" for split, n in card["images"].items()),
        f"  captions per image and language: {spec['captions_per_image']}",
    ]
    for language, info in card["languages"].items():
        speech, captions = info["hours"]["speech"], info["hours"]["captions"]
        lines.append(
            f"  [{language}] voice {info['espeak_voice']}, {len(info['phones'])} phones; speech h "
            f"train {speech['train']:.3f} valid {speech['valid']:.3f} test {speech['test']:.3f}; caption h "
            f"train {captions['train']:.3f}; grounded {100 * info['grounded_fraction_of_train_audio']:.0f} % "
            f"of train audio; test items {info['items']['phoneme']} phoneme / {info['items']['triphone']} "
            "triphone" + _valid_items(info)
        )
    lines.append(f"  language-ABX segments: {card['language_items']['segments']}")
    for language, scores in card.get("difficulty", {}).items():
        if isinstance(scores, dict):
            cells = ", ".join(f"{name.replace('_', ' ')} {value:.2f} %" for name, value in scores.items())
            lines.append(f"  [{language}] MFCC-39 phone ABX: {cells}")
    if "image_features" in card:
        features = card["image_features"]
        lines.append(
            f"  image features: {features['path']}/ ({features['feature_dim']}-d pooled, regions "
            f"{features['regions_shape']}), held-out description accuracy "
            f"{100 * features['heldout_description_accuracy']:.1f} % of the pretrained encoder"
        )
    build = card.get("build", {})
    if "wall_seconds" in build:
        lines.append(f"  built in {build['wall_seconds']} s with {build['workers']} worker(s)")
    return "\n".join(lines)
