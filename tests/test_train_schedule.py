"""The learning-rate schedule: warmup from 0, then linear or cosine decay to the final ratio at max_steps."""

from itertools import pairwise

import pytest

from vgssl.train.schedule import lr_scale


@pytest.mark.parametrize("decay", ["linear", "cosine"])
def test_warmup_then_decay(decay: str) -> None:
    scales = [lr_scale(s, warmup_steps=10, total_steps=110, decay=decay, final_ratio=0.1) for s in range(120)]
    assert scales[0] == pytest.approx(0.1) and scales[4] == pytest.approx(0.5) and scales[9] == 1.0
    assert scales[10] == 1.0
    assert scales[60] == pytest.approx(0.55)  # halfway: both shapes are at the middle
    assert scales[110] == pytest.approx(0.1) and scales[119] == pytest.approx(0.1)
    assert all(a >= b for a, b in pairwise(scales[10:]))


def test_cosine_stays_higher_than_linear_early_in_the_decay() -> None:
    linear = lr_scale(30, warmup_steps=0, total_steps=100, decay="linear")
    cosine = lr_scale(30, warmup_steps=0, total_steps=100, decay="cosine")
    assert linear == pytest.approx(0.7) and cosine == pytest.approx(0.5 * (1 + 0.5877852523), rel=1e-6)
