"""What a grounded (VGS+) step trains on, and how much each loss term weighs.

`step_kind` decides from the step number and the seed alone whether a step is audio-only, caption-only or
joint, so all ranks agree without communicating and a resumed run repeats the same sequence. `LossWeighting`
holds the weights of the three terms of L = w_ssl · L_ssl(audio) + w_cap · L_ssl(captions) + w_vg · L_vg:
fixed (the paper's setting), or learned by uncertainty weighting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import numpy as np
import torch
from torch import nn

from vgssl.train.config import ObjectiveConfig

StepKind = Literal["audio", "captions", "joint"]
Term = Literal["ssl", "caption_ssl", "vg"]
TERMS: tuple[Term, ...] = ("ssl", "caption_ssl", "vg")


def step_kind(step: int, objective: ObjectiveConfig, *, seed: int) -> StepKind:
    """The kind of step `step` (0-based: the update that follows `step` completed updates)."""
    if objective.schedule == "joint":
        return "joint"
    if objective.schedule == "ssl-then-joint":
        return "audio" if step < objective.audio_only_steps else "joint"
    caption = is_interleaved_caption_step(
        step, fraction=objective.caption_step_fraction, block=objective.interleave_block, seed=seed
    )
    return "captions" if caption else "audio"


def is_interleaved_caption_step(step: int, *, fraction: float, block: int, seed: int) -> bool:
    """Exactly floor(fraction · block · (b + 1)) − floor(fraction · block · b) caption steps in block b.

    So the first n blocks hold floor(fraction · block · n) caption steps: the configured fraction, exactly
    at block boundaries and within one step in between. Their positions in a block are a permutation drawn
    from (seed, block index), so caption steps are spread out, not bunched at the start of each block.
    """
    index, offset = divmod(step, block)
    # A tiny epsilon so that e.g. 0.3 · 100 · 1 = 30.000000000000004 and 29.999999999999996 both give 30.
    quota = math.floor(fraction * block * (index + 1) + 1e-9) - math.floor(fraction * block * index + 1e-9)
    positions = np.random.default_rng([seed, index]).permutation(block)[:quota]
    return bool(offset in positions)


class LossWeighting(nn.Module):
    """The effective weight of each term, and for `uncertainty` the learned log-variances s_i.

    Uncertainty weighting minimises Σ_i w_i · exp(−s_i) · L_i + s_i over the model and s: a term's weight
    settles where w_i · exp(−s_i) · L_i = 1, i.e. it falls as its loss grows. The s_i get their gradient
    1 − w_i · exp(−s_i) · L_i from `set_gradients`, computed from the step's global losses, so every rank
    applies the same update without DDP.
    """

    def __init__(self, objective: ObjectiveConfig) -> None:
        super().__init__()
        weights = objective.weights.resolved()
        self.fixed = {term: float(weights[term]) for term in TERMS}
        self.adaptive = objective.weighting == "uncertainty"
        self.log_variances = nn.ParameterDict(
            {term: nn.Parameter(torch.zeros(())) for term in TERMS} if self.adaptive else {}
        )

    def weight(self, term: Term) -> float:
        if not self.adaptive:
            return self.fixed[term]
        return self.fixed[term] * math.exp(-self.log_variances[term].item())

    def objective_value(self, losses: Mapping[Term, float]) -> float:
        """The step's weighted loss Σ w_i · L_i over the terms it computed (regulariser excluded)."""
        return sum(self.weight(term) * value for term, value in losses.items())

    def set_gradients(self, losses: Mapping[Term, float]) -> None:
        """Gradients of the log-variances for the terms of this step; the others get none (no update)."""
        for term, parameter in self.log_variances.items():
            if term in losses:
                parameter.grad = torch.full_like(parameter, 1.0 - self.weight(term) * losses[term])
            else:
                parameter.grad = None
