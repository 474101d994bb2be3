"""Training audio: manifests to utterances, random crops, padded batches, and what to do with bad files.

A dataset item never raises for a bad file: it reports the problem, and the training loop applies the
`on_bad_audio` policy in the main process. That keeps error messages clean whether or not DataLoader workers
are used, and lets the loop log skipped files by name.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from vgssl.audio.batch import pad_waveforms
from vgssl.audio.io import BadAudioError, read_audio
from vgssl.data.manifest import read_manifest
from vgssl.errors import VgsslError
from vgssl.train.config import ManifestSource
from vgssl.train.mixture import Utterance

LOGGER = logging.getLogger("vgssl.train")
# Samples by which a file may differ from its manifest line (resampling rounds the length).
LENGTH_TOLERANCE = 2
# A file whose mono peak stays below this (~ -80 dBFS) holds nothing to learn from.
SILENCE_PEAK = 1e-4


class MissingAudioRootError(VgsslError):
    """A manifest's first line names an audio root directory that does not exist."""


class MissingLanguageError(VgsslError):
    """An utterance has no language: neither a manifest column nor the config gives one."""


class WrongSampleRateError(VgsslError):
    """An audio file is not at the model's sample rate and the config refuses to resample."""


class EmptySplitError(VgsslError):
    """No utterance of a split is left after filtering."""


@dataclass(frozen=True)
class LoadedSplit:
    pool: dict[str, list[Utterance]]  # language -> utterances long enough to train on, in file order
    dropped_short: dict[str, int]  # language -> utterances dropped for being shorter than min_seconds

    @property
    def utterances(self) -> list[Utterance]:
        return [utterance for language in sorted(self.pool) for utterance in self.pool[language]]


def load_split(
    sources: Sequence[ManifestSource], *, min_seconds: float, sample_rate: int, split: str
) -> LoadedSplit:
    """Read the manifests of a split, check their audio roots, and drop utterances under `min_seconds`."""
    pool: dict[str, list[Utterance]] = {}
    dropped: dict[str, int] = {}
    min_samples = round(min_seconds * sample_rate)
    for index, source in enumerate(sources):
        manifest = read_manifest(source.manifest, language=source.language)
        if not manifest.root.is_dir():
            raise MissingAudioRootError(
                f"{manifest.source}:1: the audio root {manifest.root} does not exist; fix the manifest's "
                "first line (a relative root resolves against the manifest's directory) or move the audio "
                "there"
            )
        for entry in manifest.entries:
            if entry.language is None:
                raise MissingLanguageError(
                    f"{manifest.source}: entry {entry.path!r} has no language column; add one, or set "
                    f"data.{split}[{index}].language in the config"
                )
            if entry.num_samples < min_samples:
                dropped[entry.language] = dropped.get(entry.language, 0) + 1
                continue
            pool.setdefault(entry.language, []).append(
                Utterance(
                    utt_id=entry.key,
                    path=manifest.audio_path(entry),
                    num_samples=entry.num_samples,
                    language=entry.language,
                    source=f"{manifest.source}:{entry.line}",
                )
            )
    if not pool:
        total_dropped = sum(dropped.values())
        raise EmptySplitError(
            f"no {split} utterance is left: {total_dropped} were shorter than data.min_seconds={min_seconds} "
            "and the rest of the manifests is empty; lower data.min_seconds or add audio"
        )
    return LoadedSplit(pool=pool, dropped_short=dropped)


@dataclass(frozen=True)
class AudioProblem:
    kind: Literal["unreadable", "sample_rate", "length", "silent"]
    utt_id: str
    message: str


@dataclass(frozen=True)
class Item:
    utt_id: str
    audio: np.ndarray | None  # None when `problem` is set
    problem: AudioProblem | None = None


@dataclass(frozen=True)
class Batch:
    wav: torch.Tensor  # (B, N) float32
    padding_mask: torch.Tensor  # (B, N) bool, True = padding
    utt_ids: list[str]
    problems: list[AudioProblem]  # files of this batch that could not be used

    def pin_memory(self) -> Batch:
        """Called by a DataLoader with pin_memory=True, so the copy to the GPU can overlap compute."""
        return Batch(self.wav.pin_memory(), self.padding_mask.pin_memory(), self.utt_ids, self.problems)

    @property
    def audio_samples(self) -> int:
        return int((~self.padding_mask).sum())

    def __len__(self) -> int:
        return len(self.utt_ids)


