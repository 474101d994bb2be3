"""Collapse guard: stop a run whose codebook or contrastive task has collapsed, and say what to change.

Two symptoms (DESIGN §6.1), each checked on every step's global statistics:
* the codebook: code perplexity (summed over groups, so its floor is the number of groups) stays near the
  floor — every frame maps to the same few code vectors, and the contrastive task becomes trivial;
* the task: accuracy near 1 with contrastive loss near 0 — the model tells positives from negatives without
  learning anything, usually because the negatives are too easy.
A symptom must persist for `patience` consecutive steps, so a noisy step never stops a run.
"""

from __future__ import annotations

from vgssl.errors import VgsslError
from vgssl.train.config import CollapseConfig


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
