"""A training step's gradients: the SSL loss of audio batches, and the full VGS+ loss of a grounded step.

An SSL phase, on every rank: M micro-batches, each seeded from (seed, stream, step, global micro-batch index)
and run forward and backward on the loss SUMS the model returns (DDP averages gradients on the last
micro-batch only); one all-reduce of the phase's totals (masked frames, loss sums, statistics, a non-finite
flag); the gradients are scaled by world_size / global masked frames, which turns DDP's average of sums into
the loss of one big batch (DESIGN §6.2) for the contrastive term. The diversity term is not a sum over
frames: each micro-batch's comes from its own codebook perplexity (as in fairseq, per GPU batch), so the
step's diversity is the masked-frame-weighted mean of the micro-batches' values and depends on the split
(N ranks × M micro-batches equal one process with the same N·M micro-batches, not one big batch). Seeding
per micro-batch from its global index makes a run's masks and dropout independent of how the global batch
is split over ranks and accumulation, and makes resumption exact.

A grounding phase does the same with the speech–image loss on caption batches (unmasked audio), normalised by
the global number of caption–image pairs. Negatives are the other pairs of the same micro-batch: on this
rank, or on every rank when the model gathers them (`grounding.gather_negatives`).
Its totals include the loss sum the batch would have if every embedding were the same
(`vgssl.train.collapse.collapsed_loss_sum`), so the trainer can log and guard the collapsed value. The joint
phase (`grounding.audio_pass: masked`) runs both on one masked pass per caption micro-batch; its span masks
are drawn before the forwards, so both global counts are known before the first backward.
`vgssl.train.grounded_step` adds the phases of a grounded step with their weights.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vgssl.errors import VgsslError
from vgssl.model.vgs import GroundingConfig, GroundingOutput
from vgssl.model.wav2vec2 import Wav2Vec2, Wav2Vec2Output
from vgssl.train.captions import CaptionBatch
from vgssl.train.collapse import collapsed_loss_sum
from vgssl.train.data import Batch
from vgssl.train.distributed import DistributedContext, all_gather_objects, all_reduce_sum

# Seed streams: each kind of forward pass draws its own random numbers for the same (step, micro-batch).
SSL_STREAM, VALID_STREAM, CAPTION_SSL_STREAM, GROUNDING_STREAM = 0, 1, 2, 3
# A training pass's span mask comes from a generator of its own (stream + MASK_STREAM_OFFSET), so it does
# not depend on what else the pass draws and can be drawn before the forward.
MASK_STREAM_OFFSET = 100

# Each phase's statistics, summed over micro-batches and all-reduced together, in this order; every phase
# also counts PHASE_COUNTS.
SSL_STATISTICS = (
    "contrastive",
    "diversity",
    "num_masked",
    "correct",
    "code_perplexity",
    "prob_perplexity",
    "temperature",
    "fraction_masked",
)
GROUNDING_STATISTICS = (
    "audio_to_image",
    "image_to_audio",
    "num_pairs",
    "correct_audio_to_image",
    "correct_image_to_audio",
    "temperature",
    "collapsed",
)
PHASE_COUNTS = ("micro_batches", "audio_samples", "non_finite")


class GroundingPhaseError(VgsslError):
    """A grounding phase was asked of a model or of caption batches that cannot have one."""


class NonFiniteLossError(VgsslError):
    """The loss or the gradient became NaN or infinite; the last checkpoint is left intact."""


def micro_batch_seed(seed: int, step: int, global_index: int, *, stream: int = 0) -> int:
    """The torch seed of one micro-batch: a pure function of the run seed, the step and its global index."""
    return int(
        np.random.SeedSequence([seed, stream, step, global_index]).generate_state(1, dtype=np.uint64)[0]
    )


# One micro-batch's forward pass (model, batch, index in the step): the loss sum to back-propagate and the
# batch's statistics in the phase's order.
type Forward[M] = Callable[[nn.Module, M, int], tuple[torch.Tensor, list[torch.Tensor]]]


def accumulate_gradients(
    model: nn.Module,
    micro_batches: Sequence[Batch],
    *,
    seed: int,
    step: int,
    context: DistributedContext,
    autocast_dtype: torch.dtype | None,
    stream: int = SSL_STREAM,
) -> dict[str, float]:
    """The SSL phase: masked forward passes, gradients scaled by world_size / the global masked count — one
    big batch's contrastive loss exactly; the diversity term stays each micro-batch's own, weighted by its
    masked frames.

    Returns the step's global totals (`SSL_STATISTICS` + `PHASE_COUNTS`). Raises `NonFiniteLossError` on
    every rank if any rank saw a non-finite loss, before the gradients are used.
    """

    def forward(network: nn.Module, batch: Batch, index: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        output = network(
            batch.wav.to(context.device, non_blocking=True),
            batch.padding_mask.to(context.device, non_blocking=True),
            mask=True,
            time_mask=draw_span_mask(
                model, batch, index, seed=seed, step=step, stream=stream, context=context
            ),
        )
        return sum(output.losses.values()), _ssl_statistics(output)

    return _accumulate(
        model, micro_batches, forward, SSL_STATISTICS, "num_masked", audio_of=lambda batch: batch,
        seed=seed, step=step, stream=stream, context=context, autocast_dtype=autocast_dtype,
    )  # fmt: skip


def draw_span_mask(
    model: nn.Module,
    batch: Batch,
    index: int,
    *,
    seed: int,
    step: int,
    stream: int,
    context: DistributedContext,
) -> torch.Tensor:
    """The span mask of micro-batch `index` of this rank: a pure function of (seed, step, stream, its
    global index) and the batch's lengths."""
    global_index = index * context.world_size + context.rank
    stream += MASK_STREAM_OFFSET
    generator = torch.Generator().manual_seed(micro_batch_seed(seed, step, global_index, stream=stream))
    return _audio_encoder(model).span_mask(batch.wav, batch.padding_mask, generator=generator)


