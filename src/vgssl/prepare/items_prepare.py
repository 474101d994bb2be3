"""What `vgssl prepare items` does in each mode: read, check, then write under the corpus's lock.

Each function claims its outputs in the corpus card (`vgssl.prepare.card`; a file another source wrote is
refused without `overwrite`), writes them atomically, and records itself, all while holding the corpus's
directory lock, so two `prepare` commands on one corpus cannot interleave.
"""

from __future__ import annotations

import os
import random
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vgssl.atomic import atomic_write_bytes
from vgssl.data.alignments import SILENCE, write_alignments
from vgssl.data.items import (
    LANGUAGE_HEADER,
    LANGUAGE_ITEM_FILE,
    PHONE_FLAVOURS,
    PHONE_HEADER,
    phone_item_file,
    write_item_file,
)
from vgssl.data.manifest import ManifestEntry, read_manifest, write_manifest
from vgssl.errors import BadOptionError, VgsslError
from vgssl.locks import exclusive_lock
from vgssl.prepare.alignment_readers import (
    LabelRules,
    NormaliseCounts,
    RawAlignment,
    find_textgrids,
    normalise,
    read_ctm,
    read_textgrid,
)
from vgssl.prepare.card import claim_outputs, read_prepared_card, record_source
from vgssl.prepare.item_import import ImportedItems, import_items
from vgssl.prepare.language_items import (
    LanguageItemsError,
    SegmentRules,
    balance,
    check_languages,
    segment_rows,
    speaker_notes,
)
from vgssl.prepare.phone_items import (
    AlignedUtterance,
    fit_to_audio,
    match_alignments,
    phone_item_rows,
    speaker_of,
)

_LANGUAGE_CODE = re.compile(r"^[A-Za-z0-9-]+$")
_MANIFEST_LANGUAGE = re.compile(r"^(?P<lang>[A-Za-z0-9-]+)_(?:train|valid|test)\.tsv$")
IMPORT_KIND = "items import"


class NoItemsError(VgsslError):
    """The inputs hold no item that can be written."""


class ManifestLacksAudioError(VgsslError):
    """The corpus already has a manifest of this language and split, without some files the items name."""


@dataclass
class Summary:
    lines: list[str]
    notes: list[str] = field(default_factory=list)
    wrote: list[str] = field(default_factory=list)


def _check_language(language: str) -> None:
    if not _LANGUAGE_CODE.match(language):
        raise BadOptionError(
            f"language code {language!r} cannot name an item file ({language}_test_triphone.item): use "
            "letters, digits and '-' only, e.g. en or pt-BR"
        )


def language_item_name(split: str) -> str:
    return LANGUAGE_ITEM_FILE if split == "test" else f"{split}_language.item"


