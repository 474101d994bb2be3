"""The training loop, audio-only (SSL-A) or visually grounded (VGS+): one process or many under torchrun.

A step, on every rank: the gradients of the step's loss (`vgssl.train.gradients`: M micro-batches per
phase, loss sums normalised by global counts, so DDP and accumulation equal one big batch); clipping; the
AdamW update; the schedule. A grounded run draws each step's kind (audio-only, caption-only or joint) from
`vgssl.train.objective`, feeds caption batches (`vgssl.train.captions`) besides the audio ones, reports the
grounded fraction of the training audio it has seen, and logs speech–image retrieval on the valid captions.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from vgssl.atomic import atomic_write_json
from vgssl.corpus.spokencoco import read_caption_set
from vgssl.errors import VgsslError
from vgssl.evaluate.retrieval import embed_caption_set, retrieval_scores
from vgssl.model.config import SAMPLE_RATE
from vgssl.model.pretrained import CHECKPOINT_FORMAT, init_from_hf
from vgssl.model.vgs import VgsModel
from vgssl.model.wav2vec2 import Wav2Vec2
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
from vgssl.train.checkpoint import (
    capture_rng_state,
    last_checkpoint_path,
    load_last_checkpoint,
    prepare_run_dir,
    restore_rng_state,
    save_checkpoint,
)
from vgssl.train.collapse import CollapseGuard
from vgssl.train.config import Precision, TrainConfig
from vgssl.train.data import AudioDataset, Batch, check_problems, collate_batch, load_split
from vgssl.train.distributed import (
    DistributedContext,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    check_replicas_identical,
    setup_distributed,
    teardown_distributed,
)
from vgssl.train.gradients import (
    VALID_STREAM,
    GroundedTotals,
    NonFiniteLossError,
    accumulate_gradients,
    grounded_gradients,
    micro_batch_seed,
)
from vgssl.train.metrics import IntervalMeans, MetricsLogger
from vgssl.train.mixture import Selection, select_mixture
from vgssl.train.objective import TERMS, LossWeighting, StepKind, step_kind
from vgssl.train.sampler import BucketBatchSampler
from vgssl.train.schedule import lr_scale

LOGGER = logging.getLogger("vgssl.train")
SELECTION_FILE = "selection.json"
LOG_FILE = "train.log"


class EmptyBatchError(VgsslError):
    """Every utterance of a micro-batch was unreadable, so there is nothing to train on."""


class ResumeError(VgsslError):
    """A checkpoint cannot be resumed under the current launch."""


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    step: int
    finished: bool  # reached max_steps (otherwise stopped early by `stop_at`)
    best_valid_loss: float | None


def train(config: TrainConfig, *, stop_at: int | None = None) -> TrainResult:
    """Train (or resume) the run in `config.run_dir`; stop after step `stop_at` if given (checkpointed)."""
    context = setup_distributed()
    try:
        if context.is_main:
            prepare_run_dir(config)
        barrier(context)
        with _log_to_run_dir(config.run_dir, context):
            result = Trainer(config, context).run(stop_at=stop_at)
        # Leave together: a rank that tears gloo down while another still talks to it can abort the job.
        barrier(context)
        return result
    finally:
        teardown_distributed(context)


@contextlib.contextmanager
def _log_to_run_dir(run_dir: Path, context: DistributedContext) -> Iterator[None]:
    """Rank 0 logs INFO to stderr and `train.log`; other ranks log warnings to stderr, prefixed by rank."""
    prefix = f"[rank {context.rank}] " if context.is_distributed else ""
    formatter = logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    console = _TqdmAwareHandler()
    console.setLevel(logging.INFO if context.is_main else logging.WARNING)
    handlers: list[logging.Handler] = [console]
    if context.is_main:
        handlers.append(logging.FileHandler(run_dir / LOG_FILE, encoding="utf-8"))
    previous_level, previous_propagate = LOGGER.level, LOGGER.propagate
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
    for handler in handlers:
        handler.setFormatter(formatter)
        LOGGER.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            LOGGER.removeHandler(handler)
            handler.close()
        LOGGER.setLevel(previous_level)
        LOGGER.propagate = previous_propagate


class _TqdmAwareHandler(logging.Handler):
    """Writes to stderr through tqdm, so log lines do not tear the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging's contract: report, never raise from a handler
            self.handleError(record)


