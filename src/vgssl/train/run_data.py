"""A run's data: the training mixture and its stream, the caption pairs and theirs, the validation sets.

Built the same way on every rank (selection is a pure function of the config and seed); rank 0 also writes
what was selected into the run directory: `selection.json` (hours per language, what was dropped, the
captions' share of the training audio) and, for a run with captions, `caption_utterances.txt` (the selected
caption ids, one per line).

The caption-speech control (captions without grounding) selects exactly as a grounded run would — it
requires the image files a pixel-input grounded run requires, so `on_missing: skip` leaves out the same
captions — but reads no image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vgssl.atomic import atomic_write_json, atomic_write_text
from vgssl.audio.frames import SAMPLE_RATE
from vgssl.data.captions import CaptionSet, read_caption_set
from vgssl.data.images import ImageSource
from vgssl.train.captions import (
    CaptionBatch,
    CaptionDataError,
    CaptionDataset,
    PairBatchSampler,
    collate_captions,
    limit_grounding,
    load_caption_pairs,
    open_image_source,
)
from vgssl.train.config import TrainConfig
from vgssl.train.data import AudioDataset, Batch, collate_batch, load_split
from vgssl.train.distributed import DistributedContext
from vgssl.train.logs import LOGGER
from vgssl.train.mixture import Selection, select_mixture
from vgssl.train.sampler import BucketBatchSampler
from vgssl.train.stream import BatchStream, LoaderOptions

SELECTION_FILE = "selection.json"
CAPTION_IDS_FILE = "caption_utterances.txt"


@dataclass
class RunData:
    audio: BatchStream[Batch]
    captions: BatchStream[CaptionBatch] | None  # runs with captions (VGS+ and the caption-speech control)
    valid_set: AudioDataset | None
    valid_sampler: BucketBatchSampler | None
    valid_captions: CaptionSet | None  # VGS+ runs with valid captions: retrieval during training
    image_source: ImageSource | None  # VGS+ runs
    loader: LoaderOptions


def build_run_data(
    config: TrainConfig, context: DistributedContext, *, inspect: Callable[[Batch], None]
) -> RunData:
    """Select and open everything a run reads; `inspect` sees every training micro-batch's audio."""
    data = config.data
    loader = LoaderOptions(num_workers=data.num_workers, pin_memory=context.device.type == "cuda")
    train_split = load_split(data.train, min_seconds=data.min_seconds, sample_rate=SAMPLE_RATE, split="train")
    selection = select_mixture(
        train_split.pool,
        policy=data.mixture,
        hours=data.hours,
        temperature_alpha=data.temperature_alpha,
        seed=config.seed,
        sample_rate=SAMPLE_RATE,
    )
    captions = _open_captions(config, context, selection, loader, inspect) if config.captions else None
    if context.is_main:
        for language, count in sorted(train_split.dropped_short.items()):
            LOGGER.info("%s: dropped %d utterances shorter than %.2f s", language, count, data.min_seconds)
        LOGGER.info("training mixture %r:", data.mixture)
        for share in selection.shares:
            LOGGER.info("  %s", share.summary())
        summary = {"policy": data.mixture, **selection.to_json(), "dropped_short": train_split.dropped_short}
        if captions is not None:
            summary["captions"] = captions.summary
            atomic_write_text(config.run_dir / CAPTION_IDS_FILE, "".join(f"{i}\n" for i in captions.utt_ids))
        atomic_write_json(config.run_dir / SELECTION_FILE, summary)
    max_samples = round(data.max_seconds * SAMPLE_RATE)
    train_set = AudioDataset(
        selection.utterances,
        max_samples=max_samples,
        seed=config.seed,
        sample_rate=SAMPLE_RATE,
        on_wrong_sample_rate=data.on_wrong_sample_rate,
    )
    train_sampler = BucketBatchSampler(
        train_set.cropped_lengths(),
        max_batch_samples=round(data.batch_seconds * SAMPLE_RATE),
        seed=config.seed,
        rank=context.rank,
        world_size=context.world_size,
        accumulation=config.optim.accumulation,
    )
    run = RunData(
        audio=BatchStream(
            train_set,
            train_sampler,
            collate=collate_batch,
            accumulation=config.optim.accumulation,
            loader=loader,
            audio_of=lambda batch: batch,
            inspect=inspect,
        ),
        captions=captions.stream if captions else None,
        valid_set=None,
        valid_sampler=None,
        valid_captions=captions.valid if captions else None,
        image_source=captions.image_source if captions else None,
        loader=loader,
    )
    if data.valid:
        valid_split = load_split(
            data.valid, min_seconds=data.min_seconds, sample_rate=SAMPLE_RATE, split="valid"
        )
        run.valid_set = AudioDataset(
            valid_split.utterances,
            max_samples=max_samples,
            seed=config.seed,
            sample_rate=SAMPLE_RATE,
            on_wrong_sample_rate=data.on_wrong_sample_rate,
        )
        run.valid_sampler = BucketBatchSampler(
            run.valid_set.cropped_lengths(),
            max_batch_samples=round(data.batch_seconds * SAMPLE_RATE),
            seed=config.seed,
            rank=context.rank,
            world_size=context.world_size,
            drop_uneven=False,
        )
    return run


