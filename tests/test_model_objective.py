"""Masking, negatives, the contrastive and diversity losses, and the Gumbel quantizer on their own."""

from __future__ import annotations

import math

import pytest
import torch

from vgssl.model.masking import UtteranceTooShortError, compute_span_mask
from vgssl.model.objective import contrastive_loss, diversity_loss, sample_negatives
from vgssl.model.quantizer import GumbelQuantizer


def span_mask(lengths: list[int], num_frames: int, seed: int = 0, **options: float) -> torch.Tensor:
    settings = {"mask_prob": 0.65, "mask_length": 10, "min_masks": 2} | options
    generator = torch.Generator().manual_seed(seed)
    return compute_span_mask(torch.tensor(lengths), num_frames, generator=generator, **settings)


def test_masking_never_touches_padding_and_masks_at_least_min_masks() -> None:
    lengths = [2, 3, 5, 9, 40, 200]
    for seed in range(20):
        mask = span_mask(lengths, 200, seed=seed)
        for row, length in zip(mask, lengths, strict=True):
            assert not row[length:].any()
            assert int(row[:length].sum()) >= 2
    assert span_mask([7], 10, min_masks=7)[0, :7].all()


def test_masking_covers_the_wav2vec2_fraction_with_spans() -> None:
    mask = span_mask([500] * 40, 500)
    # Spans of 10 starting at 0.065 of positions overlap: expected coverage is about 1 − e^−0.65 ≈ 0.48.
    assert abs(float(mask.float().mean()) - (1 - math.exp(-0.65))) < 0.03
    runs = torch.diff(torch.nn.functional.pad(mask.int(), (1, 0)), dim=1)
    starts, masked = int((runs == 1).sum()), int(mask.sum())
    assert masked / starts >= 10  # masked frames come in runs of at least one span


def test_masking_is_reproducible_from_a_generator_and_refuses_too_short_utterances() -> None:
    assert torch.equal(span_mask([100, 80], 100, seed=3), span_mask([100, 80], 100, seed=3))
    assert not torch.equal(span_mask([100, 80], 100, seed=3), span_mask([100, 80], 100, seed=4))
    with pytest.raises(UtteranceTooShortError, match="item 1: 1 frames"):
        span_mask([100, 1], 100)


def test_negatives_come_from_other_masked_frames_of_the_same_utterance() -> None:
    counts = torch.tensor([2, 3, 60])
    negatives = sample_negatives(counts, 40, generator=torch.Generator().manual_seed(0))
    assert negatives.shape == (65, 40)
    own = torch.cat([torch.arange(int(count)) for count in counts])
    limit = torch.repeat_interleave(counts, counts)
    assert (negatives != own[:, None]).all()
    assert ((negatives >= 0) & (negatives < limit[:, None])).all()
    # Two masked frames: each one's only possible negative is the other.
    assert (negatives[0] == 1).all() and (negatives[1] == 0).all()
    # Three masked frames: both others are drawn, about equally often.
    assert set(negatives[2].tolist()) == {1, 2}
    counts_of_other = torch.bincount(negatives[5:].flatten(), minlength=60)
    assert int(counts_of_other.min()) > 0


def test_contrastive_loss_has_the_closed_form_value_for_orthogonal_codes() -> None:
    frames, negatives_per_frame = 8, 5
    context = torch.eye(frames) * 3.0
    targets = torch.eye(frames)
    codes = torch.arange(frames).unsqueeze(1)
    negatives = sample_negatives(torch.tensor([frames]), negatives_per_frame)
    loss, wins = contrastive_loss(context, targets, codes, torch.tensor([frames]), negatives, temperature=0.5)
    # Positive cosine 1, every negative cosine 0: −log(e^2 / (e^2 + K)) per frame.
    expected = frames * math.log1p(negatives_per_frame * math.exp(-2))
    assert loss.dtype == torch.float32
    assert math.isclose(float(loss), expected, rel_tol=1e-5)
    assert int(wins) == frames


