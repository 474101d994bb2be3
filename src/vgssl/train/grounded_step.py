"""A grounded (VGS+) step's gradient: its phases (`vgssl.train.gradients`) added up with their weights.

A grounded step runs up to three phases — SSL on the audio-only batches, SSL on the caption batches, grounding
on the caption batches — each normalised by its own global count, and `grounded_gradients` adds their
gradients with the weights of `LossWeighting`. With `grounding.audio_pass: masked` the last two are one
phase (FaST-VGS+: the grounding branch reads the caption SSL loss's masked pass), whose single backward
carries both weighted terms:

    L = w_ssl · L_ssl(audio-only) + w_cap · L_ssl(captions) + w_vg · L_vg

That sum is formed here and nowhere else. Each phase ends with its own DDP synchronisation (its counts are
known only then), so a joint step all-reduces gradients three times. The caption-speech control (captions
without grounding) runs the two SSL phases only. On request (logging steps), the norm of each phase's
weighted gradient is measured per model part before the phases are added up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from vgssl.train.captions import CaptionBatch
from vgssl.train.data import Batch
from vgssl.train.distributed import DistributedContext
from vgssl.train.gradients import (
    CAPTION_SSL_STREAM,
    SSL_STREAM,
    GroundingPhaseError,
    accumulate_gradients,
    accumulate_grounding_gradients,
    accumulate_joint_gradients,
    grounding_config_of,
    grounding_loss,
    ssl_loss,
)
from vgssl.train.objective import LossWeighting, Term


@dataclass
class GroundedTotals:
    """The global totals of each phase a grounded step ran, and each term's normalised loss."""

    audio: dict[str, float] | None = None
    captions: dict[str, float] | None = None
    grounding: dict[str, float] | None = None
    losses: dict[Term, float] = field(default_factory=dict)
    # On request: "<term>/<part>" -> the norm of w_term · the term's gradient over that part's parameters.
    grad_norms: dict[str, float] = field(default_factory=dict)


def grounded_gradients(
    model: nn.Module,
    weighting: LossWeighting,
    *,
    audio_batches: Sequence[Batch],
    caption_batches: Sequence[CaptionBatch],
    seed: int,
    step: int,
    context: DistributedContext,
    autocast_dtype: torch.dtype | None,
    measure: Mapping[str, Sequence[nn.Parameter]] | None = None,
) -> GroundedTotals:
    """The gradient of L = Σ w_i · L_i over the phases this step has data for, left in `.grad`.

    Each phase leaves the gradient of its own normalised loss L_i in `.grad`; it is moved, times w_i, into
    a running sum before the next phase starts, so phases never mix their normalisers. The weighting's own
    parameters get their gradient from the global losses. Caption batches without images (the
    caption-speech control's) get no grounding phase. `measure` (part name -> parameters): also measure
    each phase's weighted gradient norm per part.
    """
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    weighted: list[torch.Tensor | None] = [None] * len(parameters)

    def add_phase(name: str, weight: float) -> None:
        squares: dict[int, torch.Tensor] = {}
        for index, parameter in enumerate(parameters):
            if parameter.grad is None:
                continue
            gradient = parameter.grad.mul_(weight)
            if measure is not None:
                squares[id(parameter)] = gradient.detach().float().square().sum()
            if weighted[index] is None:
                weighted[index] = gradient
            else:
                weighted[index].add_(gradient)
            parameter.grad = None
        for part, part_parameters in (measure or {}).items():
            found = [squares[id(p)] for p in part_parameters if id(p) in squares]
            if found:
                result.grad_norms[f"{name}/{part}"] = float(torch.stack(found).sum().sqrt())

    result = GroundedTotals()
    common = {"seed": seed, "step": step, "context": context, "autocast_dtype": autocast_dtype}
    if audio_batches:
        result.audio = accumulate_gradients(model, audio_batches, stream=SSL_STREAM, **common)
        result.losses["ssl"] = ssl_loss(result.audio)
        add_phase("ssl", weighting.weight("ssl"))
    if caption_batches:
        with_images = [batch.images.numel() > 0 for batch in caption_batches]
        if any(with_images) != all(with_images):
            raise GroundingPhaseError("a step mixes caption batches with and without images; this is a bug")
        if all(with_images) and grounding_config_of(model).audio_pass == "masked":
            result.captions, result.grounding = accumulate_joint_gradients(
                model, caption_batches, caption_weight=weighting.weight("caption_ssl"),
                vg_weight=weighting.weight("vg"), **common,
            )  # fmt: skip
            result.losses["caption_ssl"] = ssl_loss(result.captions)
            result.losses["vg"] = grounding_loss(result.grounding)
            add_phase("caption_ssl+vg", 1.0)  # weighted in the phase: one backward carries both
        else:
            caption_audio = [batch.audio for batch in caption_batches]
            result.captions = accumulate_gradients(model, caption_audio, stream=CAPTION_SSL_STREAM, **common)
            result.losses["caption_ssl"] = ssl_loss(result.captions)
            add_phase("caption_ssl", weighting.weight("caption_ssl"))
            if all(with_images):
                result.grounding = accumulate_grounding_gradients(model, caption_batches, **common)
                result.losses["vg"] = grounding_loss(result.grounding)
                add_phase("vg", weighting.weight("vg"))
    for parameter, gradient in zip(parameters, weighted, strict=True):
        parameter.grad = gradient
    weighting.set_gradients(result.losses)
    return result
