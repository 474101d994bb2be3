"""Execute a corpus plan: render images, synthesise speech in worker processes, write every output.

The corpus is built in a hidden sibling directory and renamed onto OUT only when complete, and its card
(`corpus.json`) is written last, so an interrupted build never leaves a corpus that looks complete.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vgssl.atomic import atomic_write_json
from vgssl.audio.io import SAMPLE_RATE
from vgssl.corpus.card import CARD_NAME, ItemCounts, make_card
from vgssl.corpus.difficulty import mfcc_phone_abx
from vgssl.corpus.images import render_scene
from vgssl.corpus.items import language_items, phone_items
from vgssl.corpus.plan import SPLITS, CorpusPlan, UtteranceJob, plan_corpus
from vgssl.corpus.spec import CorpusSpec
from vgssl.corpus.utterance import RenderSettings, UtteranceRecord, render_utterance
from vgssl.data.alignments import write_alignments
from vgssl.data.items import (
    LANGUAGE_HEADER,
    LANGUAGE_ITEM_FILE,
    PHONE_FLAVOURS,
    PHONE_HEADER,
    PHONE_ITEM_SPLITS,
    phone_item_file,
    write_item_file,
)
from vgssl.data.manifest import ManifestEntry, write_manifest
from vgssl.errors import OutputExistsError


def _run_jobs(
    jobs: tuple[UtteranceJob, ...],
    settings: RenderSettings,
    audio_root: Path,
    *,
    workers: int,
    progress: bool,
) -> list[UtteranceRecord]:
    bar = tqdm(total=len(jobs), desc="synthesising", unit="utt", disable=not progress, file=sys.stderr)
    records = []
    if workers <= 1:
        for job in jobs:
            records.append(render_utterance(job, settings, audio_root))
            bar.update()
    else:
        # spawn, not fork: the TTS library keeps process-global state that must not be shared.
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            repeated = [settings] * len(jobs), [audio_root] * len(jobs)
            for record in pool.map(render_utterance, jobs, *repeated, chunksize=8):
                records.append(record)
                bar.update()
    bar.close()
    return records


def _write_images(plan: CorpusPlan, root: Path, *, progress: bool) -> None:
    for image in tqdm(
        plan.images, desc="rendering images", unit="img", disable=not progress, file=sys.stderr
    ):
        path = root / image.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        render_scene(image.scene, size=plan.spec.image_size).save(path, format="PNG")


def _write_manifests(records: list[UtteranceRecord], root: Path) -> None:
    groups: dict[str, list[ManifestEntry]] = {}
    for record in records:
        job = record.job
        suffix = "_captions" if job.kind == "caption" else ""
        entry = ManifestEntry(job.relpath, record.num_samples, job.language, job.speaker.id)
        groups.setdefault(f"{job.language}_{job.split}{suffix}.tsv", []).append(entry)
    for name, entries in groups.items():
        write_manifest(root / "manifests" / name, "../audio", entries)


def _write_alignments(records: list[UtteranceRecord], root: Path) -> None:
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        job = record.job
        line = {
            "uttid": job.uttid,
            "wav": job.relpath,
            "lang": job.language,
            "speaker": job.speaker.id,
            "kind": job.kind,
            "text": job.text,
            "num_samples": record.num_samples,
            "sample_rate": SAMPLE_RATE,
            **record.alignment.to_json(),
        }
        if record.applied:
            line["acoustics"] = record.applied
        groups.setdefault(f"{job.language}_{job.split}.jsonl", []).append(line)
    for name, lines in groups.items():
        write_alignments(root / "alignments" / name, lines)


def _write_captions(plan: CorpusPlan, records: list[UtteranceRecord], root: Path) -> None:
    captions_of: dict[str, list[dict[str, str]]] = {}
    for record in records:
        job = record.job
        if job.kind == "caption" and job.image_id is not None:
            captions_of.setdefault(job.image_id, []).append(
                {
                    "wav": f"audio/{job.relpath}",
                    "text": job.text,
                    "speaker": job.speaker.id,
                    "uttid": job.uttid,
                    "lang": job.language,
                }
            )
    for split in SPLITS:
        data = [
            {
                "image": image.relpath,
                "image_id": image.image_id,
                "scene": image.scene.to_json(),
                "captions": captions_of.get(image.image_id, []),
            }
            for image in plan.images
            if image.split == split
        ]
        atomic_write_json(root / f"captions_{split}.json", {"data": data}, indent=None)


def _write_items(plan: CorpusPlan, records: list[UtteranceRecord], root: Path) -> ItemCounts:
    """Phone items of the valid and test speech of every language; language items of the test speech."""
    phone: dict[str, dict[str, dict[str, int]]] = {}
    for split in PHONE_ITEM_SPLITS:
        speech = [r.aligned() for r in records if r.job.split == split and r.job.kind == "speech"]
        phone[split] = {}
        for language in plan.spec.languages:
            utterances = [u for u in speech if u.language == language]
            phone[split][language] = {
                flavour: write_item_file(
                    root / "items" / phone_item_file(language, split, flavour),
                    PHONE_HEADER,
                    phone_items(utterances, flavour=flavour),
                )
                for flavour in PHONE_FLAVOURS
            }
    test_speech = [r.aligned() for r in records if r.job.split == "test" and r.job.kind == "speech"]
    segments = write_item_file(
        root / "items" / LANGUAGE_ITEM_FILE, LANGUAGE_HEADER, language_items(test_speech)
    )
    return ItemCounts(phone=phone, language_segments=segments)


def _prepare_destination(out: Path, *, overwrite: bool) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputExistsError(
            f"{out} exists and is not empty; choose another OUT or pass --overwrite to replace it"
        )
    partial = out.parent / f".{out.name}.partial"
    if partial.exists():  # left by an interrupted build: it was never complete
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


def _publish(partial: Path, out: Path) -> None:
    if out.exists():
        old = out.parent / f".{out.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(partial, out)
        shutil.rmtree(old)
    else:
        os.replace(partial, out)


def build_corpus(
    spec: CorpusSpec,
    out: str | os.PathLike[str],
    *,
    workers: int = 2,
    overwrite: bool = False,
    command: str = "",
    progress: bool = True,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> dict:
    """Build the corpus described by `spec` into `out`; returns its card."""
    out = Path(out).absolute()
    plan = plan_corpus(spec)  # validates languages and speakers before touching the disk
    partial = _prepare_destination(out, overwrite=overwrite)
    started = time.perf_counter()
    log(f"building {len(plan.utterances)} utterances and {len(plan.images)} images with {workers} worker(s)")
    _write_images(plan, partial, progress=progress)
    settings = RenderSettings(
        corpus_seed=spec.seed,
        languages=spec.languages,
        acoustics=spec.effective_acoustics,
        babble_speakers=plan.train_speakers,
    )
    records = _run_jobs(plan.utterances, settings, partial / "audio", workers=workers, progress=progress)
    _write_manifests(records, partial)
    _write_alignments(records, partial)
    _write_captions(plan, records, partial)
    item_counts = _write_items(plan, records, partial)
    build_info = {
        "command": command,
        "workers": workers,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    log("measuring the corpus's difficulty (MFCC-39 phone ABX on the test items)")
    difficulty = mfcc_phone_abx(partial, spec.languages)
    card = make_card(plan, records, item_counts, build_info)
    card["difficulty"] = {
        "measure": "phone ABX error % of per-utterance normalised MFCC-39, triphone items, within context, "
        "angular distance with DTW, fastabx (max_size_group 10, max_x_across 5, seed 0)",
        **difficulty,
    }
    from vgssl.corpus.image_features import write_corpus_image_features  # imports torch: only here

    image_features = write_corpus_image_features(plan, partial, log=log)
    card["image_features"] = image_features.summary()
    card["build"]["image_features_seconds"] = image_features.seconds
    atomic_write_json(partial / CARD_NAME, card)
    _publish(partial, out)
    return card