def test_negatives_with_the_positives_codes_are_ignored() -> None:
    context, targets = torch.randn(6, 4), torch.randn(6, 4)
    same_codes = torch.zeros(6, 2, dtype=torch.long)
    counts = torch.tensor([3, 3])
    negatives = sample_negatives(counts, 4)
    loss, wins = contrastive_loss(context, targets, same_codes, counts, negatives, temperature=0.1)
    assert float(loss) == 0.0 and int(wins) == 6


def test_diversity_loss_is_zero_for_uniform_use_and_near_one_for_collapse() -> None:
    assert float(diversity_loss(torch.tensor(320.0), 320)) == 0.0
    assert math.isclose(float(diversity_loss(torch.tensor(2.0), 320)), 318 / 320, rel_tol=1e-6)


def test_quantizer_samples_hard_codes_with_gradient_and_argmax_in_eval() -> None:
    torch.manual_seed(0)
    quantizer = GumbelQuantizer(12, groups=2, entries=8, codevector_dim=6)
    features = torch.randn(50, 12)
    quantized = quantizer(features)
    assert quantized.vectors.shape == (50, 6) and quantized.codes.shape == (50, 2)
    chosen = torch.cat([quantizer.codebook[group, quantized.codes[:, group]] for group in range(2)], dim=1)
    assert torch.allclose(quantized.vectors, chosen, atol=1e-6)  # forward value: exactly one entry per group
    # Each group's perplexity lies in [1, V], so their sum lies in [G, G·V] = [2, 16].
    assert 2.0 <= float(quantized.code_perplexity) <= 16.0
    assert 2.0 <= float(quantized.prob_perplexity.detach()) <= 16.0
    (quantized.vectors.sum() - quantized.prob_perplexity).backward()
    assert quantizer.codebook.grad.abs().sum() > 0 and quantizer.logits.weight.grad.abs().sum() > 0

    quantizer.eval()
    first, second = quantizer(features), quantizer(features)
    logits = (features @ quantizer.logits.weight.T + quantizer.logits.bias).view(50, 2, 8)
    assert torch.equal(first.codes, second.codes) and torch.equal(first.codes, logits.argmax(-1))


def test_perplexities_reach_g_times_v_for_uniform_codes_and_g_for_a_single_code() -> None:
    groups, entries = 2, 8
    quantizer = GumbelQuantizer(groups * entries, groups=groups, entries=entries, codevector_dim=6).eval()
    with torch.no_grad():
        quantizer.logits.weight.copy_(30.0 * torch.eye(groups * entries))
        quantizer.logits.bias.zero_()
    # Row i picks entry i % V in group 0 and entry (3i) % V in group 1: every entry equally often.
    rows = torch.arange(4 * entries)
    uniform = torch.zeros(len(rows), groups * entries)
    uniform[rows, rows % entries] = 1.0
    uniform[rows, entries + (3 * rows) % entries] = 1.0
    quantized = quantizer(uniform)
    assert quantized.codes[:, 1].tolist() == ((3 * rows) % entries).tolist()
    assert float(quantized.code_perplexity) == pytest.approx(groups * entries, rel=1e-5)
    assert float(quantized.prob_perplexity.detach()) == pytest.approx(groups * entries, rel=1e-5)
    # Every row the same entry: each group's perplexity is 1, the sum G.
    single = torch.zeros(len(rows), groups * entries)
    single[:, [2, entries + 5]] = 1.0
    quantized = quantizer(single)
    assert float(quantized.code_perplexity) == pytest.approx(groups, rel=1e-5)
    # softmax of a 30 against zeros is one-hot to 1e-13, so the soft perplexity is G as well.
    assert float(quantized.prob_perplexity.detach()) == pytest.approx(groups, rel=1e-6)


def test_quantizer_stays_fp32_under_bf16_autocast() -> None:
    quantizer = GumbelQuantizer(12, groups=2, entries=8, codevector_dim=6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        quantized = quantizer(torch.randn(30, 12, dtype=torch.bfloat16))
    assert quantized.vectors.dtype == torch.float32 and quantized.prob_perplexity.dtype == torch.float32
