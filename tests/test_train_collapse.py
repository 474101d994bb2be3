"""The collapse guards (codebook, contrastive task, speech–image) fire on a persistent symptom only."""

import math

import pytest
import torch

from vgssl.model.grounding import margin_info_nce
from vgssl.train.collapse import (
    CollapseError,
    CollapseGuard,
    GroundingCollapseError,
    GroundingCollapseGuard,
    collapsed_loss_sum,
)
from vgssl.train.config import CollapseConfig


def guard(**options) -> CollapseGuard:
    return CollapseGuard(
        CollapseConfig(patience=5, **options),
        codebook_groups=2,
        codebook_entries=320,
        diversity_weight=0.1,
        mask_prob=0.65,
        mask_length=10,
        num_negatives=100,
    )


HEALTHY = {"code_perplexity": 180.0, "accuracy": 0.4, "contrastive_loss": 2.5}


def test_codebook_collapse_fires_after_patience_consecutive_steps() -> None:
    watcher = guard()
    stream = [HEALTHY] * 3 + [{**HEALTHY, "code_perplexity": 2.2}] * 4 + [HEALTHY]  # a transient dip
    stream += [{**HEALTHY, "code_perplexity": 2.0 + 0.1 * i} for i in range(4)]
    for step, stats in enumerate(stream, start=1):
        watcher.update(step=step, **stats)
    with pytest.raises(
        CollapseError, match=r"codebook collapse at step 13: .*at or below 3 .*diversity_weight=0.1"
    ):
        watcher.update(step=13, **{**HEALTHY, "code_perplexity": 2.0})


def test_trivial_task_collapse_needs_both_high_accuracy_and_low_loss() -> None:
    watcher = guard()
    for step in range(1, 20):  # accuracy near 1 but a real loss: a model that is simply good
        watcher.update(step=step, code_perplexity=100.0, accuracy=0.995, contrastive_loss=0.3)
    with pytest.raises(CollapseError, match=r"contrastive task collapse at step 24: .*mask_prob"):
        for step in range(20, 25):
            watcher.update(step=step, code_perplexity=100.0, accuracy=0.999, contrastive_loss=0.001)


def test_disabled_guard_never_fires() -> None:
    watcher = guard(enabled=False)
    for step in range(50):
        watcher.update(step=step, code_perplexity=2.0, accuracy=1.0, contrastive_loss=0.0)


# --- speech–image collapse ---------------------------------------------------------------------------------


def test_the_collapsed_loss_is_the_models_loss_when_every_embedding_is_the_same() -> None:
    # FACTS: 16 distinct images, margin 1: ln(1 + 15 e) = 3.73 per pair and direction.
    assert collapsed_loss_sum(torch.arange(16), margin=1.0) / 16 == pytest.approx(math.log(1 + 15 * math.e))
    assert math.log(1 + 15 * math.e) == pytest.approx(3.7323, abs=1e-4)
    generator = torch.Generator().manual_seed(0)
    for groups, margin in (([0, 1, 0, 2, 2, 2, 3], 1.0), ([0, 1, 2, 3, 4], 0.3), ([5, 5], 2.0)):
        image_groups = torch.tensor(groups)
        same = torch.randn(1, 8, generator=generator)
        embedding = torch.nn.functional.normalize(same, dim=-1).expand(len(groups), 8)
        result = margin_info_nce(embedding, embedding, image_groups, margin=margin, logit_scale=14.3)
        expected = collapsed_loss_sum(image_groups, margin=margin)
        assert float(result.audio_to_image) == pytest.approx(expected, rel=1e-5)
        assert float(result.image_to_audio) == pytest.approx(expected, rel=1e-5)
    # Negatives gathered from 4 ranks of 4 pairs: 15 negatives per pair, however the ranks' images repeat.
    assert collapsed_loss_sum(torch.arange(4), margin=1.0, total_pairs=16) == pytest.approx(
        4 * math.log(1 + 15 * math.e)
    )


def grounding_guard(**options) -> GroundingCollapseGuard:
    config = CollapseConfig(vg_patience=4, vg_tolerance=0.02, **options)
    return GroundingCollapseGuard(config, settings={"optim.lr": 0.002, "optim.head_lr": None})


COLLAPSED = 2 * math.log(1 + 15 * math.e)  # vg_loss sums both directions


def test_grounding_collapse_fires_after_patience_logged_steps_at_the_collapsed_value() -> None:
    watcher = grounding_guard()
    for step in (10, 20, 30):  # at the collapsed value, up to noise
        watcher.update(step=step, vg_loss=COLLAPSED * (1 + 0.005 * (-1) ** step), collapsed_loss=COLLAPSED)
    with pytest.raises(GroundingCollapseError) as caught:
        watcher.update(step=40, vg_loss=COLLAPSED, collapsed_loss=COLLAPSED)
    message = str(caught.value)
    assert message.startswith("speech–image collapse at step 40: the VG loss has stayed within 2 %")
    assert f"collapsed {COLLAPSED:.4f}" in message and "optim.head_lr=None" in message
    for advice in ("optim.head_lr", "grounding.image_input: features", "grounding.margin"):
        assert advice in message
    assert isinstance(caught.value, CollapseError)


def test_grounding_that_leaves_its_collapsed_value_is_not_stopped() -> None:
    watcher = grounding_guard()
    # Three logged steps at collapse, then the loss leaves it (FACTS: 3.63 per direction at lr 3e-4), comes
    # back briefly, and learns: never four collapsed logged steps in a row.
    losses = [COLLAPSED] * 3 + [2 * 3.63, COLLAPSED, COLLAPSED, COLLAPSED, 2 * 3.5, 2 * 3.2, 2 * 2.9, 2 * 2.5]
    for index, loss in enumerate(losses, start=1):
        watcher.update(step=10 * index, vg_loss=loss, collapsed_loss=COLLAPSED)
    # A loss well above the collapsed value (a random start) is not collapse either.
    for index in range(10):
        watcher.update(step=200 + index, vg_loss=1.3 * COLLAPSED, collapsed_loss=COLLAPSED)
    disabled = grounding_guard(enabled=False)
    for index in range(10):
        disabled.update(step=index, vg_loss=COLLAPSED, collapsed_loss=COLLAPSED)