def prepare_phone_items(
    manifest_path: Path,
    *,
    corpus: Path,
    textgrids: Path | None,
    ctm: Path | None,
    language: str,
    split: str,
    phone_tier: str,
    word_tier: str,
    rules: LabelRules,
    brief_pause: float,
    tolerance: float,
    overwrite: bool,
    progress: bool,
) -> Summary:
    """Phone item files (phoneme, triphone) and the alignments JSONL of one manifest's aligned audio."""
    from tqdm import tqdm

    if (textgrids is None) == (ctm is None):
        raise BadOptionError("give the alignments as exactly one of --textgrids DIR and --ctm FILE")
    _check_language(language)
    manifest = read_manifest(manifest_path, language=language)
    items = {flavour: f"items/{phone_item_file(language, split, flavour)}" for flavour in PHONE_FLAVOURS}
    alignments_file = f"alignments/{language}_{split}.jsonl"
    wrote = [*items.values(), alignments_file]
    source = textgrids if textgrids is not None else ctm
    assert source is not None
    with exclusive_lock(corpus, job="prepare"):
        claim_outputs(corpus, wrote, kind="items phones", overwrite=overwrite)
        raws: list[RawAlignment]
        if textgrids is not None:
            paths = find_textgrids(textgrids)
            bar = tqdm(
                paths, desc="TextGrids", unit="file", disable=not progress, file=sys.stderr, leave=False
            )
            raws = [
                read_textgrid(p, directory=textgrids, phone_tier=phone_tier, word_tier=word_tier) for p in bar
            ]
        else:
            raws = read_ctm(source)
        matching = match_alignments(manifest, raws, source=str(source))
        counts = NormaliseCounts()
        utterances, records = [], []
        bar = tqdm(matching.matched, desc="alignments", unit="utt", disable=not progress, file=sys.stderr)
        for entry, raw in bar:
            where = f"{raw.source} ({raw.utterance})"
            alignment = fit_to_audio(
                normalise(raw, rules, counts), num_samples=entry.num_samples, tolerance=tolerance, where=where
            )
            speaker = speaker_of(entry, manifest)
            utterances.append(AlignedUtterance(entry.key, speaker, entry.num_samples, alignment, where))
            records.append({
                "uttid": os.path.basename(entry.key), "key": entry.key,
                "wav": str(manifest.audio_path(entry)), "lang": language, "speaker": speaker,
                "num_samples": entry.num_samples, "sample_rate": 16000,
                "source": str(raw.source), **alignment.to_json(),
            })  # fmt: skip
        rows = {f: phone_item_rows(utterances, flavour=f, brief_pause=brief_pause) for f in PHONE_FLAVOURS}
        if not rows["phoneme"]:
            raise NoItemsError(
                f"the {len(utterances)} matched alignments of {source} give no phone item (an item needs a "
                "non-silent phone between two non-silent phones, over a 50 Hz frame time); are the phone "
                f"labels all silences? labels seen: {', '.join(sorted(counts.labels)[:10]) or 'none'}"
            )
        written = {f: write_item_file(corpus / items[f], PHONE_HEADER, rows[f]) for f in PHONE_FLAVOURS}
        write_alignments(corpus / alignments_file, records)
        options = {
            "manifest": str(manifest_path.resolve()), "language": language, "split": split,
            "format": "textgrid" if textgrids is not None else "ctm", "phone_tier": phone_tier,
            "strip_stress": rules.strip_stress, "strip_position": rules.strip_position,
            "silences": sorted(rules.silences), "brief_pause": brief_pause, "tolerance": tolerance,
        }  # fmt: skip
        record_source(corpus, kind="items phones", root=source.resolve(), options=options, wrote=wrote)
    phones = sorted({row[3] for row in rows["phoneme"]})
    silences = sorted(raw for raw, label in counts.labels.items() if label == SILENCE)
    lines = [
        f"prepare items phones: {language} {split} from {source}",
        f"  {len(raws)} alignments, {len(matching.matched)} matched to {len(manifest)} utterances of "
        f"{manifest_path}",
        f"  {written['phoneme']} phoneme items, {written['triphone']} triphone items, {len(phones)} phones: "
        f"{' '.join(phones)}",
        f"  silence labels {silences}; {counts.zero_length} zero-length phone(s) dropped",
        f"  wrote {', '.join(wrote)} in {corpus}",
    ]
    return Summary(lines, matching.warnings(manifest, str(source)), wrote)


def _manifest_default_language(path: Path) -> str | None:
    match = _MANIFEST_LANGUAGE.match(path.name)
    return match["lang"] if match else None


def prepare_language_items(
    manifest_paths: Sequence[Path],
    *,
    corpus: Path,
    split: str,
    rules: SegmentRules,
    max_per_speaker: int | None,
    seed: int,
    prefix_speakers: bool,
    overwrite: bool,
) -> Summary:
    """A language item file from manifests of two or more languages, balanced per duration bin."""
    manifests = [read_manifest(p, language=_manifest_default_language(p)) for p in manifest_paths]
    languages = check_languages(manifests)
    rng = random.Random(seed)
    rows = segment_rows(manifests, rules, rng=rng, prefix_speakers=prefix_speakers)
    kept = balance(rows, languages=languages, max_per_speaker=max_per_speaker, rng=rng)
    if not kept:
        raise LanguageItemsError(
            f"no duration bin holds segments of every language ({', '.join(languages)}) among the "
            f"{len(rows)} segments of {', '.join(map(str, manifest_paths))}; use --window, or wider "
            "--bin-seconds"
        )
    target = f"items/{language_item_name(split)}"
    with exclusive_lock(corpus, job="prepare"):
        claim_outputs(corpus, [target], kind="items languages", overwrite=overwrite)
        count = write_item_file(corpus / target, LANGUAGE_HEADER, kept)
        options: dict[str, Any] = {
            "manifests": [str(p.resolve()) for p in manifest_paths], "split": split, "window": rules.window,
            "bin_seconds": None if rules.window else rules.bin_seconds, "min_seconds": rules.min_seconds,
            "max_seconds": rules.max_seconds, "windows_per_utterance": rules.windows_per_utterance,
            "max_per_speaker": max_per_speaker, "seed": seed, "prefix_speakers": prefix_speakers,
        }  # fmt: skip
        root = manifest_paths[0].resolve().parent
        record_source(corpus, kind="items languages", root=root, options=options, wrote=[target])
    bins = sorted({row[5] for row in kept})
    per_language = {language: sum(1 for row in kept if row[3] == language) for language in languages}
    shape = f"{rules.window:g} s windows" if rules.window else "whole utterances"
    lines = [
        f"prepare items languages: {', '.join(languages)} ({shape}) -> {corpus / target}",
        f"  {count} segments of {len(rows)}: {per_language} in {len(bins)} length bin(s) "
        f"({', '.join(bins[:8])})",
        "  extract features from these manifests' audio before `vgssl abx-lang`",
    ]
    return Summary(lines, speaker_notes(kept), [target])


