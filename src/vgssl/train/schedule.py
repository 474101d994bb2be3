"""Learning-rate schedule: linear warmup from 0, then linear or cosine decay to a final fraction."""

from __future__ import annotations

import math
from typing import Literal


def lr_scale(
    step: int,
    *,
    warmup_steps: int,
    total_steps: int,
    decay: Literal["linear", "cosine"],
    final_ratio: float = 0.0,
) -> float:
    """The multiplier of the peak learning rate for the update that follows `step` completed updates."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    shape = 1.0 - progress if decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return final_ratio + (1.0 - final_ratio) * shape
