"""The assembled model: outputs, hidden states, padding invariance, gradients, precision, learning."""

from __future__ import annotations

import pytest
import torch

from vgssl.model.config import ModelConfig
from vgssl.model.wav2vec2 import Wav2Vec2

TINY = {
    "dim": 32,
    "layers": 2,
    "heads": 2,
    "ffn_dim": 64,
    "pos_conv_kernel": 16,
    "pos_conv_groups": 4,
    "conv_layers": [(32, 10, 5), (32, 8, 4), (32, 4, 4), (32, 4, 4)],
    "codebook_entries": 16,
    "codevector_dim": 32,
    "final_dim": 32,
    "num_negatives": 10,
}


def tiny_model(**overrides: object) -> Wav2Vec2:
    torch.manual_seed(0)
    return Wav2Vec2(ModelConfig(**(TINY | overrides)))


def batch(*lengths: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    wav = torch.randn(len(lengths), max(lengths), generator=generator)
    padding_mask = torch.arange(max(lengths)) >= torch.tensor(lengths).unsqueeze(1)
    return wav, padding_mask


@pytest.mark.parametrize("frontend", ["conv", "fbank"])
def test_forward_returns_summed_losses_stats_and_every_layer(frontend: str) -> None:
    model = tiny_model(frontend=frontend)
    wav, padding_mask = batch(16_000, 12_000)
    output = model(wav, padding_mask, output_hidden_states=True)
    assert set(output.losses) == {"ssl/contrastive", "ssl/diversity"}
    assert all(loss.dtype == torch.float32 and loss.ndim == 0 for loss in output.losses.values())
    assert set(output.stats) == {
        "ssl/code_perplexity",
        "ssl/prob_perplexity",
        "ssl/accuracy",
        "ssl/temperature",
        "ssl/fraction_masked",
    }
    assert not any(stat.requires_grad for stat in output.stats.values())
    assert 0.3 < float(output.stats["ssl/fraction_masked"]) < 0.7
    assert float(output.stats["ssl/temperature"]) == 2.0
    assert output.num_masked.dtype == torch.long and int(output.num_masked) > 4
    assert output.hidden_states is not None and len(output.hidden_states) == 3
    assert all(state.shape == (2, 49, 32) for state in output.hidden_states)
    assert output.frame_padding_mask is not None
    assert output.frame_padding_mask.sum(1).tolist() == [0, 49 - 37]  # 12 000 samples -> 37 frames
    # The diversity term is (GV − prob_perplexity)/GV × weight × masked count.
    prob_perplexity = float(output.stats["ssl/prob_perplexity"])
    expected = (32 - prob_perplexity) / 32 * 0.1 * int(output.num_masked)
    assert abs(float(output.losses["ssl/diversity"].detach()) - expected) < 1e-4


def test_unmasked_forward_has_no_losses_and_model_reports_50_hz() -> None:
    model = tiny_model()
    wav, _ = batch(8_000)
    output = model(wav, mask=False)
    assert output.losses == {} and int(output.num_masked) == 0 and output.hidden_states is None
    assert model.frame_rate == 50
    assert model.frame_lengths(torch.tensor([8_000, 400, 399])).tolist() == [24, 1, 0]


@pytest.mark.parametrize("norm_first", [True, False])
def test_hidden_states_follow_the_s3prl_convention(norm_first: bool) -> None:
    model = tiny_model(norm_first=norm_first).eval()
    hidden_states, lengths = model.encode(batch(8_000)[0])
    assert len(hidden_states) == 3 and lengths.tolist() == [24]

    # Freshly initialised LayerNorms are the identity affine map: their outputs have zero mean and unit
    # variance per frame. Post-LN blocks end with a LayerNorm and one precedes block 1; pre-LN normalises
    # only the end.
    def is_normalised(state: torch.Tensor) -> bool:
        return torch.allclose(state.mean(-1), torch.zeros(1, 24), atol=1e-5) and torch.allclose(
            state.var(-1, unbiased=False), torch.ones(1, 24), atol=1e-3
        )

    expected = [False, False, True] if norm_first else [True, True, True]
    assert [is_normalised(state) for state in hidden_states] == expected


@pytest.mark.parametrize(("frontend", "norm_first"), [("fbank", True), ("conv", False)])
def test_an_utterance_alone_equals_the_same_utterance_padded_in_a_batch(
    frontend: str, norm_first: bool
) -> None:
    model = tiny_model(frontend=frontend, norm_first=norm_first)
    wav, padding_mask = batch(6_000, 16_000)
    wav[0, 6_000:] = 123.0  # garbage in the padding must not matter
    padded_states, lengths = model.encode(wav, padding_mask)
    alone_states, _ = model.encode(wav[:1, :6_000])
    frames = int(lengths[0])
    assert frames == alone_states[0].shape[1] == 18
    for padded, alone in zip(padded_states, alone_states, strict=True):
        assert torch.allclose(padded[0, :frames], alone[0], atol=1e-5)
    assert model.training  # encode restored the mode it found


def test_eval_is_deterministic_and_layer_drop_is_off_in_eval() -> None:
    dropping = tiny_model(layer_drop=0.9, dropout=0.3)
    plain = tiny_model()
    plain.load_state_dict(dropping.state_dict())
    wav, _ = batch(8_000)
    first, _ = dropping.encode(wav)
    second, _ = dropping.encode(wav)
    reference, _ = plain.encode(wav)
    for a, b, c in zip(first, second, reference, strict=True):
        assert torch.equal(a, b) and torch.allclose(a, c, atol=1e-6)


def test_codebook_and_every_parameter_receive_gradient() -> None:
    model = tiny_model(frontend="conv")
    wav, padding_mask = batch(16_000, 10_000)
    output = model(wav, padding_mask)
    (sum(output.losses.values()) / output.num_masked).backward()
    assert model.quantizer.codebook.grad is not None and model.quantizer.codebook.grad.abs().sum() > 0
    without_gradient = [
        name
        for name, parameter in model.named_parameters()
        if parameter.grad is None or parameter.grad.abs().sum() == 0
    ]
    assert without_gradient == []


def test_loss_is_finite_under_bf16_autocast_on_cpu() -> None:
    model = tiny_model(frontend="conv")
    wav, padding_mask = batch(16_000, 9_000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(wav, padding_mask)
        total = sum(output.losses.values()) / output.num_masked
    assert all(loss.dtype == torch.float32 for loss in output.losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_one_sgd_step_lowers_the_loss_on_a_fixed_draw() -> None:
    model = tiny_model(dropout=0.0, attention_dropout=0.0)
    wav, padding_mask = batch(16_000, 12_000)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)  # small enough that no Gumbel choice flips

    def loss() -> torch.Tensor:
        torch.manual_seed(7)  # the same masks, negatives and Gumbel noise before and after the step
        output = model(wav, padding_mask)
        return sum(output.losses.values()) / output.num_masked

    before = loss()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss()
    assert float(after) < float(before.detach())


def test_gumbel_temperature_anneals_deterministically_with_the_step() -> None:
    model = tiny_model(gumbel_temperature=(2.0, 0.5, 0.999))
    model.set_num_updates(100)
    assert abs(model.quantizer.temperature - 2.0 * 0.999**100) < 1e-12
    model.set_num_updates(100_000)
    assert model.quantizer.temperature == 0.5
    model.set_num_updates(0)
    assert model.quantizer.temperature == 2.0
