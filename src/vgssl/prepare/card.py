"""The card of a prepared corpus, `corpus.json`: every source that wrote into it, and what it holds now.

Several `vgssl prepare` commands write into one corpus directory (English from LibriSpeech, French from MLS,
captions from SpokenCOCO). Each claims the files it is about to write (`claim_outputs`: a file another
source wrote is refused without `overwrite`), writes them atomically, then calls `record_source`, which
re-counts everything under the corpus from the files themselves (manifests, caption JSON, item files) and
rewrites the card. Counting from the files, not from what each command says it wrote, keeps the card true
whatever order the commands ran in. Both run under the corpus's directory lock, so two `prepare` commands
on one corpus cannot interleave.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from vgssl import __version__
from vgssl.atomic import atomic_write_json
from vgssl.audio.frames import SAMPLE_RATE
from vgssl.data.items import read_item_file
from vgssl.data.manifest import read_manifest
from vgssl.errors import VgsslError

CARD_NAME = "corpus.json"
PREPARED_FORMAT = "vgssl-prepared-corpus-v1"
SPLITS = ("train", "valid", "test")
_MANIFEST = re.compile(r"^(?P<lang>[A-Za-z0-9-]+)_(?P<split>train|valid|test)(?P<captions>_captions)?\.tsv$")


class PreparedCorpusError(VgsslError):
    """A prepared corpus cannot be written: a file another source wrote, or a card that is not ours."""


def read_prepared_card(corpus: Path) -> dict[str, Any] | None:
    """The corpus's prepared card, None if it has none; a card of another kind is an error."""
    path = corpus / CARD_NAME
    if not path.is_file():
        return None
    card = json.loads(path.read_text(encoding="utf-8"))
    if card.get("format") != PREPARED_FORMAT:
        raise PreparedCorpusError(
            f"{path} is a {card.get('format')!r} card, not a prepared corpus's ({PREPARED_FORMAT}): "
            "`vgssl prepare` writes only into an empty directory or a corpus it prepared; choose another "
            "--out"
        )
    return card


def claim_outputs(corpus: Path, outputs: list[str], *, kind: str, overwrite: bool) -> None:
    """Refuse to write `outputs` (paths relative to the corpus) where a file exists, unless `overwrite`.

    The message names the source that wrote the file, from the card."""
    card = read_prepared_card(corpus)
    writers = {path: source["kind"] for source in (card or {}).get("sources", []) for path in source["wrote"]}
    existing = [path for path in outputs if (corpus / path).exists()]
    if existing and not overwrite:
        shown = ", ".join(f"{path} (written by {writers.get(path, 'another tool')})" for path in existing[:5])
        more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
        raise PreparedCorpusError(
            f"`prepare {kind}` would overwrite {shown}{more} in {corpus}; pass --overwrite to replace them, "
            "or write this source under other names (e.g. another --language code or --split mapping)"
        )


def record_source(corpus: Path, *, kind: str, root: Path, options: dict[str, Any], wrote: list[str]) -> dict:
    """Add one source to the card (replacing an earlier run that wrote any of the same files), re-count the
    corpus and write the card atomically. Returns the card."""
    card = read_prepared_card(corpus) or {"sources": []}
    kept = [source for source in card["sources"] if not set(source["wrote"]) & set(wrote)]
    source = {
        "kind": kind,
        "root": str(root),
        "options": options,
        "wrote": sorted(wrote),
        "command": sys.argv,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    card = {
        "format": PREPARED_FORMAT,
        "vgssl_version": __version__,
        "sample_rate": SAMPLE_RATE,
        "sources": [*kept, source],
        **count_corpus(corpus),
    }
    atomic_write_json(corpus / CARD_NAME, card)
    return card


def count_corpus(corpus: Path) -> dict[str, Any]:
    """What the corpus's files hold: per language and split, utterances, hours and speakers of the speech and
    caption manifests; images and captions per caption file; rows per item file. `languages` are those with
    a train manifest (what a study trains on)."""
    languages: dict[str, Any] = defaultdict(lambda: {"speech": {}, "captions": {}})
    for path in sorted((corpus / "manifests").glob("*.tsv")):
        match = _MANIFEST.match(path.name)
        if match is None:
            continue
        manifest = read_manifest(path, language=match["lang"])
        speakers = {entry.speaker for entry in manifest.entries if entry.speaker}
        kind = "captions" if match["captions"] else "speech"
        languages[match["lang"]][kind][match["split"]] = {
            "utterances": len(manifest),
            "hours": round(sum(entry.num_samples for entry in manifest.entries) / SAMPLE_RATE / 3600, 4),
            "speakers": len(speakers),
        }
    captions = {}
    for split in SPLITS:
        path = corpus / f"captions_{split}.json"
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))["data"]
            per_language: dict[str, int] = defaultdict(int)
            for entry in data:
                for caption in entry["captions"]:
                    per_language[caption.get("lang", "?")] += 1
            captions[split] = {"images": len(data), "captions": dict(sorted(per_language.items()))}
    items = {}
    for path in sorted((corpus / "items").glob("*.item")):
        items[path.name] = sum(1 for _ in read_item_file(path).rows())
    return {
        "languages": sorted(lang for lang, info in languages.items() if "train" in info["speech"]),
        "audio": dict(sorted(languages.items())),
        "captions": captions,
        "items": items,
    }
