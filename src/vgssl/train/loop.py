"""The training loop, audio-only (SSL-A) or visually grounded (VGS+): one process or many under torchrun.

A step, on every rank: the gradients of the step's loss (`vgssl.train.gradients`: M micro-batches per
phase, loss sums normalised by global counts); clipping; the AdamW update; the schedule. A run with captions
(VGS+, or the caption-speech control) draws each step's kind — audio-only, caption-only or joint — from
`vgssl.train.objective` and takes its batches from two resumable streams (`vgssl.train.stream`), the
audio-only one and the caption one. Then: metrics (`vgssl.train.metrics`), the collapse guards, validation
and best.pt (`vgssl.train.validation`), checkpoints.

What lives elsewhere: the run's data (`run_data`), parameter groups and schedules (`optimizer`), the
checkpoint files (`checkpoint`), logging set-up (`logs`), devices and precision (`distributed`).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vgssl.locks import exclusive_lock
from vgssl.model.pretrained import CHECKPOINT_FORMAT, init_from_hf
from vgssl.model.vgs import VgsModel
from vgssl.model.wav2vec2 import Wav2Vec2
from vgssl.train.checkpoint import (
    ResumeError,
    capture_rng_state,
    last_checkpoint_path,
    load_last_checkpoint,
    prepare_run_dir,
    restore_rng_state,
    save_checkpoint,
)
from vgssl.train.collapse import guards_for
from vgssl.train.config import TrainConfig
from vgssl.train.data import BadAudioLog
from vgssl.train.distributed import (
    DistributedContext,
    all_gather_objects,
    barrier,
    check_replicas_identical,
    deterministic_kernels,
    resolve_autocast_dtype,
    setup_distributed,
    teardown_distributed,
    wrap_for_ddp,
)
from vgssl.train.gradients import NonFiniteLossError, accumulate_gradients
from vgssl.train.grounded_step import grounded_gradients
from vgssl.train.logs import LOGGER, log_to_run_dir
from vgssl.train.metrics import (
    IntervalMeans,
    MetricsLogger,
    audio_seconds,
    grounded_metrics,
    interval_rates,
    progress_bar,
    ssl_metrics,
)
from vgssl.train.objective import LossWeighting, step_kind
from vgssl.train.optimizer import (
    build_optimizer,
    current_learning_rates,
    describe_groups,
    gradient_norms,
    module_parameters,
    restore_optimizer,
)
from vgssl.train.run_data import build_run_data
from vgssl.train.validation import Validator

# Keys of `seconds_seen` (checkpoints) for the caption stream: speech with an image (VGS+), or the same
# caption speech heard without its image (the caption-speech control; "captions" stays 0 there).
GROUNDED_CAPTIONS, CAPTION_SPEECH = "captions", "caption_speech"


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    step: int
    finished: bool  # reached max_steps (otherwise stopped early by `stop_at`)
    best_valid_loss: float | None


def train(config: TrainConfig, *, stop_at: int | None = None) -> TrainResult:
    """Train (or resume) the run in `config.run_dir`; stop after step `stop_at` if given (checkpointed)."""
    context = setup_distributed()
    # One trainer per run directory: rank 0 holds its lock for the whole run (a second trainer fails at once).
    lock = exclusive_lock(config.run_dir, job="trainer") if context.is_main else contextlib.nullcontext()
    try:
        with lock, deterministic_kernels(config.deterministic):
            prepared = prepare_run_dir(config) if context.is_main else None
            barrier(context)
            with log_to_run_dir(config.run_dir, context):
                if prepared == "extend":
                    LOGGER.info(
                        "extending %s to %d steps (config.yaml updated)", config.run_dir, config.max_steps
                    )
                result = Trainer(config, context).run(stop_at=stop_at)
            # Leave together: a rank that tears gloo down while another still talks to it can abort the job.
            barrier(context)
        return result
    finally:
        teardown_distributed(context)


@dataclass
class _StepResult:
    values: dict[str, float]  # the metrics of the step
    seconds: dict[str, float]  # audio trained on (all ranks), per source
    guarded: dict[str, float]  # the SSL phase the codebook collapse guard watches


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
        self.caption_key = GROUNDED_CAPTIONS if config.is_grounded else CAPTION_SPEECH
        # Training audio of all ranks so far: "audio" (audio-only), "captions" (with an image, 0 but in VGS+
        # runs) and, for the control, "caption_speech" (the caption speech heard without images).
        self.seconds_seen = {"audio": 0.0, GROUNDED_CAPTIONS: 0.0, self.caption_key: 0.0}
        self.bad_audio = BadAudioLog(on_bad_audio=config.data.on_bad_audio)  # this rank's skipped files

        random.seed(config.seed)
        np.random.seed(config.seed % 2**32)
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        self.model, self.weighting = self._build_model()
        self.model.to(context.device)
        self.autocast_dtype = resolve_autocast_dtype(config.precision, context.device)
        self.data = build_run_data(config, context, inspect=self.bad_audio.inspect)
        self.validator = Validator(
            config, context, self.data, autocast_dtype=self.autocast_dtype, inspect=self.bad_audio.inspect
        )
        adaptive = self.weighting is not None and self.weighting.adaptive
        self.optimizer, self.scheduler, groups = build_optimizer(
            self.model,
            config.optim,
            max_steps=config.max_steps,
            loss_weighting=self.weighting if adaptive else None,
        )
        if context.is_main:
            for line in describe_groups(self.optimizer, groups):
                LOGGER.info("optimizer group %s", line)
        if self.checkpoint is not None:
            self._restore(self.checkpoint)
        self.model.set_num_updates(self.step)
        self.guard, self.grounding_guard = guards_for(config)
        # Per-part gradient norms, on logging steps of runs with captions.
        self.parts = module_parameters(self.model) if self.weighting is not None else None

    # -- set-up ---------------------------------------------------------------------------------------------

    def _build_model(self) -> tuple[Wav2Vec2 | VgsModel, LossWeighting | None]:
        """The model (VGS+: its audio encoder built first, so it starts from the weights an audio-only run
        starts from) and, for runs with captions, the loss weighting."""
        config = self.config
        model: Wav2Vec2 | VgsModel
        if config.grounding is None:
            model = Wav2Vec2(config.trained_model)
            audio_encoder = model
        else:
            model = VgsModel(config.trained_model, config.grounding)
            audio_encoder = model.audio
        weighting = None
        if config.captions is not None:
            weighting = LossWeighting(config.grounded_objective).to(self.context.device)
        if config.init_from_hf is not None and self.checkpoint is None:
            init_from_hf(audio_encoder, config.init_from_hf)
            LOGGER.info("initialised the model from %s", config.init_from_hf)
        return model, weighting

    def _restore(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.validator.load_state(state)
        if self.step >= self.config.max_steps:  # finished: `run` only says so, whatever the launch
            return
        where = last_checkpoint_path(self.run_dir)
        if state["world_size"] != self.context.world_size:
            raise ResumeError(
                f"{where} was written by a run with {state['world_size']} ranks, but this one has "
                f"{self.context.world_size}; an exact resumption needs the same number (torchrun "
                f"--nproc_per_node {state['world_size']}), or start a new run with another --run-dir"
            )
        self.model.load_checkpoint_entries(state)
        if self.weighting is not None:
            assert self.data.captions is not None  # runs with captions have both
            self.weighting.load_state_dict(state["loss_weighting"])
            self.data.captions.epoch = state["caption_epoch"]
            self.data.captions.position = state["caption_position"]
        self.seconds_seen = dict(state.get("seconds_seen", self.seconds_seen))
        restore_optimizer(self.optimizer, self.scheduler, state, where=where)
        self.data.audio.epoch = state["epoch"]
        self.data.audio.position = state["position"]
        rank_state = state["ranks"][self.context.rank]
        self.bad_audio.skipped = dict(rank_state["bad_audio"])
        restore_rng_state(rank_state["rng"])
        LOGGER.info("resumed from %s at step %d", where, self.step)

    # -- the loop -------------------------------------------------------------------------------------------

    def run(self, *, stop_at: int | None = None) -> TrainResult:
        config = self.config
        end = config.max_steps if stop_at is None else min(stop_at, config.max_steps)
        if self.step >= end:
            done = self.step >= config.max_steps
            state = f"finished at step {self.step}" if done else f"at step {self.step}, past the stop {end}"
            last = last_checkpoint_path(self.run_dir)
            LOGGER.info("run %s is already %s (%s); nothing to do", self.run_dir, state, last)
            return self._result()
        # Layer drop leaves layers unused on some ranks, and a grounded model's SSL and grounding passes
        # each leave the other's branch unused; DDP must be told, or it waits for their gradients.
        unused = config.model.layer_drop > 0 or config.grounding is not None
        network = wrap_for_ddp(self.model, self.context, find_unused_parameters=unused)
        metrics = MetricsLogger(
            self.run_dir,
            enabled=self.context.is_main,
            tensorboard=config.logging.tensorboard,
            resume_step=self.step,
        )
        progress = progress_bar(end, self.step, enabled=self.context.is_main and config.logging.progress)
        LOGGER.info(
            "training %s to step %d on %d rank(s), device %s, precision %s",
            self.run_dir, end, self.context.world_size, self.context.device,
            self.autocast_dtype or torch.float32,
        )  # fmt: skip
        try:
            self._train_until(end, network, metrics, progress)
        finally:
            progress.close()
            metrics.close()
        skipped = sorted(
            {utt for ranks in all_gather_objects(self.bad_audio.skipped, self.context) for utt in ranks}
        )
        if skipped:
            LOGGER.warning("skipped %d unreadable files in all: %s", len(skipped), ", ".join(skipped))
        return self._result()

    def _result(self) -> TrainResult:
        finished = self.step >= self.config.max_steps
        return TrainResult(self.run_dir, self.step, finished, self.validator.best_valid_loss)

    def _train_until(self, end: int, network: nn.Module, metrics: MetricsLogger, progress: tqdm) -> None:
        config = self.config
        means = IntervalMeans()
        interval_seconds = {"audio": 0.0, self.caption_key: 0.0}
        interval_start = time.perf_counter()
        network.train()
        audio_steps = self.data.audio.steps()
        caption_steps = self.data.captions.steps() if self.data.captions is not None else None
        while self.step < end:
            rates = current_learning_rates(self.optimizer)
            logging_step = (self.step + 1) % config.logging.every == 0 or self.step + 1 == end
            step = self._gradients(network, audio_steps, caption_steps, measure=logging_step)
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

            values = step.values | {"gnorm": float(grad_norm), "lr": rates["encoder"]}
            if "head" in rates:
                values["lr_head"] = rates["head"]
            means.add(values)
            for source, amount in step.seconds.items():
                interval_seconds[source] += amount
                self.seconds_seen[source] += amount
            progress.update(1)
            progress.set_postfix(
                loss=f"{values['loss']:.3f}", acc=f"{step.guarded['accuracy']:.2f}", refresh=False
            )
            if logging_step:
                logged = means.pop() | interval_rates(
                    interval_seconds, self.seconds_seen, time.perf_counter() - interval_start,
                    caption_key=self.caption_key if self.data.captions is not None else None,
                    grounded=self.config.is_grounded,
                )  # fmt: skip
                metrics.log("train", self.step, logged)
                interval_seconds = {"audio": 0.0, self.caption_key: 0.0}
                interval_start = time.perf_counter()
                if self.grounding_guard is not None and "vg_loss" in logged:
                    self.grounding_guard.update(
                        step=self.step, vg_loss=logged["vg_loss"], collapsed_loss=logged["vg_collapsed_loss"]
                    )
            self.guard.update(
                step=self.step,
                code_perplexity=step.guarded["code_perplexity"],
                accuracy=step.guarded["accuracy"],
                contrastive_loss=step.guarded["contrastive"],
            )
            self._validate_and_save(end, network, metrics)

    def _gradients(
        self, network: nn.Module, audio_steps: Any, caption_steps: Any, *, measure: bool
    ) -> _StepResult:
        """The gradients of one step, left in `.grad`, and its metrics. A run with captions advances each
        stream only when the step's kind uses it; `measure` (logging steps) also measures each part's
        gradient norm, per loss term and in all."""
        config = self.config
        if caption_steps is None:
            totals = accumulate_gradients(
                network, next(audio_steps), seed=config.seed, step=self.step, context=self.context,
                autocast_dtype=self.autocast_dtype,
            )  # fmt: skip
            values = ssl_metrics(totals)
            return _StepResult(values, {"audio": audio_seconds(totals), self.caption_key: 0.0}, values)
        assert self.weighting is not None and self.parts is not None  # runs with captions have both
        kind = step_kind(self.step, config.grounded_objective, seed=config.seed)
        grounded = grounded_gradients(
            network,
            self.weighting,
            audio_batches=next(audio_steps) if kind != "captions" else [],
            caption_batches=next(caption_steps) if kind != "audio" else [],
            seed=config.seed,
            step=self.step,
            context=self.context,
            autocast_dtype=self.autocast_dtype,
            measure=self.parts if measure else None,
        )
        values = grounded_metrics(grounded, kind, self.weighting)
        if measure:
            values |= {f"grad_norm/{name}": norm for name, norm in gradient_norms(self.parts).items()}
            values |= {f"grad_norm/{name}": norm for name, norm in grounded.grad_norms.items()}
        # The collapse guard watches the audio-only SSL phase (caption-only steps: the caption one).
        ssl_phase = grounded.audio if grounded.audio is not None else grounded.captions
        assert ssl_phase is not None  # every step has audio-only or caption batches
        seconds = {"audio": audio_seconds(grounded.audio), self.caption_key: audio_seconds(grounded.captions)}
        return _StepResult(values, seconds, ssl_metrics(ssl_phase))

    # -- validation and checkpoints -------------------------------------------------------------------------

    def _validate_and_save(self, end: int, network: nn.Module, metrics: MetricsLogger) -> None:
        is_best = False
        if self.validator.due(self.step):
            values, is_best = self.validator.validate(self.model, self.step)
            if values:
                metrics.log("valid", self.step, values)
        if self.step % self.config.checkpoint.every == 0 or self.step >= end or is_best:
            self._save(is_best=is_best)
        network.train()

    def _save(self, *, is_best: bool) -> None:
        check_replicas_identical(self.model, self.context)
        rank_state = {"rng": capture_rng_state(), "bad_audio": sorted(self.bad_audio.skipped.items())}
        ranks = all_gather_objects(rank_state, self.context)
        if self.context.is_main:
            state = {
                "format": CHECKPOINT_FORMAT,
                **self.model.checkpoint_entries(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "step": self.step,
                "epoch": self.data.audio.epoch,
                "position": self.data.audio.position,
                **self.validator.state(),
                "world_size": self.context.world_size,
                "train_config": self.config.identity(),
                "ranks": ranks,
                "seconds_seen": dict(self.seconds_seen),
            }
            if self.weighting is not None and self.data.captions is not None:  # a run with captions
                state |= {
                    "loss_weighting": self.weighting.state_dict(),
                    "caption_epoch": self.data.captions.epoch,
                    "caption_position": self.data.captions.position,
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