def _audio_encoder(model: nn.Module) -> Wav2Vec2:
    module = model.module if isinstance(model, DistributedDataParallel) else model
    encoder = getattr(module, "audio", module)
    assert isinstance(encoder, Wav2Vec2)  # an SSL model, or a VGS+ model's audio encoder
    return encoder


def _ssl_statistics(output: Wav2Vec2Output) -> list[torch.Tensor]:
    """A masked pass's statistics, in `SSL_STATISTICS` order."""
    return [
        output.losses["ssl/contrastive"].detach(),
        output.losses["ssl/diversity"].detach(),
        output.num_masked,
        output.stats["ssl/accuracy"].double() * output.num_masked,
        output.stats["ssl/code_perplexity"],
        output.stats["ssl/prob_perplexity"],
        output.stats["ssl/temperature"],
        output.stats["ssl/fraction_masked"],
    ]


def accumulate_grounding_gradients(
    model: nn.Module,
    micro_batches: Sequence[CaptionBatch],
    *,
    seed: int,
    step: int,
    context: DistributedContext,
    autocast_dtype: torch.dtype | None,
) -> dict[str, float]:
    """The grounding phase: the speech–image loss of unmasked caption audio, normalised by the global pair
    count.

    Returns the global totals (`GROUNDING_STATISTICS` + `PHASE_COUNTS`); "collapsed" is one direction's loss
    sum at collapse for these batches and the model's margin, with the negatives of one micro-batch, or of
    the same micro-batch of every rank when the model gathers negatives (`grounding.gather_negatives`).
    """
    margin, negatives_from_all_ranks = _grounding_options(model)
    pair_counts = torch.tensor([len(batch.image_groups) for batch in micro_batches], dtype=torch.float64)
    if negatives_from_all_ranks and context.is_distributed:
        pair_counts = all_reduce_sum(pair_counts.to(context.device), context).cpu()

    def forward(
        network: nn.Module, batch: CaptionBatch, index: int
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        output = _caption_forward(network, batch, context, mask=False)
        statistics = _grounding_statistics(
            output, batch.image_groups, margin=margin, total_pairs=round(float(pair_counts[index]))
        )
        return sum(output.losses.values()), statistics

    return _accumulate(
        model, micro_batches, forward, GROUNDING_STATISTICS, "num_pairs", audio_of=lambda batch: batch.audio,
        seed=seed, step=step, stream=GROUNDING_STREAM, context=context, autocast_dtype=autocast_dtype,
    )  # fmt: skip


def accumulate_joint_gradients(
    model: nn.Module,
    micro_batches: Sequence[CaptionBatch],
    *,
    caption_weight: float,
    vg_weight: float,
    seed: int,
    step: int,
    context: DistributedContext,
    autocast_dtype: torch.dtype | None,
) -> tuple[dict[str, float], dict[str, float]]:
    """The masked-pass phase (`grounding.audio_pass: masked`): one masked forward per caption micro-batch
    serves the caption SSL loss and the grounding loss, and its backward carries
    w_cap · L_ssl(captions) + w_vg · L_vg, each normalised by its global count.

    Both counts must be known before the first backward: the span masks are drawn first (from the same
    generators as the caption SSL phase's) and the masked and pair counts all-reduced once. With w_vg = 0
    this is the caption SSL phase (times w_cap), random numbers included. Returns the (caption SSL,
    grounding) totals, as `accumulate_gradients` and `accumulate_grounding_gradients` return them.
    """
    margin, negatives_from_all_ranks = _grounding_options(model)
    masks = [
        draw_span_mask(
            model, batch.audio, index, seed=seed, step=step, stream=CAPTION_SSL_STREAM, context=context
        )
        for index, batch in enumerate(micro_batches)
    ]
    pair_counts = torch.tensor([len(batch.image_groups) for batch in micro_batches], dtype=torch.float64)
    local = torch.tensor([float(sum(int(mask.sum()) for mask in masks)), float(pair_counts.sum())])
    global_masked, global_pairs = all_reduce_sum(local.double().to(context.device), context).cpu().tolist()
    if negatives_from_all_ranks and context.is_distributed:
        pair_counts = all_reduce_sum(pair_counts.to(context.device), context).cpu()
    ssl_scale = caption_weight * context.world_size / max(global_masked, 1.0)
    vg_scale = vg_weight * context.world_size / max(global_pairs, 1.0)

    def forward(
        network: nn.Module, batch: CaptionBatch, index: int
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        output = _caption_forward(network, batch, context, time_mask=masks[index])
        assert output.ssl is not None  # audio_pass: masked, checked by the caller
        loss = ssl_scale * sum(output.ssl.losses.values()) + vg_scale * sum(output.losses.values())
        return loss, _ssl_statistics(output.ssl) + _grounding_statistics(
            output, batch.image_groups, margin=margin, total_pairs=round(float(pair_counts[index]))
        )

    names = [f"ssl:{name}" for name in SSL_STATISTICS] + [f"vg:{name}" for name in GROUNDING_STATISTICS]
    summed = _accumulate(
        model, micro_batches, forward, names, None, audio_of=lambda batch: batch.audio,
        seed=seed, step=step, stream=CAPTION_SSL_STREAM, context=context, autocast_dtype=autocast_dtype,
    )  # fmt: skip
    counts = {name: summed[name] for name in PHASE_COUNTS}
    ssl = {name: summed[f"ssl:{name}"] for name in SSL_STATISTICS} | counts
    grounding = {name: summed[f"vg:{name}"] for name in GROUNDING_STATISTICS} | counts
    return ssl, grounding


def _caption_forward(
    network: nn.Module, batch: CaptionBatch, context: DistributedContext, **options: object
) -> GroundingOutput:
    """A VGS+ model's forward of one caption micro-batch with its images, on the context's device."""
    return network(
        batch.audio.wav.to(context.device, non_blocking=True),
        batch.audio.padding_mask.to(context.device, non_blocking=True),
        images=batch.images.to(context.device, non_blocking=True),
        image_groups=batch.image_groups.to(context.device, non_blocking=True),
        **options,
    )


def _grounding_statistics(output: GroundingOutput, image_groups: torch.Tensor, *, margin: float,
                          total_pairs: int) -> list[torch.Tensor]:  # fmt: skip
    """A grounding pass's statistics, in `GROUNDING_STATISTICS` order."""
    pairs = output.num_pairs.double()
    collapsed = collapsed_loss_sum(image_groups, margin=margin, total_pairs=total_pairs)
    return [
        output.losses["vg/audio_to_image"].detach(),
        output.losses["vg/image_to_audio"].detach(),
        pairs,
        output.stats["vg/accuracy_audio_to_image"].double() * pairs,
        output.stats["vg/accuracy_image_to_audio"].double() * pairs,
        output.stats["vg/temperature"],
        torch.tensor(collapsed, dtype=torch.float64),
    ]


def _accumulate[M: (Batch, CaptionBatch)](
    model: nn.Module,
    micro_batches: Sequence[M],
    forward: Forward[M],
    names: Sequence[str],
    normaliser: str | None,
    *,
    audio_of: Callable[[M], Batch],
    seed: int,
    step: int,
    stream: int,
    context: DistributedContext,
    autocast_dtype: torch.dtype | None,
) -> dict[str, float]:
    """One phase: each micro-batch seeded from its global index, forward (autocast) and backward on its loss
    sum (DDP synchronises on the last only); one all-reduce of the statistics and `PHASE_COUNTS`; a
    non-finite loss anywhere refused on every rank; gradients scaled by world_size / the global
    `normaliser`: DDP's average of sums becomes the sum over all micro-batches divided by the global count
    (one big batch's loss for the terms that are sums over frames or pairs). `normaliser` None: the
    forward's losses are normalised already."""
    totals = torch.zeros(len(names) + len(PHASE_COUNTS), dtype=torch.float64)
    non_finite_ids: list[str] = []
    for index, batch in enumerate(micro_batches):
        global_index = index * context.world_size + context.rank
        torch.manual_seed(micro_batch_seed(seed, step, global_index, stream=stream))
        last = index == len(micro_batches) - 1
        defer_sync = not last and isinstance(model, DistributedDataParallel)
        with model.no_sync() if defer_sync else contextlib.nullcontext():
            with torch.autocast(
                context.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
            ):
                loss, statistics = forward(model, batch, index)
            loss.backward()
        audio = audio_of(batch)
        totals[: len(names)] += torch.stack([value.double() for value in statistics]).cpu()
        totals[len(names)] += 1
        totals[len(names) + 1] += audio.audio_samples
        if not math.isfinite(float(loss.detach())):
            totals[len(names) + 2] += 1
            non_finite_ids += audio.utt_ids
    totals = all_reduce_sum(totals.to(context.device), context)
    summed = dict(zip([*names, *PHASE_COUNTS], totals.cpu().tolist(), strict=True))
    _refuse_non_finite(summed["non_finite"], non_finite_ids, step=step, context=context)
    if normaliser is not None:
        _scale_gradients(model, context.world_size / max(summed[normaliser], 1.0))
    return summed


def _grounding_options(model: nn.Module) -> tuple[float, bool]:
    """The (margin, negatives gathered from all ranks) of a VGS+ model, unwrapped from DDP."""
    config = grounding_config_of(model)
    return float(config.margin), bool(config.gather_negatives)


def grounding_config_of(model: nn.Module) -> GroundingConfig:
    module = model.module if isinstance(model, DistributedDataParallel) else model
    config = getattr(module, "grounding_config", None)
    if config is None:
        raise GroundingPhaseError(
            f"a grounding phase needs a VGS+ model (with a grounding_config), got {type(module).__name__}"
        )
    return config


def _refuse_non_finite(count: float, ids: list[str], *, step: int, context: DistributedContext) -> None:
    if count == 0:
        return
    reports = [report for report in all_gather_objects((context.rank, ids), context) if report[1]]
    where = "; ".join(f"rank {rank}: {', '.join(utt_ids)}" for rank, utt_ids in reports)
    raise NonFiniteLossError(
        f"non-finite loss at step {step + 1} in batches with utterances [{where}]. The parameters were "
        "not updated and the last checkpoint is intact. Check these files, lower optim.lr, or use "
        "precision fp32."
    )


def _scale_gradients(model: nn.Module, scale: float) -> None:
    for parameter in model.parameters():
        if parameter.grad is not None:
            parameter.grad.mul_(scale)


def ssl_loss(totals: dict[str, float]) -> float:
    """An SSL phase's loss per masked frame (contrastive + weighted diversity)."""
    return (totals["contrastive"] + totals["diversity"]) / max(totals["num_masked"], 1.0)


def grounding_loss(totals: dict[str, float]) -> float:
    """A grounding phase's loss per pair: both retrieval directions, as FaST-VGS+ sums them."""
    return (totals["audio_to_image"] + totals["image_to_audio"]) / max(totals["num_pairs"], 1.0)


def collapsed_grounding_loss(totals: dict[str, float]) -> float:
    """`grounding_loss` if every embedding were the same: both directions' collapsed values per pair."""
    return 2.0 * totals["collapsed"] / max(totals["num_pairs"], 1.0)