@dataclass(frozen=True)
class _Captions:
    stream: BatchStream[CaptionBatch]
    image_source: ImageSource | None
    valid: CaptionSet | None
    summary: dict[str, object]  # for selection.json
    utt_ids: list[str]


def _open_captions(
    config: TrainConfig,
    context: DistributedContext,
    audio: Selection,
    loader: LoaderOptions,
    inspect: Callable[[Batch], None],
) -> _Captions:
    """The caption stream of a run with captions, its image source and (VGS+) valid captions."""
    data, captions, grounding = config.data, config.captions, config.grounding
    assert captions is not None  # only called for runs with captions
    if grounding is not None:
        require_image_files = grounding.image_input == "pixels"
    else:  # TrainConfig keeps image_features and image_input: features together in grounded runs
        require_image_files = captions.image_features is None
    languages = captions.languages or [share.language for share in audio.shares]
    audio_seconds = sum(share.selected_seconds for share in audio.shares)
    available = load_caption_pairs(
        captions.train,
        languages=languages,
        min_seconds=data.min_seconds,
        sample_rate=SAMPLE_RATE,
        on_missing=captions.on_missing,
        on_bad_audio=data.on_bad_audio,
        require_image_files=require_image_files,
    )
    if not available.pairs:
        raise CaptionDataError(
            f"no usable caption in languages {', '.join(languages)} in "
            f"{', '.join(str(source.captions) for source in captions.train)}; check captions.languages"
        )
    chosen = limit_grounding(
        available, grounded_fraction=captions.grounded_fraction, audio_seconds=audio_seconds, seed=config.seed
    )
    reached = chosen.grounded_fraction(audio_seconds)
    if context.is_main:
        LOGGER.info(
            "captions: %d pairs of %d images, %.3f h (of %.3f h usable); %.1f %% of the training audio "
            + ("has an image" if grounding is not None else "is caption speech, heard without images"),
            len(chosen.pairs),
            len({pair.image.image_id for pair in chosen.pairs}),
            chosen.seconds / 3600,
            available.seconds / 3600,
            100 * reached,
        )
        if captions.grounded_fraction is not None and reached < captions.grounded_fraction - 0.01:
            LOGGER.warning(
                "captions.grounded_fraction asks for %.1f %% but all usable captions give only %.1f %%",
                100 * captions.grounded_fraction,
                100 * reached,
            )
    image_source = open_image_source(grounding, captions) if grounding is not None else None
    caption_set = CaptionDataset(
        chosen.pairs,
        image_source=image_source,
        max_samples=round(data.max_seconds * SAMPLE_RATE),
        seed=config.seed,
        sample_rate=SAMPLE_RATE,
        on_wrong_sample_rate=data.on_wrong_sample_rate,
    )
    caption_sampler = PairBatchSampler(
        len(chosen.pairs),
        pairs_per_batch=captions.pairs_per_batch,
        seed=config.seed,
        rank=context.rank,
        world_size=context.world_size,
        accumulation=config.optim.accumulation,
    )
    stream = BatchStream(
        caption_set, caption_sampler, collate=collate_captions, accumulation=config.optim.accumulation,
        loader=loader, audio_of=lambda batch: batch.audio, inspect=inspect,
    )  # fmt: skip
    valid = None
    if captions.valid is not None and grounding is not None:
        valid = read_caption_set(
            captions.valid.captions,
            languages=languages,
            default_language=captions.valid.language,
            audio_root=captions.valid.audio_root,
            image_root=captions.valid.image_root,
            on_missing=captions.on_missing,
            require_image_files=require_image_files,
        )
    summary = chosen.to_json(audio_seconds)
    summary["heard_with_images"] = grounding is not None
    summary["utt_ids_file"] = CAPTION_IDS_FILE
    return _Captions(stream, image_source, valid, summary, chosen.utt_ids)
