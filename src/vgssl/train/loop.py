"""The training loop, audio-only (SSL-A) or visually grounded (VGS+): one process or many under torchrun.

A step, on every rank: the gradients of the step's loss (`vgssl.train.gradients`: M micro-batches per
phase, loss sums normalised by global counts, so DDP and accumulation equal one big batch); clipping; the
AdamW update; the schedule. A grounded run draws each step's kind (audio-only, caption-only or joint) from
`vgssl.train.objective`, feeds caption batches (`vgssl.train.captions`) besides the audio ones, reports the
grounded fraction of the training audio it has seen, and logs speech–image retrieval on the valid captions.
The caption-speech control (captions without grounding) is an audio-only model on the same two streams
and schedule, with the SSL loss only: w_ssl · L_ssl(audio batch) + w_cap · L_ssl(caption batch).

Parameter groups and their schedules are `vgssl.train.optimizer`'s. On logging steps of runs with captions,
the gradient norm of each model part is logged (`grad_norm/<part>`, and per loss term
`grad_norm/<term>/<part>`), before clipping, like `gnorm`. best.pt follows `checkpoint.best_by`.
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

from vgssl.atomic import atomic_write_json, atomic_write_text
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
from vgssl.train.collapse import CollapseGuard, GroundingCollapseGuard
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
    collapsed_grounding_loss,
    grounded_gradients,
    micro_batch_seed,
)
from vgssl.train.metrics import IntervalMeans, MetricsLogger
from vgssl.train.mixture import Selection, select_mixture
from vgssl.train.objective import TERMS, LossWeighting, StepKind, step_kind
from vgssl.train.optimizer import build_optimizer, current_learning_rates, gradient_norms, module_parameters
from vgssl.train.sampler import BucketBatchSampler

LOGGER = logging.getLogger("vgssl.train")
SELECTION_FILE = "selection.json"
CAPTION_IDS_FILE = "caption_utterances.txt"  # the selected caption ids of a run with captions, one per line
LOG_FILE = "train.log"
POOLED = "all"  # the retrieval scores over every valid caption, whatever its language
# Keys of `seconds_seen` (checkpoints) for the caption stream: speech with an image (VGS+), or the same
# caption speech heard without its image (the caption-speech control; "captions" stays 0 there).
GROUNDED_CAPTIONS, CAPTION_SPEECH = "captions", "caption_speech"


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
        self.caption_epoch = 0  # the same two for the caption batches of a run with captions
        self.caption_position = 0
        self.caption_key = GROUNDED_CAPTIONS if config.is_grounded else CAPTION_SPEECH
        # Training audio of all ranks so far: "audio" (audio-only), "captions" (with an image, 0 but in VGS+
        # runs) and, for the control, "caption_speech" (the caption speech heard without images).
        self.seconds_seen = {"audio": 0.0, GROUNDED_CAPTIONS: 0.0, self.caption_key: 0.0}
        self.best_valid_loss: float | None = None
        # What best.pt is: {"criterion", "value" (a list, compared in order), "step"}; None before any.
        self.best: dict[str, Any] | None = None
        self.bad_audio: dict[str, str] = {}  # this rank's skipped files: utterance id -> problem

        random.seed(config.seed)
        np.random.seed(config.seed % 2**32)
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        self.model: Wav2Vec2 | VgsModel
        self.weighting: LossWeighting | None = None
        if config.grounding is None:
            self.model = Wav2Vec2(config.model)
            audio_encoder = self.model
            if config.is_caption_control:
                self.weighting = LossWeighting(config.grounded_objective).to(context.device)
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
        self.grounding_guard: GroundingCollapseGuard | None = None
        if config.grounding is not None:
            assert config.captions is not None  # TrainConfig checks that they come together
            self.grounding_guard = GroundingCollapseGuard(
                config.collapse,
                settings={
                    "optim.lr": config.optim.lr,
                    "optim.head_lr": config.optim.head_lr,
                    "optim.warmup_steps": config.optim.warmup_steps,
                    "optim.head_warmup_steps": config.optim.head_warmup_steps,
                    "grounding.margin": config.grounding.margin,
                    "grounding.temperature": config.grounding.temperature,
                    "grounding.image_input": config.grounding.image_input,
                    "captions.pairs_per_batch": config.captions.pairs_per_batch,
                },
            )
        # Per-part gradient norms, on logging steps of runs with captions.
        self.parts = module_parameters(self.model) if self.weighting is not None else None

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
        caption_summary, caption_ids = None, None
        if config.captions is not None:
            caption_summary, caption_ids = self._build_caption_data(selection)
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
            if caption_summary is not None and caption_ids is not None:
                summary["captions"] = caption_summary
                atomic_write_text(self.run_dir / CAPTION_IDS_FILE, "".join(f"{i}\n" for i in caption_ids))
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

    def _build_caption_data(self, audio: Selection) -> tuple[dict[str, object], list[str]]:
        """The caption pairs, dataset and sampler of a run with captions; returns their summary and ids.

        The caption-speech control selects exactly as a grounded run would (it requires the image files a
        pixel-input grounded run requires, so `on_missing: skip` leaves out the same captions), but reads
        no image.
        """
        config, data = self.config, self.config.data
        captions, grounding = config.captions, config.grounding
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
            available,
            grounded_fraction=captions.grounded_fraction,
            audio_seconds=audio_seconds,
            seed=config.seed,
        )
        reached = chosen.grounded_fraction(audio_seconds)
        if self.context.is_main:
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
        self.image_source = open_image_source(grounding, captions) if grounding is not None else None
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
        if captions.valid is not None and grounding is not None:
            self.valid_captions = read_caption_set(
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
        return summary, chosen.utt_ids

    def _build_optimizer(self) -> None:
        adaptive = self.weighting is not None and self.weighting.adaptive
        self.optimizer, self.scheduler, groups = build_optimizer(
            self.model,
            self.config.optim,
            max_steps=self.config.max_steps,
            loss_weighting=self.weighting if adaptive else None,
        )
        if self.context.is_main:
            for group, spec in zip(self.optimizer.param_groups, groups, strict=True):
                LOGGER.info(
                    "optimizer group %s: %d tensors, %d parameters, peak lr %g, weight decay %g",
                    spec.name,
                    len(spec.parameters),
                    sum(p.numel() for p in spec.parameters),
                    group["initial_lr"],
                    group["weight_decay"],
                )

    def _restore(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.best_valid_loss = state["best_valid_loss"]
        self.best = state.get("best")
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
        else:
            self.model.load_state_dict(state["model"])
        if self.weighting is not None:
            self.weighting.load_state_dict(state["loss_weighting"])
            self.caption_epoch = state["caption_epoch"]
            self.caption_position = state["caption_position"]
        self.seconds_seen = dict(state.get("seconds_seen", self.seconds_seen))
        saved_groups = [group.get("name") for group in state["optimizer"]["param_groups"]]
        groups = [group["name"] for group in self.optimizer.param_groups]
        if saved_groups != groups:
            raise ResumeError(
                f"{last_checkpoint_path(self.run_dir)} holds optimizer state for the parameter groups "
                f"{saved_groups}, but this version of vgssl makes {groups} (weight decay and learning rates "
                "by role); finish that run with the vgssl version that started it, or start a new run with "
                "another --run-dir"
            )
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
        caption_key = self.caption_key
        interval_seconds = {"audio": 0.0, caption_key: 0.0}
        interval_start = time.perf_counter()
        network.train()
        audio_steps = self._steps()
        caption_steps = self._caption_steps() if self.weighting is not None else None
        while True:
            rates = current_learning_rates(self.optimizer)
            logging_step = (self.step + 1) % config.logging.every == 0 or self.step + 1 == end
            grad_norms: dict[str, float] = {}
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
                seconds = {"audio": _audio_seconds(totals), caption_key: 0.0}
                guarded = values
            else:
                assert self.weighting is not None  # runs with captions have one
                kind = step_kind(self.step, config.grounded_objective, seed=config.seed)
                grounded = self._grounded_step(
                    network, kind, audio_steps, caption_steps, measure=logging_step
                )
                values = _grounded_metrics(grounded, kind, self.weighting)
                seconds = {
                    "audio": _audio_seconds(grounded.audio),
                    caption_key: _audio_seconds(grounded.captions),
                }
                # The collapse guard watches the audio-only SSL phase (caption-only steps: the caption one).
                ssl_phase = grounded.audio if grounded.audio is not None else grounded.captions
                assert ssl_phase is not None  # every step has audio-only or caption batches
                guarded = _ssl_metrics(ssl_phase)
                if logging_step:
                    assert self.parts is not None  # measured for every run with captions
                    grad_norms = {
                        f"grad_norm/{name}": norm for name, norm in gradient_norms(self.parts).items()
                    }
                    grad_norms |= {f"grad_norm/{name}": norm for name, norm in grounded.grad_norms.items()}
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

            values |= {"gnorm": float(grad_norm), "lr": rates["encoder"], **grad_norms}
            if "head" in rates:
                values["lr_head"] = rates["head"]
            means.add(values)
            for source, amount in seconds.items():
                interval_seconds[source] += amount
                self.seconds_seen[source] += amount
            progress.update(1)
            progress.set_postfix(
                loss=f"{values['loss']:.3f}", acc=f"{guarded['accuracy']:.2f}", refresh=False
            )
            if logging_step:
                logged = means.pop()
                elapsed = time.perf_counter() - interval_start
                interval_audio = sum(interval_seconds.values())
                logged["audio_seconds_per_second"] = interval_audio / elapsed
                if caption_steps is not None:
                    # The caption stream's share of the training audio (VGS+: the share with an image): this
                    # interval's, and the run's so far.
                    name = "grounded_fraction" if config.is_grounded else "caption_speech_fraction"
                    logged[name] = interval_seconds[caption_key] / max(interval_audio, 1e-9)
                    logged[f"{name}_so_far"] = self.seconds_seen[caption_key] / max(
                        sum(self.seconds_seen.values()), 1e-9
                    )
                metrics.log("train", self.step, logged)
                interval_seconds = {"audio": 0.0, caption_key: 0.0}
                interval_start = time.perf_counter()
                if self.grounding_guard is not None and "vg_loss" in logged:
                    self.grounding_guard.update(
                        step=self.step, vg_loss=logged["vg_loss"], collapsed_loss=logged["vg_collapsed_loss"]
                    )
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
        *,
        measure: bool,
    ) -> GroundedTotals:
        """The gradients of one step of a run with captions; each stream advances only when the step uses
        it. `measure`: also measure each loss term's gradient norm per model part (logging steps)."""
        assert self.weighting is not None  # runs with captions have one
        return grounded_gradients(
            network,
            self.weighting,
            audio_batches=next(audio_steps) if kind != "captions" else [],
            caption_batches=next(caption_steps) if kind != "audio" else [],
            seed=self.config.seed,
            step=self.step,
            context=self.context,
            autocast_dtype=self.autocast_dtype,
            measure=self.parts if measure else None,
        )

    def _caption_steps(self) -> Iterator[list[CaptionBatch]]:
        """`_steps` for the caption batches of a run with captions, with their own epoch and position."""
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
        is_best = False
        # Not at a `stop_at` before max_steps: best.pt must not depend on where a run was interrupted.
        if self.step % config.logging.valid_every == 0 or self.step >= config.max_steps:
            values: dict[str, float] = {}
            valid_loss = None
            if self.valid_set is not None:
                values = self._validate()
                valid_loss = values["loss"]
                if self.best_valid_loss is None or valid_loss < self.best_valid_loss:
                    self.best_valid_loss = valid_loss
            retrieval: dict[str, float] = {}
            if self.valid_captions is not None:
                retrieval = self._validate_retrieval()
                values |= retrieval
            score = self._best_score(valid_loss, retrieval)
            if score is not None:
                values[f"best_by/{config.best_by}"] = score[0]
                is_best = self.best is None or _is_better(config.best_by, score, self.best["value"])
                if is_best:
                    self.best = {"criterion": config.best_by, "value": score, "step": self.step}
            if values:
                metrics.log("valid", self.step, values)
        if self.step % config.checkpoint.every == 0 or last or is_best:
            self._save(is_best=is_best)
        network.train()

    def _best_score(self, valid_loss: float | None, retrieval: dict[str, float]) -> list[float] | None:
        """This validation's score for `checkpoint.best_by` (the same on every rank), or None without one.

        ssl_loss: [valid loss]. retrieval: [mean R@10, mean R@1] of speech->image and image->speech over
        all valid captions (pooled over languages; a one-language set has no pooled entry, its language's is
        the same), in %; rank 0 computes retrieval alone and sends the score to the others.
        """
        if self.config.best_by == "ssl_loss":
            return None if valid_loss is None else [valid_loss]
        score = None
        if retrieval:
            names = sorted({key.split("/")[0] for key in retrieval})
            name = POOLED if POOLED in names else names[0]
            score = [
                (retrieval[f"{name}/speech_to_image_R@{k}"] + retrieval[f"{name}/image_to_speech_R@{k}"]) / 2
                for k in (10, 1)
            ]
        return all_gather_objects(score, self.context)[0]

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
                "best": self.best,
                "world_size": self.context.world_size,
                "train_config": self.config.identity(),
                "ranks": ranks,
                "seconds_seen": dict(self.seconds_seen),
            }
            if self.weighting is not None:  # a run with captions
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


def _is_better(criterion: str, score: Sequence[float], best: Sequence[float]) -> bool:
    """ssl_loss: a strictly lower loss. retrieval: a higher [R@10, R@1], compared in order; a tie goes to the
    later checkpoint (as good at grounding, and trained longer)."""
    if criterion == "ssl_loss":
        return score[0] < best[0]
    return tuple(score) >= tuple(best)


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
            # vg_loss if every embedding were the same (both directions; each direction's is half).
            "vg_collapsed_loss": collapsed_grounding_loss(vg),
        }
    if weighting.adaptive:
        values |= {f"weight_{term}": weighting.weight(term) for term in TERMS}
    return values
