"""The collapse guard fires on a persistent symptom only, and explains it."""

import pytest

from vgssl.train.collapse import CollapseError, CollapseGuard
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
