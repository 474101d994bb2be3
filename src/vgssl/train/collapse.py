"""Collapse guard: stop a run whose codebook, contrastive task or grounding has collapsed; say what to change.

Two SSL symptoms (DESIGN §6.1), each checked on every step's global statistics:
* the codebook: code perplexity (summed over groups, so its floor is the number of groups) stays near the
  floor — every frame maps to the same few code vectors, and the contrastive task becomes trivial;
* the task: accuracy near 1 with contrastive loss near 0 — the model tells positives from negatives without
  learning anything, usually because the negatives are too easy.
A symptom must persist for `patience` consecutive steps, so a noisy step never stops a run.

And one of grounded (VGS+) runs, checked on every logged step that had a grounding phase:
* the speech–image loss: when every caption and image embedding is the same, every logit of a row is equal
  and the margin-InfoNCE of pair i is ln(1 + n_i · e^m) per direction, with margin m and n_i the pair's
  negatives (the other pairs of its micro-batch, less those showing the same image): ln(1 + (B − 1) · e^m)
  for B distinct images, 3.73 for B = 16, m = 1. `collapsed_loss_sum` computes it exactly for a batch; the
  trainer logs it as `vg_collapsed_loss` on the scale of `vg_loss` (both directions summed per pair). A
  VG loss that stays within `vg_tolerance` of it for `vg_patience` logged steps is a collapsed grounding
  branch: retrieval is at chance and the loss gives the model nothing to learn from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from vgssl.errors import VgsslError
from vgssl.train.config import CollapseConfig, TrainConfig


class CollapseError(VgsslError):
    """Training collapsed; the message names the symptom and the settings to try."""


class CollapseGuard:
    def __init__(
        self,
        config: CollapseConfig,
        *,
        codebook_groups: int,
        codebook_entries: int,
        diversity_weight: float,
        mask_prob: float,
        mask_length: int,
        num_negatives: int,
    ) -> None:
        self.config = config
        self.perplexity_threshold = config.perplexity_floor_ratio * codebook_groups
        self.codebook_groups = codebook_groups
        self.codebook_entries = codebook_entries
        self.settings = {
            "model.diversity_weight": diversity_weight,
            "model.mask_prob": mask_prob,
            "model.mask_length": mask_length,
            "model.num_negatives": num_negatives,
        }
        self.codebook_streak = 0
        self.task_streak = 0

    def update(self, *, step: int, code_perplexity: float, accuracy: float, contrastive_loss: float) -> None:
        """Feed a step's statistics (contrastive loss per masked frame); raise `CollapseError` on collapse."""
        if not self.config.enabled:
            return
        codebook_collapsed = code_perplexity <= self.perplexity_threshold
        task_collapsed = (
            accuracy >= self.config.accuracy_ceiling and contrastive_loss <= self.config.loss_floor
        )
        self.codebook_streak = self.codebook_streak + 1 if codebook_collapsed else 0
        self.task_streak = self.task_streak + 1 if task_collapsed else 0
        patience = self.config.patience
        current = ", ".join(f"{key}={value}" for key, value in self.settings.items())
        if self.codebook_streak >= patience:
            raise CollapseError(
                f"codebook collapse at step {step}: code perplexity has stayed at or below "
                f"{self.perplexity_threshold:g} (floor {self.codebook_groups} = one entry per group, out of "
                f"{self.codebook_groups} × {self.codebook_entries}) for {patience} steps; now "
                f"{code_perplexity:.3g}. Current settings: {current}. Try a larger model.diversity_weight "
                "(e.g. 2-10× the current), a lower optim.lr or a longer optim.warmup_steps, and a slower "
                "Gumbel annealing (model.gumbel_temperature decay closer to 1); or raise collapse.patience "
                "if this is transient."
            )
        if self.task_streak >= patience:
            raise CollapseError(
                f"contrastive task collapse at step {step}: accuracy >= {self.config.accuracy_ceiling:g} "
                f"with contrastive loss <= {self.config.loss_floor:g} for {patience} steps (now accuracy "
                f"{accuracy:.3f}, loss {contrastive_loss:.3g}): the negatives are too easy to tell from the "
                f"positive. Current settings: {current}. Try a larger model.mask_prob (0.65 is wav2vec "
                "2.0's) and model.mask_length (10), more model.num_negatives, longer utterances "
                "(data.min_seconds), "
                "and check that the audio is not silent or duplicated; or raise collapse.patience."
            )


