"""The self-supervised training loop: one process or many under torchrun, CPU or CUDA.

A step, on every rank: M micro-batches, each seeded from (seed, step, global micro-batch index) and run
forward and backward on the loss SUMS the model returns (DDP averages gradients on the last micro-batch
only); one all-reduce of the step's totals (masked frames, loss sums, statistics, a non-finite flag); the
gradients are scaled by world_size / global masked frames, which turns DDP's average of sums into the loss
of one big batch (DESIGN §6.2); clipping; the AdamW update; the schedule. Seeding per micro-batch from its
global index makes a run's masks and dropout independent of how the global batch is split over ranks and
accumulation, and makes resumption exact.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
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
from vgssl.errors import VgsslError
from vgssl.model.config import SAMPLE_RATE
from vgssl.model.pretrained import CHECKPOINT_FORMAT, init_from_hf
from vgssl.model.wav2vec2 import Wav2Vec2
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
from vgssl.train.metrics import IntervalMeans, MetricsLogger
from vgssl.train.mixture import select_mixture
from vgssl.train.sampler import BucketBatchSampler
from vgssl.train.schedule import lr_scale

LOGGER = logging.getLogger("vgssl.train")
SELECTION_FILE = "selection.json"
LOG_FILE = "train.log"

# The step totals that are all-reduced together, in this order.
TOTALS = (
    "contrastive",
    "diversity",
    "num_masked",
    "correct",
    "code_perplexity",
    "prob_perplexity",
    "temperature",
    "fraction_masked",
    "micro_batches",
    "audio_samples",
    "non_finite",
)


class NonFiniteLossError(VgsslError):
    """The loss or the gradient became NaN or infinite; the last checkpoint is left intact."""


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
            return Trainer(config, context).run(stop_at=stop_at)
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


def micro_batch_seed(seed: int, step: int, global_index: int, *, stream: int = 0) -> int:
    """The torch seed of one micro-batch: a pure function of the run seed, the step and its global index."""
    return int(
        np.random.SeedSequence([seed, stream, step, global_index]).generate_state(1, dtype=np.uint64)[0]
    )


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


def accumulate_gradients(
    model: nn.Module,
    micro_batches: Sequence[Batch],
    *,
    seed: int,
    step: int,
    context: DistributedContext,
    autocast_dtype: torch.dtype | None,
) -> dict[str, float]:
    """Forward and backward every micro-batch (loss sums, DDP sync on the last), then scale the gradients to
    the loss of one big batch: the sum over all ranks and micro-batches divided by the global masked count.

    Returns the step's global totals (`TOTALS`). Raises `NonFiniteLossError` on every rank if any rank saw a
    non-finite loss, before the gradients are used.
    """
    totals = torch.zeros(len(TOTALS), dtype=torch.float64)
    non_finite_ids: list[str] = []
    for index, batch in enumerate(micro_batches):
        global_index = index * context.world_size + context.rank
        torch.manual_seed(micro_batch_seed(seed, step, global_index))
        last = index == len(micro_batches) - 1
        defer_sync = not last and isinstance(model, DistributedDataParallel)
        with model.no_sync() if defer_sync else contextlib.nullcontext():
            with torch.autocast(
                context.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
            ):
                output = model(
                    batch.wav.to(context.device, non_blocking=True),
                    batch.padding_mask.to(context.device, non_blocking=True),
                    mask=True,
                )
            loss = sum(output.losses.values())
            loss.backward()
        values = torch.stack(
            [
                output.losses["ssl/contrastive"].detach().double(),
                output.losses["ssl/diversity"].detach().double(),
                output.num_masked.double(),
                output.stats["ssl/accuracy"].double() * output.num_masked,
                output.stats["ssl/code_perplexity"].double(),
                output.stats["ssl/prob_perplexity"].double(),
                output.stats["ssl/temperature"].double(),
                output.stats["ssl/fraction_masked"].double(),
            ]
        ).cpu()
        totals[:8] += values
        totals[8] += 1
        totals[9] += batch.audio_samples
        if not math.isfinite(float(loss.detach())):
            totals[10] += 1
            non_finite_ids += batch.utt_ids
    totals = all_reduce_sum(totals.to(context.device), context)
    summed = dict(zip(TOTALS, totals.cpu().tolist(), strict=True))
    if summed["non_finite"] > 0:
        reports = [
            report for report in all_gather_objects((context.rank, non_finite_ids), context) if report[1]
        ]
        where = "; ".join(f"rank {rank}: {', '.join(ids)}" for rank, ids in reports)
        raise NonFiniteLossError(
            f"non-finite loss at step {step + 1} in batches with utterances [{where}]. The parameters were "
            "not updated and the last checkpoint is intact. Check these files, lower optim.lr, or use "
            "precision fp32."
        )
    scale = context.world_size / max(summed["num_masked"], 1.0)
    for parameter in model.parameters():
        if parameter.grad is not None:
            parameter.grad.mul_(scale)
    return summed


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
        self.best_valid_loss: float | None = None
        self.bad_audio: dict[str, str] = {}  # this rank's skipped files: utterance id -> problem

        random.seed(config.seed)
        np.random.seed(config.seed % 2**32)
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        self.model = Wav2Vec2(config.model)
        if config.init_from_hf is not None and self.checkpoint is None:
            init_from_hf(self.model, config.init_from_hf)
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

    def _build_optimizer(self) -> None:
        optim = self.config.optim
        # Weight decay on matrices only: decaying biases, norms and the mask embedding only hurts.
        decayed = [p for p in self.model.parameters() if p.ndim >= 2]
        others = [p for p in self.model.parameters() if p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decayed, "weight_decay": optim.weight_decay},
                {"params": others, "weight_decay": 0.0},
            ],
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
        self.model.load_state_dict(state["model"])
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
            # Layer drop leaves layers unused on some ranks; DDP must be told, or it waits for their grads.
            network: nn.Module = DistributedDataParallel(
                self.model,
                device_ids=[self.context.device.index] if self.context.device.type == "cuda" else None,
                find_unused_parameters=config.model.layer_drop > 0,
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
        interval_audio, interval_start = 0.0, time.perf_counter()
        network.train()
        for micro_batches in self._steps():
            lr = self.optimizer.param_groups[0]["lr"]
            totals = accumulate_gradients(
                network,
                micro_batches,
                seed=config.seed,
                step=self.step,
                context=self.context,
                autocast_dtype=self.autocast_dtype,
            )
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

            values = _step_metrics(totals, grad_norm=float(grad_norm), lr=lr)
            means.add(values)
            interval_audio += totals["audio_samples"] / SAMPLE_RATE
            progress.update(1)
            progress.set_postfix(loss=f"{values['loss']:.3f}", acc=f"{values['accuracy']:.2f}", refresh=False)
            if self.step % config.logging.every == 0 or self.step == end:
                logged = means.pop()
                elapsed = time.perf_counter() - interval_start
                logged["audio_seconds_per_second"] = interval_audio / elapsed
                metrics.log("train", self.step, logged)
                interval_audio, interval_start = 0.0, time.perf_counter()
            self.guard.update(
                step=self.step,
                code_perplexity=values["code_perplexity"],
                accuracy=values["accuracy"],
                contrastive_loss=values["contrastive"],
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

    def _loader(self, dataset: AudioDataset, sampler: BucketBatchSampler) -> DataLoader:
        workers = self.config.data.num_workers
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate_batch,
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
        if self.valid_set is not None and (self.step % config.logging.valid_every == 0 or last):
            valid_loss = self._validate(metrics)
        is_best = valid_loss is not None and (
            self.best_valid_loss is None or valid_loss < self.best_valid_loss
        )
        if is_best:
            self.best_valid_loss = valid_loss
        if self.step % config.checkpoint.every == 0 or last or is_best:
            self._save(is_best=is_best)
        network.train()

    @torch.no_grad()
    def _validate(self, metrics: MetricsLogger) -> float:
        """Loss over the whole validation set, with fixed masks, so evaluations are comparable."""
        self.model.eval()
        totals = torch.zeros(4, dtype=torch.float64)
        self.valid_sampler.set_epoch(0)
        for index, batch in enumerate(self._loader(self.valid_set, self.valid_sampler)):
            self._handle_problems(batch)
            if len(batch) == 0:
                continue
            global_index = index * self.context.world_size + self.context.rank
            torch.manual_seed(micro_batch_seed(self.config.seed, 0, global_index, stream=1))
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
        metrics.log("valid", self.step, values)
        LOGGER.info("step %d: valid loss %.4f, accuracy %.3f", self.step, values["loss"], values["accuracy"])
        return values["loss"]

    def _save(self, *, is_best: bool) -> None:
        check_replicas_identical(self.model, self.context)
        rank_state = {"rng": capture_rng_state(), "bad_audio": sorted(self.bad_audio.items())}
        ranks = all_gather_objects(rank_state, self.context)
        if self.context.is_main:
            state = {
                "format": CHECKPOINT_FORMAT,
                "model_config": self.config.model.model_dump(mode="json"),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "step": self.step,
                "epoch": self.epoch,
                "position": self.position,
                "best_valid_loss": self.best_valid_loss,
                "world_size": self.context.world_size,
                "train_config": self.config.identity(),
                "ranks": ranks,
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


def _step_metrics(totals: dict[str, float], *, grad_norm: float, lr: float) -> dict[str, float]:
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
        "gnorm": grad_norm,
        "lr": lr,
    }
