"""The deterministic plan of a corpus: every image and every utterance, with its text, speaker and seed.

Planning happens in one process before any synthesis, so the corpus does not depend on the number of worker
processes: each utterance carries its own seed, and workers only execute jobs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vgssl.corpus.grammar.registry import get_grammar
from vgssl.corpus.scenes import Scene, sample_scene
from vgssl.corpus.speakers import Speaker, make_speakers
from vgssl.corpus.spec import CorpusSpec

Split = Literal["train", "valid", "test"]
SPLITS: tuple[Split, ...] = ("train", "valid", "test")
Kind = Literal["speech", "caption"]


def stream(seed: int, *tags: str | int) -> np.random.Generator:
    """An independent random stream named by `tags` (stable across runs, Python versions and processes)."""
    words = [seed] + [zlib.crc32(str(tag).encode()) for tag in tags]
    return np.random.default_rng(np.random.SeedSequence(words))


@dataclass(frozen=True)
class ImageJob:
    image_id: str
    split: Split
    scene: Scene

    @property
    def relpath(self) -> str:
        return f"images/{self.split}/{self.image_id}.png"


@dataclass(frozen=True)
class UtteranceJob:
    uttid: str
    language: str
    espeak_language: str
    split: Split
    kind: Kind
    text: str
    speaker: Speaker
    seed: int
    image_id: str | None = None

    @property
    def relpath(self) -> str:
        """Path relative to the audio root; without its extension it is the utterance's item-file key."""
        return f"{self.language}/{self.split}/{self.uttid}.wav"


@dataclass(frozen=True)
class CorpusPlan:
    spec: CorpusSpec
    train_speakers: tuple[Speaker, ...]
    test_speakers: tuple[Speaker, ...]
    images: tuple[ImageJob, ...]
    utterances: tuple[UtteranceJob, ...]


def _estimated_seconds(text: str, speaker: Speaker) -> float:
    """Duration before synthesis, fitted on espeak en/fr output (about 0.13 s per character at 60 wpm)."""
    return 0.13 * len(text) * 60.0 / speaker.rate + 0.25


def _speech_jobs(
    spec: CorpusSpec, language: str, split: Split, seconds: float, speakers: tuple[Speaker, ...]
) -> list[UtteranceJob]:
    grammar = get_grammar(language)
    rng = stream(spec.seed, "speech", language, split)
    jobs: list[UtteranceJob] = []
    total = 0.0
    # Speakers take turns, so every speaker of the split speaks about the same amount of every language.
    while total < seconds:
        speaker = speakers[len(jobs) % len(speakers)]
        text = grammar.sentence(rng)
        uttid = f"{language}-{split}-{speaker.id}-u{len(jobs):05d}"
        jobs.append(
            UtteranceJob(
                uttid=uttid,
                language=language,
                espeak_language=grammar.espeak_language,
                split=split,
                kind="speech",
                text=text,
                speaker=speaker,
                seed=int(rng.integers(2**31)),
            )
        )
        total += _estimated_seconds(text, speaker)
    return jobs


def _caption_jobs(
    spec: CorpusSpec, language: str, images: list[ImageJob], speakers: tuple[Speaker, ...]
) -> list[UtteranceJob]:
    grammar = get_grammar(language)
    split = images[0].split
    rng = stream(spec.seed, "caption", language, split)
    jobs = []
    for image in images:
        for _ in range(spec.captions_per_image):
            speaker = speakers[int(rng.integers(len(speakers)))]
            uttid = f"{language}-{split}-{speaker.id}-c{len(jobs):05d}"
            jobs.append(
                UtteranceJob(
                    uttid=uttid,
                    language=language,
                    espeak_language=grammar.espeak_language,
                    split=split,
                    kind="caption",
                    text=grammar.caption(image.scene, rng),
                    speaker=speaker,
                    seed=int(rng.integers(2**31)),
                    image_id=image.image_id,
                )
            )
    return jobs


def plan_corpus(spec: CorpusSpec) -> CorpusPlan:
    """Every image and utterance. Train and valid splits use train speakers; test uses test speakers."""
    for language in spec.languages:
        get_grammar(language)  # fail on an unknown language before any work
    train_speakers, test_speakers = (
        tuple(group)
        for group in make_speakers(n_train=spec.train_speakers, n_test=spec.test_speakers, seed=spec.seed)
    )
    speakers_of = {"train": train_speakers, "valid": train_speakers, "test": test_speakers}
    image_counts = {"train": spec.images, "valid": spec.valid_images, "test": spec.test_images}
    images: dict[Split, list[ImageJob]] = {}
    for split in SPLITS:
        rng = stream(spec.seed, "scene", split)
        images[split] = [
            ImageJob(image_id=f"{split}-{index:05d}", split=split, scene=sample_scene(rng))
            for index in range(image_counts[split])
        ]
    speech_seconds = {
        "train": spec.hours * 3600,
        "valid": spec.hours * 3600 * spec.valid_fraction,
        "test": spec.test_minutes * 60,
    }
    utterances: list[UtteranceJob] = []
    for language in spec.languages:
        for split in SPLITS:
            utterances += _speech_jobs(spec, language, split, speech_seconds[split], speakers_of[split])
            utterances += _caption_jobs(spec, language, images[split], speakers_of[split])
    return CorpusPlan(
        spec=spec,
        train_speakers=train_speakers,
        test_speakers=test_speakers,
        images=tuple(image for split in SPLITS for image in images[split]),
        utterances=tuple(utterances),
    )