class AudioDataset(torch.utils.data.Dataset[Item]):
    """Utterances read as float32 at `sample_rate`, randomly cropped to `max_samples`.

    The crop offset is drawn from (seed, epoch, index), so it is the same whatever the number of workers or
    ranks, and a resumed run crops exactly as an uninterrupted one.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        *,
        max_samples: int,
        seed: int,
        sample_rate: int,
        on_wrong_sample_rate: Literal["resample", "fail"],
    ) -> None:
        self.utterances = list(utterances)
        self.max_samples = max_samples
        self.seed = seed
        self.sample_rate = sample_rate
        self.on_wrong_sample_rate = on_wrong_sample_rate
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Crops for `epoch`; call it before creating the epoch's DataLoader (workers copy the dataset)."""
        self.epoch = epoch

    def cropped_lengths(self) -> list[int]:
        return [min(utterance.num_samples, self.max_samples) for utterance in self.utterances]

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> Item:
        utterance = self.utterances[index]
        if self.on_wrong_sample_rate == "fail":
            problem = self._sample_rate_problem(utterance)
            if problem is not None:
                return Item(utterance.utt_id, None, problem)
        try:
            audio = read_audio(utterance.path, sample_rate=self.sample_rate)
        except BadAudioError as error:
            message = f"{error} ({utterance.source})"
            return Item(utterance.utt_id, None, AudioProblem("unreadable", utterance.utt_id, message))
        problem = self._length_problem(utterance, len(audio))
        if problem is None and float(np.abs(audio).max(initial=0.0)) < SILENCE_PEAK:
            problem = AudioProblem(
                "silent",
                utterance.utt_id,
                f"{utterance.path} is silent (peak below {SILENCE_PEAK:g} after down-mixing to mono; e.g. "
                "stereo channels that cancel); check the recording or remove it from the manifest",
            )
        if problem is not None:
            return Item(utterance.utt_id, None, problem)
        if len(audio) > self.max_samples:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            offset = int(rng.integers(0, len(audio) - self.max_samples + 1))
            audio = audio[offset : offset + self.max_samples]
        return Item(utterance.utt_id, audio)

    def _length_problem(self, utterance: Utterance, samples: int) -> AudioProblem | None:
        """A file that does not hold the samples its manifest line says (truncated data behind an intact
        header, or a stale manifest); a manifest may count them at the file's own rate."""
        if abs(samples - utterance.num_samples) <= LENGTH_TOLERANCE:
            return None
        import soundfile

        file_rate = soundfile.info(str(utterance.path)).samplerate
        if abs(samples - round(utterance.num_samples * self.sample_rate / file_rate)) <= LENGTH_TOLERANCE:
            return None
        return AudioProblem(
            "length",
            utterance.utt_id,
            f"{utterance.path} holds {samples} samples at {self.sample_rate} Hz, but {utterance.source} says "
            f"{utterance.num_samples}: the file is truncated or the manifest is stale; replace the file or "
            "regenerate the manifest",
        )

    def _sample_rate_problem(self, utterance: Utterance) -> AudioProblem | None:
        import soundfile

        try:
            file_rate = soundfile.info(str(utterance.path)).samplerate
        except Exception as error:  # soundfile raises several types for corrupt or missing files
            return AudioProblem(
                "unreadable",
                utterance.utt_id,
                f"cannot read audio file {utterance.path} ({utterance.source}): {error}",
            )
        if file_rate == self.sample_rate:
            return None
        return AudioProblem(
            "sample_rate",
            utterance.utt_id,
            f"{utterance.path} is at {file_rate} Hz, not {self.sample_rate} Hz; resample the corpus or set "
            "data.on_wrong_sample_rate: resample",
        )


def collate_batch(items: Sequence[Item]) -> Batch:
    """Pad the usable items to the longest (`vgssl.audio.batch`); unusable ones travel along as `problems`."""
    usable = [item for item in items if item.audio is not None]
    problems = [item.problem for item in items if item.problem is not None]
    padded = pad_waveforms([item.audio for item in usable])
    return Batch(
        wav=padded.wav,
        padding_mask=padded.padding_mask,
        utt_ids=[item.utt_id for item in usable],
        problems=problems,
    )


def check_problems(batch: Batch, *, on_bad_audio: Literal["skip", "fail"]) -> None:
    """Raise for a batch's bad files unless the policy skips them (wrong sample rates always raise)."""
    for problem in batch.problems:
        if problem.kind == "sample_rate":
            raise WrongSampleRateError(problem.message)
        if on_bad_audio == "fail":
            raise BadAudioError(
                f"{problem.message} (utterance {problem.utt_id}); fix or remove the file, or set "
                "data.on_bad_audio: skip to train without it"
            )


class BadAudioLog:
    """A rank's unreadable training files: each micro-batch's problems are raised (`check_problems`) or,
    when skipped, logged once per file and kept (utterance id -> problem) for the checkpoint and the
    run's final summary."""

    def __init__(self, *, on_bad_audio: Literal["skip", "fail"]) -> None:
        self.on_bad_audio = on_bad_audio
        self.skipped: dict[str, str] = {}

    def inspect(self, batch: Batch) -> None:
        check_problems(batch, on_bad_audio=self.on_bad_audio)
        for problem in batch.problems:
            if problem.utt_id not in self.skipped:
                self.skipped[problem.utt_id] = problem.message
                LOGGER.warning(
                    "skipping unreadable audio (%d so far on this rank): %s",
                    len(self.skipped),
                    problem.message,
                )