def prepare_imported_items(
    item_file: Path,
    *,
    corpus: Path,
    audio_root: Path,
    language: str | None,
    split: str,
    flavour: str,
    by_basename: bool,
    drop_bad: bool,
    link: bool,
    overwrite: bool,
    progress: bool,
) -> Summary:
    """A published item file under items/, and a manifest of its audio for each language that has none."""
    imported = import_items(
        item_file, audio_root=audio_root, language=language, by_basename=by_basename, drop_bad=drop_bad,
        progress=progress,
    )  # fmt: skip
    if imported.kind == "phone":
        if language is None:
            raise BadOptionError(f"{item_file} holds phone items: pass --language, the language they are of")
        _check_language(language)
        target = f"items/{phone_item_file(language, split, flavour)}"
    else:
        target = f"items/{language_item_name(split)}"
    if link and not imported.unchanged:
        raise BadOptionError(
            "--link keeps the published file as it is, but its copy differs (--find-by-basename rewrote "
            "#file, or --drop-bad-items left items out): drop --link"
        )
    by_language: dict[str, list[ManifestEntry]] = {}
    for _, entry in sorted(imported.audio.items()):
        by_language.setdefault(entry.language or "", []).append(entry)
    with exclusive_lock(corpus, job="prepare"):
        card = read_prepared_card(corpus) or {}
        ours = {p for s in card.get("sources", []) if s["kind"] == IMPORT_KIND for p in s["wrote"]}
        manifests, kept_manifests, existing_manifests = {}, [], []
        for lang, entries in by_language.items():
            name = f"manifests/{lang}_{split}.tsv"
            if (corpus / name).exists():
                _check_manifest_holds(corpus / name, entries, lang, item_file)
                existing_manifests.append(name)
                kept_manifests += [name] if name in ours else []
            else:
                manifests[name] = entries
        wrote = [target, *manifests]
        claim_outputs(corpus, wrote, kind=IMPORT_KIND, overwrite=overwrite)
        _write_items(corpus / target, imported, link=link)
        for name, entries in manifests.items():
            write_manifest(corpus / name, audio_root.resolve(), entries)
        options = {
            "item_file": str(item_file.resolve()), "language": language, "split": split, "flavour": flavour,
            "find_by_basename": by_basename, "dropped_items": len(imported.dropped), "link": link,
        }  # fmt: skip
        record_source(
            corpus, kind=IMPORT_KIND, root=audio_root.resolve(), options=options, wrote=wrote + kept_manifests
        )
    notes = []
    if imported.dropped:
        notes.append(f"warning: left out {len(imported.dropped)} item(s): {'; '.join(imported.dropped[:3])}")
    lines = [
        f"prepare items import: {item_file} -> {corpus / target} ({'linked' if link else 'copied'})",
        f"  {len(imported.rows)} items over {len(imported.audio)} audio files under {audio_root}",
        *(f"  wrote {name} ({len(entries)} files)" for name, entries in manifests.items()),
        *(f"  kept {name} (it holds every file)" for name in existing_manifests),
    ]
    return Summary(lines, notes, wrote)


def _check_manifest_holds(
    path: Path, entries: Sequence[ManifestEntry], language: str, item_file: Path
) -> None:
    keys = {entry.key for entry in read_manifest(path, language=language).entries}
    missing = [entry.key for entry in entries if entry.key not in keys]
    if missing:
        raise ManifestLacksAudioError(
            f"{path} exists but lacks {len(missing)} of the {len(entries)} files {item_file} names (e.g. "
            f"{', '.join(missing[:5])}); the study extracts features from that manifest, so ABX would miss "
            "them. Import the items with the manifest's audio root as --audio-root (with --find-by-basename "
            "if #file is the bare utterance id), or remove the manifest to get one of the items' audio"
        )


def _write_items(target: Path, imported: ImportedItems, *, link: bool) -> None:
    if link:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.link")
        tmp.unlink(missing_ok=True)
        os.symlink(imported.source.resolve(), tmp)
        os.replace(tmp, target)  # a rename: the link appears whole or not at all
        return
    if imported.unchanged:
        atomic_write_bytes(target, imported.source.read_bytes())
    else:
        write_item_file(target, " ".join(imported.header), imported.rows)