def collapsed_loss_sum(image_groups: torch.Tensor, *, margin: float, total_pairs: int | None = None) -> float:
    """Σ_i ln(1 + n_i · e^margin) over a micro-batch's pairs: one direction's loss sum at collapse.

    `image_groups` (B,): equal for pairs of the same image, which are not each other's negatives, so pair
    i has n_i = N − (pairs of its image) negatives, N = `total_pairs`: B, or the pairs of every rank's
    micro-batch when the negatives are gathered from all ranks (whose other images are never the same
    image: group ids are per batch). The image -> speech direction has the same value.
    """
    groups = image_groups.reshape(-1)
    if groups.numel() == 0:
        return 0.0
    same = (groups[:, None] == groups[None, :]).sum(dim=1).double()
    negatives = (groups.numel() if total_pairs is None else total_pairs) - same
    return float(torch.log1p(negatives * math.exp(margin)).sum())


class GroundingCollapseError(CollapseError):
    """The speech–image loss sits at its collapsed value: every embedding looks the same to it."""


class GroundingCollapseGuard:
    """Fires when the logged VG loss stays near its collapsed value for `vg_patience` logged steps."""

    def __init__(self, config: CollapseConfig, *, settings: Mapping[str, object]) -> None:
        self.config = config
        self.settings = dict(settings)
        self.streak = 0

    def is_collapsed(self, vg_loss: float, collapsed_loss: float) -> bool:
        return abs(vg_loss - collapsed_loss) <= self.config.vg_tolerance * collapsed_loss

    def update(self, *, step: int, vg_loss: float, collapsed_loss: float) -> None:
        """Feed a logged step's mean VG loss and its collapsed value (same scale); raise on collapse."""
        if not self.config.enabled or collapsed_loss <= 0.0:
            return
        self.streak = self.streak + 1 if self.is_collapsed(vg_loss, collapsed_loss) else 0
        patience = self.config.vg_patience
        if self.streak < patience:
            return
        current = ", ".join(f"{key}={value}" for key, value in self.settings.items())
        raise GroundingCollapseError(
            f"speech–image collapse at step {step}: the VG loss has stayed within "
            f"{100 * self.config.vg_tolerance:g} % of its collapsed value for {patience} logged steps (now "
            f"vg_loss {vg_loss:.4f}, collapsed {collapsed_loss:.4f} = 2 · mean ln(1 + n · e^margin) over the "
            "pairs, n = a pair's in-batch negatives): the audio and image embeddings have become the same "
            "for every pair, so retrieval is at chance and the grounding loss no longer trains anything. "
            f"Current settings: {current}. Try a lower learning rate and a longer warm-up for the new "
            "grounding parts (optim.head_lr, e.g. 3e-4 or a tenth of optim.lr, and optim.head_warmup_steps), "
            "frozen pretrained image features instead of a CNN trained from scratch (grounding.image_input: "
            "features with captions.image_features), a smaller grounding.margin (e.g. 0.2), or "
            "objective.schedule: ssl-then-joint so the encoder learns before grounding starts; or raise "
            "collapse.vg_patience if the loss leaves its collapsed value later."
        )


def guards_for(config: TrainConfig) -> tuple[CollapseGuard, GroundingCollapseGuard | None]:
    """A run's codebook collapse guard and, for VGS+ runs, its speech–image collapse guard (whose message
    quotes the settings that matter for grounding)."""
    model = config.model
    codebook = CollapseGuard(
        config.collapse,
        codebook_groups=model.codebook_groups,
        codebook_entries=model.codebook_entries,
        diversity_weight=model.diversity_weight,
        mask_prob=model.mask_prob,
        mask_length=model.mask_length,
        num_negatives=model.num_negatives,
    )
    if config.grounding is None or config.captions is None:
        return codebook, None
    settings = {
        "optim.lr": config.optim.lr,
        "optim.head_lr": config.optim.head_lr,
        "optim.warmup_steps": config.optim.warmup_steps,
        "optim.head_warmup_steps": config.optim.head_warmup_steps,
        "grounding.margin": config.grounding.margin,
        "grounding.temperature": config.grounding.temperature,
        "grounding.image_input": config.grounding.image_input,
        "captions.pairs_per_batch": config.captions.pairs_per_batch,
    }
    return codebook, GroundingCollapseGuard(config.collapse, settings=settings)
