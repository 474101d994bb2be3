"""Caption data for grounded training: caption–image pairs, the grounded share of the audio, batches.

Pairs come from SpokenCOCO-style JSON files (`vgssl.data.captions`), in the run's languages. Captions
shorter than `data.min_seconds` are dropped and counted, as audio-only clips are, so every caption can be
masked for its SSL loss. Longer ones are randomly cropped to `data.max_seconds`, like audio-only clips.

"Limited grounding": with `captions.grounded_fraction` f, a random subset of the pairs (drawn from the seed)
is kept whose audio is f of all the training audio, captions plus the audio-only selection; when the
captions cannot reach f, all are kept. `CaptionSelection` reports the fraction reached.

A micro-batch holds exactly `captions.pairs_per_batch` random pairs — the in-batch negatives of the
contrastive loss — made per epoch from (seed, epoch) alone and dealt out to ranks like the audio batches
(`vgssl.train.sampler`), so a run resumes exactly and ranks never share a pair.

The caption-speech control (a `captions` section without `grounding`) goes through the same selection,
datasets and sampler with no image source: the same caption audio in the same batches, no image is read.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from vgssl.audio.io import BadAudioError
from vgssl.data.captions import CaptionedImage, read_caption_set
from vgssl.data.images import ImageFeatureStore, ImageSource, PixelImages
from vgssl.errors import VgsslError
from vgssl.model.vgs import GroundingConfig
from vgssl.train.config import CaptionDataConfig, CaptionSource
from vgssl.train.data import AudioDataset, Batch, Item, collate_batch
from vgssl.train.mixture import SECONDS_PER_HOUR, Utterance

LOGGER = logging.getLogger(__name__)


class CaptionDataError(VgsslError):
    """The caption data cannot feed a grounded run as configured."""


@dataclass(frozen=True)
class CaptionPair:
    utterance: Utterance  # the spoken caption (utt_id = its uttid)
    image: CaptionedImage


@dataclass(frozen=True)
class CaptionSelection:
    pairs: tuple[CaptionPair, ...]  # in file order
    available_seconds: float  # of every usable caption, before `grounded_fraction`
    dropped_short: dict[str, int]  # language -> captions shorter than min_seconds
    skipped: dict[str, int]  # what the caption files' `on_missing: skip` / `on_bad_audio: skip` left out
    sample_rate: int

    @property
    def seconds(self) -> float:
        return sum(pair.utterance.num_samples for pair in self.pairs) / self.sample_rate

    def grounded_fraction(self, audio_seconds: float) -> float:
        """The share of the training audio (captions + `audio_seconds` of audio-only speech) with an image."""
        total = self.seconds + audio_seconds
        return self.seconds / total if total else 0.0

    @property
    def utt_ids(self) -> list[str]:
        return [pair.utterance.utt_id for pair in self.pairs]

    def utt_ids_digest(self) -> str:
        """SHA-256 of the selected caption ids, a line each in file order: equal selections, equal digests."""
        return hashlib.sha256("".join(f"{utt_id}\n" for utt_id in self.utt_ids).encode()).hexdigest()

    def to_json(self, audio_seconds: float) -> dict[str, object]:
        languages = sorted({pair.utterance.language for pair in self.pairs})
        return {
            "pairs": len(self.pairs),
            "utt_ids_sha256": self.utt_ids_digest(),
            "images": len({pair.image.image_id for pair in self.pairs}),
            "hours": self.seconds / SECONDS_PER_HOUR,
            "available_hours": self.available_seconds / SECONDS_PER_HOUR,
            "hours_per_language": {
                language: sum(p.utterance.num_samples for p in self.pairs if p.utterance.language == language)
                / self.sample_rate
                / SECONDS_PER_HOUR
                for language in languages
            },
            "grounded_fraction_of_training_audio": self.grounded_fraction(audio_seconds),
            "dropped_short": self.dropped_short,
            "skipped": self.skipped,
        }


def load_caption_pairs(
    sources: Sequence[CaptionSource],
    *,
    languages: Sequence[str],
    min_seconds: float,
    sample_rate: int,
    on_missing: Literal["fail", "skip"],
    on_bad_audio: Literal["fail", "skip"],
    require_image_files: bool,
) -> CaptionSelection:
    """Every usable caption–image pair of `sources` in `languages`, with its length read from the wav."""
    import soundfile

    pairs: list[CaptionPair] = []
    dropped: dict[str, int] = {}
    skipped: dict[str, int] = {}
    min_samples = round(min_seconds * sample_rate)
    for source in sources:
        caption_set = read_caption_set(
            source.captions,
            languages=languages,
            default_language=source.language,
            audio_root=source.audio_root,
            image_root=source.image_root,
            on_missing=on_missing,
            require_image_files=require_image_files,
        )
        for why, count in caption_set.skipped.items():
            skipped[why] = skipped.get(why, 0) + count
        for image in caption_set.images:
            for caption in image.captions:
                try:
                    info = soundfile.info(str(caption.wav))
                except Exception as error:  # soundfile raises several types for corrupt files
                    if on_bad_audio == "fail":
                        raise BadAudioError(
                            f"cannot read caption {caption.uttid} of image {image.image_id} in "
                            f"{source.captions}: {error}; fix the file or set data.on_bad_audio: skip"
                        ) from None
                    skipped["unreadable_wav"] = skipped.get("unreadable_wav", 0) + 1
                    LOGGER.warning(
                        "skipping caption %s of image %s in %s (%d unreadable so far): cannot read %s: %s",
                        caption.uttid, image.image_id, source.captions, skipped["unreadable_wav"],
                        caption.wav, error,
                    )  # fmt: skip
                    continue
                num_samples = round(info.frames * sample_rate / info.samplerate)
                if num_samples < min_samples:
                    dropped[caption.language] = dropped.get(caption.language, 0) + 1
                    continue
                utterance = Utterance(
                    utt_id=caption.uttid,
                    path=caption.wav,
                    num_samples=num_samples,
                    language=caption.language,
                    source=str(source.captions),
                )
                pairs.append(CaptionPair(utterance=utterance, image=image))
    available = sum(pair.utterance.num_samples for pair in pairs) / sample_rate
    return CaptionSelection(tuple(pairs), available, dropped, skipped, sample_rate)


def limit_grounding(
    selection: CaptionSelection, *, grounded_fraction: float | None, audio_seconds: float, seed: int
) -> CaptionSelection:
    """Keep a seeded random subset of the pairs whose audio is `grounded_fraction` of all training audio."""
    if grounded_fraction is None:
        return selection
    target = grounded_fraction / (1.0 - grounded_fraction) * audio_seconds * selection.sample_rate
    order = np.random.default_rng([seed, 1]).permutation(len(selection.pairs))
    kept, samples = [], 0
    for index in order.tolist():
        if samples >= target:
            break
        kept.append(index)
        samples += selection.pairs[index].utterance.num_samples
    pairs = tuple(selection.pairs[index] for index in sorted(kept))
    return CaptionSelection(
        pairs, selection.available_seconds, selection.dropped_short, selection.skipped, selection.sample_rate
    )


def open_image_source(grounding: GroundingConfig, captions: CaptionDataConfig) -> ImageSource:
    if grounding.image_input == "features":
        assert captions.image_features is not None  # TrainConfig checks that they come together
        return ImageFeatureStore(captions.image_features, dim=grounding.feature_dim)
    return PixelImages(grounding.image_size)


@dataclass(frozen=True)
class CaptionItem:
    audio: Item
    # None when the audio is unusable (the pair is dropped from its batch) or no image is read (the control).
    image: np.ndarray | None
    image_id: str


@dataclass(frozen=True)
class CaptionBatch:
    audio: Batch  # the usable captions, padded, and the problems of the others
    # (B, 3, S, S) pixels or (B, D) / (B, R, D) features, row i = caption i's image; (0,) if none is read
    images: torch.Tensor
    image_groups: torch.Tensor  # (B,) equal for captions of one image: not each other's negatives

    def pin_memory(self) -> CaptionBatch:
        return CaptionBatch(self.audio.pin_memory(), self.images.pin_memory(), self.image_groups)

    def __len__(self) -> int:
        return len(self.audio)


class CaptionDataset(torch.utils.data.Dataset[CaptionItem]):
    """Captions read and cropped as `AudioDataset` does, each with its image's pixels or features.

    `image_source` None: the caption audio alone (the caption-speech control), cropped exactly the same.
    """

    def __init__(
        self,
        pairs: Sequence[CaptionPair],
        *,
        image_source: ImageSource | None,
        max_samples: int,
        seed: int,
        sample_rate: int,
        on_wrong_sample_rate: Literal["resample", "fail"],
    ) -> None:
        self.pairs = list(pairs)
        self.image_source = image_source
        self.audio = AudioDataset(
            [pair.utterance for pair in self.pairs],
            max_samples=max_samples,
            seed=seed,
            sample_rate=sample_rate,
            on_wrong_sample_rate=on_wrong_sample_rate,
        )

    def set_epoch(self, epoch: int) -> None:
        self.audio.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> CaptionItem:
        audio = self.audio[index]
        image = self.pairs[index].image
        usable = audio.audio is not None and self.image_source is not None
        pixels = self.image_source.load(image) if usable else None
        return CaptionItem(audio=audio, image=pixels, image_id=image.image_id)


def collate_captions(items: Sequence[CaptionItem]) -> CaptionBatch:
    usable = [item for item in items if item.audio.audio is not None]
    group_of: dict[str, int] = {}
    groups = [group_of.setdefault(item.image_id, len(group_of)) for item in usable]
    with_images = [item.image for item in usable if item.image is not None]
    if with_images and len(with_images) != len(usable):
        raise CaptionDataError("a caption batch mixes captions with and without images; this is a bug")
    images = torch.from_numpy(np.stack(with_images)) if with_images else torch.zeros(0)
    return CaptionBatch(
        audio=collate_batch([item.audio for item in items]),
        images=images,
        image_groups=torch.tensor(groups, dtype=torch.long),
    )


class PairBatchSampler:
    """This rank's caption batches of an epoch from a start position: a `batch_sampler` for a DataLoader.

    An epoch is a permutation of the pairs drawn from (seed, epoch), cut into batches of exactly
    `pairs_per_batch` (the few pairs left over sit that epoch out, so no batch has too few negatives), and
    cut to a multiple of world_size × accumulation; rank r takes batches r, r + W, r + 2W, …
    """

    def __init__(
        self,
        num_pairs: int,
        *,
        pairs_per_batch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        accumulation: int = 1,
    ) -> None:
        batches_per_epoch = num_pairs // pairs_per_batch
        if batches_per_epoch < world_size * accumulation:
            raise CaptionDataError(
                f"{num_pairs} caption pairs make {batches_per_epoch} batches of captions.pairs_per_batch="
                f"{pairs_per_batch}, fewer than world size {world_size} × accumulation {accumulation}; lower "
                "captions.pairs_per_batch or add captions"
            )
        self.num_pairs = num_pairs
        self.pairs_per_batch = pairs_per_batch
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.usable_batches = batches_per_epoch - batches_per_epoch % (world_size * accumulation)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, *, start: int = 0) -> None:
        """Iterate over `epoch`, skipping this rank's first `start` batches (already consumed)."""
        self.epoch = epoch
        self.start = start

    def rank_batches(self, epoch: int) -> list[list[int]]:
        # Stream 2 keeps these permutations apart from the audio sampler's, which also starts from the seed.
        order = np.random.default_rng([self.seed, 2, epoch]).permutation(self.num_pairs).tolist()
        size = self.pairs_per_batch
        batches = [order[i * size : (i + 1) * size] for i in range(self.usable_batches)]
        return batches[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.rank_batches(self.epoch)[self.start :]

    def __len__(self) -> int:
        return len(self.rank_batches(self.epoch)) - self.start