def resolve_autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA by default; on CPU only when asked (FACTS: it halves the step time where the
    CPU has native bf16, but other CPUs emulate it slowly)."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if device.type == "cpu" and not _cpu_has_native_bf16():
        LOGGER.warning(
            "precision bf16 on a CPU without native bf16 support (avx512_bf16/amx_bf16): expect it slow"
        )
    return torch.bfloat16


def _cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:  # not Linux: cannot tell, do not warn
        return True
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Trainer:
    """One run: data, model, optimizer, checkpoints, metrics. Construct on every rank, then `run()`.

    The run directory must have been prepared (`prepare_run_dir`); `train` does that and sets up logging.
    """

    def __init__(self, config: TrainConfig, context: DistributedContext) -> None:
        self.config = config
        self.context = context
        self.run_dir = config.run_dir
        self.checkpoint = load_last_checkpoint(self.run_dir)
        self.step = 0
        self.epoch = 0
        self.position = 0  # micro-batches of `epoch` this rank has consumed
        self.caption_epoch = 0  # the same two for the caption batches of a grounded run
        self.caption_position = 0
        self.seconds_seen = {"audio": 0.0, "captions": 0.0}  # training audio of all ranks, so far
        self.best_valid_loss: float | None = None
        self.bad_audio: dict[str, str] = {}  # this rank's skipped files: utterance id -> problem

        random.seed(config.seed)
        np.random.seed(config.seed % 2**32)
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        self.model: Wav2Vec2 | VgsModel
        self.weighting: LossWeighting | None = None
        if config.grounding is None:
            self.model = Wav2Vec2(config.model)
            audio_encoder = self.model
        else:
            # The audio encoder is built first, so it starts from the weights an audio-only run starts from.
            self.model = VgsModel(config.model, config.grounding)
            audio_encoder = self.model.audio
            self.weighting = LossWeighting(config.grounded_objective).to(context.device)
        if config.init_from_hf is not None and self.checkpoint is None:
            init_from_hf(audio_encoder, config.init_from_hf)
            LOGGER.info("initialised the model from %s", config.init_from_hf)
        self.model.to(context.device)
        self.autocast_dtype = resolve_autocast_dtype(config.precision, context.device)
        self._build_data()
        self._build_optimizer()
        if self.checkpoint is not None:
            self._restore(self.checkpoint)
        self.model.set_num_updates(self.step)
        self.guard = CollapseGuard(
            config.collapse,
            codebook_groups=config.model.codebook_groups,
            codebook_entries=config.model.codebook_entries,
            diversity_weight=config.model.diversity_weight,
            mask_prob=config.model.mask_prob,
            mask_length=config.model.mask_length,
            num_negatives=config.model.num_negatives,
        )

    # -- set-up ---------------------------------------------------------------------------------------------

    def _build_data(self) -> None:
        config, data = self.config, self.config.data
        train_split = load_split(
            data.train, min_seconds=data.min_seconds, sample_rate=SAMPLE_RATE, split="train"
        )
        selection = select_mixture(
            train_split.pool,
            policy=data.mixture,
            hours=data.hours,
            temperature_alpha=data.temperature_alpha,
            seed=config.seed,
            sample_rate=SAMPLE_RATE,
        )
        self.valid_captions = None
        caption_summary = self._build_caption_data(selection) if config.captions is not None else None
        if self.context.is_main:
            for language, count in sorted(train_split.dropped_short.items()):
                LOGGER.info(
                    "%s: dropped %d utterances shorter than %.2f s", language, count, data.min_seconds
                )
            LOGGER.info("training mixture %r:", data.mixture)
            for share in selection.shares:
                LOGGER.info("  %s", share.summary())
            summary = {
                "policy": data.mixture,
                **selection.to_json(),
                "dropped_short": train_split.dropped_short,
            }
            if caption_summary is not None:
                summary["captions"] = caption_summary
            atomic_write_json(self.run_dir / SELECTION_FILE, summary)
        max_samples = round(data.max_seconds * SAMPLE_RATE)
        self.train_set = AudioDataset(
            selection.utterances,
            max_samples=max_samples,
            seed=config.seed,
            sample_rate=SAMPLE_RATE,
            on_wrong_sample_rate=data.on_wrong_sample_rate,
        )
        self.train_sampler = BucketBatchSampler(
            self.train_set.cropped_lengths(),
            max_batch_samples=round(data.batch_seconds * SAMPLE_RATE),
            seed=config.seed,
            rank=self.context.rank,
            world_size=self.context.world_size,
            accumulation=config.optim.accumulation,
        )
        self.valid_set = None
        if data.valid:
            valid_split = load_split(
                data.valid, min_seconds=data.min_seconds, sample_rate=SAMPLE_RATE, split="valid"
            )
            self.valid_set = AudioDataset(
                valid_split.utterances,
                max_samples=max_samples,
                seed=config.seed,
                sample_rate=SAMPLE_RATE,
                on_wrong_sample_rate=data.on_wrong_sample_rate,
            )
            self.valid_sampler = BucketBatchSampler(
                self.valid_set.cropped_lengths(),
                max_batch_samples=round(data.batch_seconds * SAMPLE_RATE),
                seed=config.seed,
                rank=self.context.rank,
                world_size=self.context.world_size,
                drop_uneven=False,
            )

    def _build_caption_data(self, audio: Selection) -> dict[str, object]:
        """The caption pairs, dataset and sampler of a grounded run; returns their summary."""
        config, data = self.config, self.config.data
        captions, grounding = config.captions, config.grounding
        assert captions is not None and grounding is not None  # only called for grounded runs
        languages = captions.languages or [share.language for share in audio.shares]
        audio_seconds = sum(share.selected_seconds for share in audio.shares)
        available = load_caption_pairs(
            captions.train,
            languages=languages,
            min_seconds=data.min_seconds,
            sample_rate=SAMPLE_RATE,
            on_missing=captions.on_missing,
            on_bad_audio=data.on_bad_audio,
            require_image_files=grounding.image_input == "pixels",
        )
        if not available.pairs:
            raise CaptionDataError(
                f"no usable caption in languages {', '.join(languages)} in "
                f"{', '.join(str(source.captions) for source in captions.train)}; check captions.languages"
            )
        chosen = limit_grounding(
            available,
            grounded_fraction=captions.grounded_fraction,
            audio_seconds=audio_seconds,
            seed=config.seed,
        )
        reached = chosen.grounded_fraction(audio_seconds)
        if self.context.is_main:
            LOGGER.info(
                "captions: %d pairs of %d images, %.3f h (of %.3f h usable); %.1f %% of the training audio "
                "has an image",
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
        self.image_source = open_image_source(grounding, captions)
        self.caption_set = CaptionDataset(
            chosen.pairs,
            image_source=self.image_source,
            max_samples=round(data.max_seconds * SAMPLE_RATE),
            seed=config.seed,
            sample_rate=SAMPLE_RATE,
            on_wrong_sample_rate=data.on_wrong_sample_rate,
        )
        self.caption_sampler = PairBatchSampler(
            len(chosen.pairs),
            pairs_per_batch=captions.pairs_per_batch,
            seed=config.seed,
            rank=self.context.rank,
            world_size=self.context.world_size,
            accumulation=config.optim.accumulation,
        )
        if captions.valid is not None:
            self.valid_captions = read_caption_set(
                captions.valid.captions,
                languages=languages,
                default_language=captions.valid.language,
                audio_root=captions.valid.audio_root,
                image_root=captions.valid.image_root,
                on_missing=captions.on_missing,
                require_image_files=grounding.image_input == "pixels",
            )
        return chosen.to_json(audio_seconds)

    def _build_optimizer(self) -> None:
        optim = self.config.optim
        # Weight decay on matrices only: decaying biases, norms and the mask embedding only hurts.
        decayed = [p for p in self.model.parameters() if p.ndim >= 2]
        others = [p for p in self.model.parameters() if p.ndim < 2]
        groups = [
            {"params": decayed, "weight_decay": optim.weight_decay},
            {"params": others, "weight_decay": 0.0},
        ]
        if self.weighting is not None and self.weighting.adaptive:
            groups.append({"params": list(self.weighting.parameters()), "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(
            groups,
            lr=optim.lr,
            betas=optim.betas,
            eps=optim.eps,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: lr_scale(
                step,
                warmup_steps=optim.warmup_steps,
                total_steps=self.config.max_steps,
                decay=optim.decay,
                final_ratio=optim.final_lr_ratio,
            ),
        )

    def _restore(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.best_valid_loss = state["best_valid_loss"]
        if self.step >= self.config.max_steps:  # finished: `run` only says so, whatever the launch
            return
        if state["world_size"] != self.context.world_size:
            raise ResumeError(
                f"{last_checkpoint_path(self.run_dir)} was written by a run with {state['world_size']} "
                f"ranks, but this one has {self.context.world_size}; an exact resumption needs the same "
                f"number (torchrun --nproc_per_node {state['world_size']}), or start a new run with another "
                "--run-dir"
            )
        if isinstance(self.model, VgsModel):
            self.model.load_checkpoint_entries(state)
            assert self.weighting is not None  # grounded runs have one
            self.weighting.load_state_dict(state["loss_weighting"])
            self.caption_epoch = state["caption_epoch"]
            self.caption_position = state["caption_position"]
        else:
            self.model.load_state_dict(state["model"])
        self.seconds_seen = dict(state.get("seconds_seen", self.seconds_seen))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = state["epoch"]
        self.position = state["position"]
        rank_state = state["ranks"][self.context.rank]
        self.bad_audio = dict(rank_state["bad_audio"])
        restore_rng_state(rank_state["rng"])
        LOGGER.info("resumed from %s at step %d", last_checkpoint_path(self.run_dir), self.step)

    # -- the loop -------------------------------------------------------------------------------------------

    def run(self, *, stop_at: int | None = None) -> TrainResult:
        config = self.config
        if self.step >= config.max_steps:
            LOGGER.info(
                "run %s already finished at step %d (%s); nothing to do",
                self.run_dir,
                self.step,
                last_checkpoint_path(self.run_dir),
            )
            return TrainResult(self.run_dir, self.step, True, self.best_valid_loss)
        end = config.max_steps if stop_at is None else min(stop_at, config.max_steps)
        if self.step >= end:
            LOGGER.info(
                "run %s is at step %d, at or past the requested stop %d", self.run_dir, self.step, end
            )
            return TrainResult(self.run_dir, self.step, False, self.best_valid_loss)
        if self.context.is_distributed:
            # Layer drop leaves layers unused on some ranks, and a grounded model's SSL and grounding passes
            # each leave the other's branch unused; DDP must be told, or it waits for their gradients.
            network: nn.Module = DistributedDataParallel(
                self.model,
                device_ids=[self.context.device.index] if self.context.device.type == "cuda" else None,
                find_unused_parameters=config.model.layer_drop > 0 or config.grounding is not None,
            )
        else:
            network = self.model
        metrics = MetricsLogger(
            self.run_dir,
            enabled=self.context.is_main,
            tensorboard=config.logging.tensorboard,
            resume_step=self.step,
        )
        progress = tqdm(
            total=end,
            initial=self.step,
            desc="train",
            unit="step",
            # None: shown on a terminal only, so batch-job logs do not fill with bar redraws.
            disable=None if self.context.is_main and config.logging.progress else True,
            dynamic_ncols=True,
        )
        LOGGER.info(
            "training %s to step %d on %d rank(s), device %s, precision %s",
            self.run_dir,
            end,
            self.context.world_size,
            self.context.device,
            self.autocast_dtype or torch.float32,
        )
        try:
            self._train_until(end, network, metrics, progress)
        finally:
            progress.close()
            metrics.close()
        skipped = sorted(
            {utt_id for ranks in all_gather_objects(self.bad_audio, self.context) for utt_id in ranks}
        )
        if skipped:
            LOGGER.warning("skipped %d unreadable files in all: %s", len(skipped), ", ".join(skipped))
        return TrainResult(self.run_dir, self.step, self.step >= config.max_steps, self.best_valid_loss)

    def _train_until(self, end: int, network: nn.Module, metrics: MetricsLogger, progress: tqdm) -> None:
        config = self.config
        means = IntervalMeans()
        interval_seconds = {"audio": 0.0, "captions": 0.0}
        interval_start = time.perf_counter()
        network.train()
        audio_steps = self._steps()
        caption_steps = self._caption_steps() if self.weighting is not None else None
        while True:
            lr = self.optimizer.param_groups[0]["lr"]
            if caption_steps is None:
                totals = accumulate_gradients(
                    network,
                    next(audio_steps),
                    seed=config.seed,
                    step=self.step,
                    context=self.context,
                    autocast_dtype=self.autocast_dtype,
                )
                values = _ssl_metrics(totals)
                seconds = {"audio": _audio_seconds(totals), "captions": 0.0}
                guarded = values
            else:
                kind = step_kind(self.step, config.grounded_objective, seed=config.seed)
                grounded = self._grounded_step(network, kind, audio_steps, caption_steps)
                values = _grounded_metrics(grounded, kind, self.weighting)
                seconds = {
                    "audio": _audio_seconds(grounded.audio),
                    "captions": _audio_seconds(grounded.captions),
                }
                # The collapse guard watches the audio-only SSL phase (caption-only steps: the caption one).
                ssl_phase = grounded.audio if grounded.audio is not None else grounded.captions
                assert ssl_phase is not None  # every step has audio-only or caption batches
                guarded = _ssl_metrics(ssl_phase)
            grad_norm = torch.nn.utils.clip_grad_norm_(
                self.model.parameters(),
                config.optim.clip_norm if config.optim.clip_norm is not None else math.inf,
            )
            if not torch.isfinite(grad_norm):
                raise NonFiniteLossError(
                    f"the gradient norm is {float(grad_norm)} at step {self.step + 1} although the loss is "
                    "finite; the parameters were not updated and the last checkpoint is intact. Lower "
                    "optim.lr or use precision fp32."
                )
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            self.step += 1
            self.model.set_num_updates(self.step)

            values |= {"gnorm": float(grad_norm), "lr": lr}
            means.add(values)
            for source, amount in seconds.items():
                interval_seconds[source] += amount
                self.seconds_seen[source] += amount
            progress.update(1)
            progress.set_postfix(
                loss=f"{values['loss']:.3f}", acc=f"{guarded['accuracy']:.2f}", refresh=False
            )
            if self.step % config.logging.every == 0 or self.step == end:
                logged = means.pop()
                elapsed = time.perf_counter() - interval_start
                interval_audio = sum(interval_seconds.values())
                logged["audio_seconds_per_second"] = interval_audio / elapsed
                if caption_steps is not None:
                    # The share of the training audio with an image: this interval's, and the run's so far.
                    logged["grounded_fraction"] = interval_seconds["captions"] / max(interval_audio, 1e-9)
                    logged["grounded_fraction_so_far"] = self.seconds_seen["captions"] / max(
                        sum(self.seconds_seen.values()), 1e-9
                    )
                metrics.log("train", self.step, logged)
                interval_seconds = {"audio": 0.0, "captions": 0.0}
                interval_start = time.perf_counter()
            self.guard.update(
                step=self.step,
                code_perplexity=guarded["code_perplexity"],
                accuracy=guarded["accuracy"],
                contrastive_loss=guarded["contrastive"],
            )
            self._validate_and_save(end, network, metrics)
            if self.step >= end:
                return

    def _steps(self) -> Iterator[list[Batch]]:
        """The micro-batches of each step, epoch after epoch, from the resumed position."""
        accumulation = self.config.optim.accumulation
        while True:
            self.train_set.set_epoch(self.epoch)
            self.train_sampler.set_epoch(self.epoch, start=self.position)
            epoch_length = len(self.train_sampler.rank_batches(self.epoch))
            micro_batches: list[Batch] = []
            for batch in self._loader(self.train_set, self.train_sampler):
                self.position += 1
                self._handle_problems(batch)
                micro_batches.append(batch)
                if len(micro_batches) == accumulation:
                    self._refuse_empty(micro_batches)
                    if self.position == epoch_length:
                        # Advance before the step so a checkpoint written after it resumes at the next epoch.
                        self.epoch, self.position = self.epoch + 1, 0
                    yield micro_batches
                    micro_batches = []

    def _grounded_step(
        self,
        network: nn.Module,
        kind: StepKind,
        audio_steps: Iterator[list[Batch]],
        caption_steps: Iterator[list[CaptionBatch]],
    ) -> GroundedTotals:
        """The gradients of one grounded step; each data stream advances only when the step uses it."""
        assert self.weighting is not None  # grounded runs have one
        return grounded_gradients(
            network,
            self.weighting,
            audio_batches=next(audio_steps) if kind != "captions" else [],
            caption_batches=next(caption_steps) if kind != "audio" else [],
            seed=self.config.seed,
            step=self.step,
            context=self.context,
            autocast_dtype=self.autocast_dtype,
        )

    def _caption_steps(self) -> Iterator[list[CaptionBatch]]:
        """`_steps` for the caption batches of a grounded run, with their own epoch and position."""
        accumulation = self.config.optim.accumulation
        while True:
            self.caption_set.set_epoch(self.caption_epoch)
            self.caption_sampler.set_epoch(self.caption_epoch, start=self.caption_position)
            epoch_length = len(self.caption_sampler.rank_batches(self.caption_epoch))
            micro_batches: list[CaptionBatch] = []
            for batch in self._loader(self.caption_set, self.caption_sampler, collate=collate_captions):
                self.caption_position += 1
                self._handle_problems(batch.audio)
                micro_batches.append(batch)
                if len(micro_batches) == accumulation:
                    self._refuse_empty([batch.audio for batch in micro_batches])
                    if self.caption_position == epoch_length:
                        self.caption_epoch, self.caption_position = self.caption_epoch + 1, 0
                    yield micro_batches
                    micro_batches = []

    def _loader(
        self,
        dataset: torch.utils.data.Dataset,
        sampler: BucketBatchSampler | PairBatchSampler,
        *,
        collate: Callable[[Sequence[Any]], Any] = collate_batch,
    ) -> DataLoader:
        workers = self.config.data.num_workers
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=workers,
            pin_memory=self.context.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
        )

    def _handle_problems(self, batch: Batch) -> None:
        check_problems(batch, on_bad_audio=self.config.data.on_bad_audio)
        for problem in batch.problems:
            if problem.utt_id not in self.bad_audio:
                self.bad_audio[problem.utt_id] = problem.message
                LOGGER.warning(
                    "skipping unreadable audio (%d so far on this rank): %s",
                    len(self.bad_audio),
                    problem.message,
                )

    def _refuse_empty(self, micro_batches: Sequence[Batch]) -> None:
        # A rank that raises here ends the whole torchrun job: its agent stops the other ranks.
        for batch in micro_batches:
            if len(batch) == 0:
                names = ", ".join(problem.utt_id for problem in batch.problems)
                raise EmptyBatchError(
                    f"every utterance of a micro-batch of step {self.step + 1} was unreadable ({names}); "
                    "fix or remove these files"
                )

    def _validate_and_save(self, end: int, network: nn.Module, metrics: MetricsLogger) -> None:
        config = self.config
        last = self.step >= end
        valid_loss = None
        if self.step % config.logging.valid_every == 0 or last:
            values: dict[str, float] = {}
            if self.valid_set is not None:
                values = self._validate()
                valid_loss = values["loss"]
            if self.valid_captions is not None:
                values |= self._validate_retrieval()
            if values:
                metrics.log("valid", self.step, values)
        is_best = valid_loss is not None and (
            self.best_valid_loss is None or valid_loss < self.best_valid_loss
        )
        if is_best:
            self.best_valid_loss = valid_loss
        if self.step % config.checkpoint.every == 0 or last or is_best:
            self._save(is_best=is_best)
        network.train()

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        """Loss over the whole validation set, with fixed masks, so evaluations are comparable."""
        self.model.eval()
        totals = torch.zeros(4, dtype=torch.float64)
        self.valid_sampler.set_epoch(0)
        for index, batch in enumerate(self._loader(self.valid_set, self.valid_sampler)):
            self._handle_problems(batch)
            if len(batch) == 0:
                continue
            global_index = index * self.context.world_size + self.context.rank
            torch.manual_seed(micro_batch_seed(self.config.seed, 0, global_index, stream=VALID_STREAM))
            with torch.autocast(
                self.context.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
            ):
                output = self.model(
                    batch.wav.to(self.context.device), batch.padding_mask.to(self.context.device), mask=True
                )
            totals += torch.stack(
                [
                    output.losses["ssl/contrastive"].double(),
                    output.losses["ssl/diversity"].double(),
                    output.num_masked.double(),
                    output.stats["ssl/accuracy"].double() * output.num_masked,
                ]
            ).cpu()
        totals = all_reduce_sum(totals.to(self.context.device), self.context).cpu().tolist()
        contrastive, diversity, num_masked, correct = totals
        count = max(num_masked, 1.0)
        values = {
            "loss": (contrastive + diversity) / count,
            "contrastive": contrastive / count,
            "diversity": diversity / count,
            "accuracy": correct / count,
        }
        LOGGER.info("step %d: valid loss %.4f, accuracy %.3f", self.step, values["loss"], values["accuracy"])
        return values

    def _validate_retrieval(self) -> dict[str, float]:
        """Recall@k on the valid captions as "<language>/<direction>_R@k", computed by rank 0 alone."""
        values: dict[str, float] = {}
        if self.context.is_main:
            assert isinstance(self.model, VgsModel) and self.valid_captions is not None
            embeddings = embed_caption_set(
                self.model,
                self.valid_captions,
                self.image_source,
                device=self.context.device,
                batch_seconds=self.config.data.batch_seconds,
            )
            for name, scores in retrieval_scores(embeddings).items():
                for direction in ("speech_to_image", "image_to_speech"):
                    for k, recall in scores[direction].items():
                        values[f"{name}/{direction}_{k}"] = recall
                LOGGER.info(
                    "step %d: retrieval %s (%d images): speech->image R@1 %.1f %%, R@10 %.1f %% "
                    "(chance %.1f %%)",
                    self.step,
                    name,
                    scores["images"],
                    scores["speech_to_image"]["R@1"],
                    scores["speech_to_image"]["R@10"],
                    scores["chance"]["speech_to_image"]["R@10"],
                )
        barrier(self.context)
        return values

    def _model_entries(self) -> dict[str, Any]:
        """The model part of a checkpoint: the audio encoder always under "model_config" and "model"."""
        if isinstance(self.model, VgsModel):
            return self.model.checkpoint_entries()
        return {"model_config": self.config.model.model_dump(mode="json"), "model": self.model.state_dict()}

    def _save(self, *, is_best: bool) -> None:
        check_replicas_identical(self.model, self.context)
        rank_state = {"rng": capture_rng_state(), "bad_audio": sorted(self.bad_audio.items())}
        ranks = all_gather_objects(rank_state, self.context)
        if self.context.is_main:
            state = {
                "format": CHECKPOINT_FORMAT,
                **self._model_entries(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "step": self.step,
                "epoch": self.epoch,
                "position": self.position,
                "best_valid_loss": self.best_valid_loss,
                "world_size": self.context.world_size,
                "train_config": self.config.identity(),
                "ranks": ranks,
                "seconds_seen": dict(self.seconds_seen),
            }
            if self.weighting is not None:
                state |= {
                    "loss_weighting": self.weighting.state_dict(),
                    "caption_epoch": self.caption_epoch,
                    "caption_position": self.caption_position,
                }
            path = save_checkpoint(
                state,
                self.run_dir,
                step=self.step,
                keep_last=self.config.checkpoint.keep_last,
                is_best=is_best,
            )
            LOGGER.info("step %d: saved %s%s", self.step, path, " (best)" if is_best else "")
        barrier(self.context)


def _audio_seconds(totals: dict[str, float] | None) -> float:
    """Seconds of audio (all ranks) a phase trained on; 0 for a phase the step did not run."""
    return totals["audio_samples"] / SAMPLE_RATE if totals is not None else 0.0


def _ssl_metrics(totals: dict[str, float]) -> dict[str, float]:
    """fairseq's names for the totals of an SSL phase (`gradients.TOTALS`)."""
    count = max(totals["num_masked"], 1.0)
    micro_batches = totals["micro_batches"]
    return {
        "loss": (totals["contrastive"] + totals["diversity"]) / count,
        "contrastive": totals["contrastive"] / count,
        "diversity": totals["diversity"] / count,
        "accuracy": totals["correct"] / count,
        "code_perplexity": totals["code_perplexity"] / micro_batches,
        "prob_perplexity": totals["prob_perplexity"] / micro_batches,
        "temp": totals["temperature"] / micro_batches,
        "fraction_masked": totals["fraction_masked"] / micro_batches,
    }


def _grounded_metrics(totals: GroundedTotals, kind: StepKind, weighting: LossWeighting) -> dict[str, float]:
    """A grounded step's metrics: `loss` is the weighted total; the audio-only SSL phase keeps fairseq's names
    (its loss as `ssl_loss`), the caption SSL phase has them prefixed `caption_`, the grounding loss `vg_`."""
    values = {"loss": weighting.objective_value(totals.losses), "caption_step": float(kind != "audio")}
    if totals.audio is not None:
        ssl = _ssl_metrics(totals.audio)
        ssl["ssl_loss"] = ssl.pop("loss")
        values |= ssl
    if totals.captions is not None:
        values |= {f"caption_{key}": value for key, value in _ssl_metrics(totals.captions).items()}
    if totals.grounding is not None:
        vg = totals.grounding
        pairs = max(vg["num_pairs"], 1.0)
        values |= {
            "vg_loss": totals.losses["vg"],
            "vg_audio_to_image": vg["audio_to_image"] / pairs,
            "vg_image_to_audio": vg["image_to_audio"] / pairs,
            "vg_accuracy_audio_to_image": vg["correct_audio_to_image"] / pairs,
            "vg_accuracy_image_to_audio": vg["correct_image_to_audio"] / pairs,
            "vg_temperature": vg["temperature"] / vg["micro_batches"],
        }
    if weighting.adaptive:
        values |= {f"weight_{term}": weighting.weight(term) for term in TERMS}
    return values
