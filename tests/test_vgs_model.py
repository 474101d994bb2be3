"""The VGS+ model: margin-InfoNCE loss, grounding head, image encoders, checkpoint format."""

import math
from pathlib import Path

import pydantic
import pytest
import torch
import torch.nn.functional as F

from vgssl.atomic import atomic_torch_save
from vgssl.model.config import ModelConfig
from vgssl.model.grounding import AudioGroundingHead, margin_info_nce
from vgssl.model.image_encoder import ConvImageEncoder, FeatureImageEncoder, ImageShapeError
from vgssl.model.pretrained import CHECKPOINT_FORMAT, load_model
from vgssl.model.vgs import (
    GroundingConfig,
    GroundingConfigError,
    GroundingOutput,
    NotAGroundedCheckpointError,
    VgsModel,
    load_vgs_model,
)
from vgssl.model.wav2vec2 import Wav2Vec2, Wav2Vec2Output

TINY = {
    "dim": 32,
    "layers": 2,
    "heads": 2,
    "ffn_dim": 64,
    "pos_conv_kernel": 16,
    "pos_conv_groups": 4,
    "codebook_entries": 16,
    "codevector_dim": 32,
    "final_dim": 32,
    "num_negatives": 5,
}
TINY_GROUNDING = {"joint_dim": 32, "image_size": 32, "image_channels": (8, 16), "pool_heads": 2}


def unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def tiny_vgs(**grounding: object) -> VgsModel:
    torch.manual_seed(0)
    return VgsModel(ModelConfig(**TINY), GroundingConfig(**(TINY_GROUNDING | grounding)))


# --- the loss ----------------------------------------------------------------------------------------------


def test_margin_info_nce_matches_a_hand_computed_two_pair_batch() -> None:
    audio = unit(torch.tensor([[1.0, 0.0], [0.6, 0.8]]))
    images = unit(torch.tensor([[0.8, 0.6], [0.0, 1.0]]))
    scale, margin = 10.0, 1.0
    result = margin_info_nce(audio, images, torch.tensor([0, 1]), margin=margin, logit_scale=scale)
    s = scale * (audio @ images.T)
    # Caption 0: positive logit s00 - margin against s01; caption 1: s11 - margin against s10.
    a2i = -(s[0, 0] - margin - torch.logsumexp(torch.stack([s[0, 0] - margin, s[0, 1]]), 0))
    a2i += -(s[1, 1] - margin - torch.logsumexp(torch.stack([s[1, 0], s[1, 1] - margin]), 0))
    i2a = -(s[0, 0] - margin - torch.logsumexp(torch.stack([s[0, 0] - margin, s[1, 0]]), 0))
    i2a += -(s[1, 1] - margin - torch.logsumexp(torch.stack([s[0, 1], s[1, 1] - margin]), 0))
    assert result.audio_to_image.item() == pytest.approx(a2i.item(), rel=1e-5)
    assert result.image_to_audio.item() == pytest.approx(i2a.item(), rel=1e-5)
    # Caption 1 is closer to image 0 (0.96) than to its own (0.8); image 0 is closer to caption 1 likewise.
    assert result.correct_audio_to_image.item() == 1 and result.correct_image_to_audio.item() == 1


def test_the_loss_is_symmetric_in_audio_and_images() -> None:
    generator = torch.Generator().manual_seed(1)
    audio = unit(torch.randn(6, 8, generator=generator))
    images = unit(torch.randn(6, 8, generator=generator))
    groups = torch.tensor([0, 1, 1, 2, 3, 3])
    forward = margin_info_nce(audio, images, groups, margin=1.0, logit_scale=5.0)
    swapped = margin_info_nce(images, audio, groups, margin=1.0, logit_scale=5.0)
    assert forward.audio_to_image.item() == pytest.approx(swapped.image_to_audio.item(), rel=1e-6)
    assert forward.image_to_audio.item() == pytest.approx(swapped.audio_to_image.item(), rel=1e-6)
    assert abs(forward.audio_to_image.item() - forward.image_to_audio.item()) > 1e-3


def test_captions_of_the_same_image_are_not_negatives() -> None:
    generator = torch.Generator().manual_seed(2)
    audio = unit(torch.randn(4, 8, generator=generator))
    images = unit(torch.randn(4, 8, generator=generator))
    images[2] = images[1]  # pairs 1 and 2: two captions of one image
    groups = torch.tensor([0, 1, 1, 2])
    result = margin_info_nce(audio, images, groups, margin=1.0, logit_scale=10.0)

    logits = 10.0 * (audio @ images.T) - 1.0 * torch.eye(4)
    expected_a2i = expected_i2a = 0.0
    for i in range(4):
        candidates = [j for j in range(4) if j == i or groups[j] != groups[i]]
        expected_a2i += -(logits[i, i] - torch.logsumexp(logits[i, candidates], 0)).item()
        expected_i2a += -(logits[i, i] - torch.logsumexp(logits[candidates, i], 0)).item()
    assert result.audio_to_image.item() == pytest.approx(expected_a2i, rel=1e-5)
    assert result.image_to_audio.item() == pytest.approx(expected_i2a, rel=1e-5)
    unmasked = margin_info_nce(audio, images, torch.arange(4), margin=1.0, logit_scale=10.0)
    assert unmasked.audio_to_image.item() > result.audio_to_image.item() + 0.1


def test_a_perfect_model_pays_nothing_for_two_captions_of_one_image() -> None:
    vectors = unit(torch.eye(3))
    images = vectors[[0, 1, 1]]  # captions 1 and 2 describe image 1
    audio = images.clone()
    masked = margin_info_nce(audio, images, torch.tensor([0, 1, 1]), margin=1.0, logit_scale=100.0)
    assert masked.audio_to_image.item() < 1e-6 and masked.image_to_audio.item() < 1e-6
    # Treated as distinct images, each of the two captions would fight its twin: log(1 + e^margin) each.
    unmasked = margin_info_nce(audio, images, torch.arange(3), margin=1.0, logit_scale=100.0)
    assert unmasked.audio_to_image.item() == pytest.approx(2 * math.log1p(math.e), rel=1e-4)


# --- the branches ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pooling", "conv_layers", "frames"), [("cls", 0, 20), ("attention", 0, 20),
                                                               ("cls", 2, 21), ("cls", 1, 20)])  # fmt: skip
def test_the_pooled_vector_of_an_utterance_does_not_depend_on_padding(
    pooling: str, conv_layers: int, frames: int
) -> None:
    torch.manual_seed(0)
    head = AudioGroundingHead(16, 8, pooling=pooling, layers=1, heads=2, dropout=0.0, conv_layers=conv_layers)
    head.eval()
    hidden = torch.randn(1, frames, 16)
    alone = head(hidden, None)
    padded = torch.cat([hidden, 100 * torch.randn(1, 7, 16)], dim=1)  # loud garbage in the padding
    padding = torch.zeros(1, frames + 7, dtype=torch.bool)
    padding[0, frames:] = True
    assert torch.allclose(head(padded, padding), alone, atol=1e-5)
    assert not torch.allclose(head(padded, None), alone, atol=1e-3)


def test_image_encoders_map_to_the_joint_space_and_refuse_wrong_shapes() -> None:
    cnn = ConvImageEncoder((8, 16), 12)
    assert cnn(torch.randn(2, 3, 32, 32)).shape == (2, 12)
    assert cnn(torch.randn(2, 3, 48, 40)).shape == (2, 12)  # the grid pooling takes any size
    with pytest.raises(ImageShapeError, match="cannot read precomputed features"):
        cnn(torch.randn(2, 512))
    mlp = FeatureImageEncoder(20, 16, 12)
    assert mlp(torch.randn(2, 20)).shape == (2, 12)
    assert mlp(torch.randn(2, 36, 20)).shape == (2, 12)  # region features, attention-pooled
    with pytest.raises(ImageShapeError, match=r"expects dimension 20 \(grounding.feature_dim\)"):
        mlp(torch.randn(2, 24))


def test_the_cnn_keeps_where_things_are() -> None:
    torch.manual_seed(0)
    cnn = ConvImageEncoder((8, 16), 12).eval()
    top = torch.zeros(1, 3, 32, 32)
    top[..., :8, 12:20] = 1.0
    bottom = torch.flip(top, dims=[2])  # the same blob moved from the top to the bottom
    assert not torch.allclose(cnn(top), cnn(bottom), atol=1e-4)


# --- the model ---------------------------------------------------------------------------------------------


def test_forward_without_images_is_the_ssl_forward_and_with_images_the_grounding_loss() -> None:
    model = tiny_vgs()
    wav = torch.randn(3, 16_000)
    ssl = model(wav)
    assert isinstance(ssl, Wav2Vec2Output)
    assert set(ssl.losses) == {"ssl/contrastive", "ssl/diversity"}
    grounded = model(wav, images=torch.randn(3, 3, 32, 32), image_groups=torch.tensor([0, 0, 1]))
    assert isinstance(grounded, GroundingOutput)
    assert set(grounded.losses) == {"vg/audio_to_image", "vg/image_to_audio"}
    assert int(grounded.num_pairs) == 3
    assert grounded.stats["vg/temperature"].item() == pytest.approx(0.07)
    sum(grounded.losses.values()).backward()
    assert model.image_encoder.project.weight.grad is not None
    assert model.log_logit_scale.grad is not None
    assert model.audio.quantizer.codebook.grad is None  # the unmasked pass trains no SSL target


def test_the_grounding_pass_runs_on_unmasked_audio() -> None:
    # With every dropout off, only masking is random: an unmasked pass gives the same loss whatever the seed.
    model = tiny_vgs(dropout=0.0)
    model.audio = Wav2Vec2(ModelConfig(**TINY, dropout=0.0, attention_dropout=0.0))
    wav, images = torch.randn(2, 16_000), torch.randn(2, 3, 32, 32)
    losses = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        losses.append(model(wav, images=images).losses["vg/audio_to_image"].item())
    assert losses[0] == losses[1]
    model.eval()
    hidden = model.audio(wav, mask=False, output_hidden_states=True).hidden_states[model.tap_layer]
    expected = unit(model.audio_head(hidden, None))
    assert torch.allclose(model.embed_audio(wav), expected, atol=1e-6)


def test_downsampling_layers_halve_the_frames_the_pooler_reads() -> None:
    torch.manual_seed(0)
    head = AudioGroundingHead(16, 8, pooling="cls", layers=1, heads=2, dropout=0.0, conv_layers=2)
    x, padding = head.input(torch.randn(3, 21, 16)), torch.zeros(3, 21, dtype=torch.bool)
    padding[1, 9:] = True  # 9 valid frames -> 5 -> 3
    for block in head.downsample:
        x, padding = block(x, padding)
    assert x.shape == (3, 6, 8)  # 21 -> 11 -> 6
    assert (~padding).sum(1).tolist() == [6, 3, 6]


def test_a_masked_pass_grounding_reads_the_masked_hidden_states() -> None:
    model = tiny_vgs(dropout=0.0, audio_pass="masked")
    model.audio = Wav2Vec2(ModelConfig(**TINY, dropout=0.0, attention_dropout=0.0))
    wav, images = torch.randn(2, 16_000), torch.randn(2, 3, 32, 32)
    time_mask = model.audio.span_mask(wav, generator=torch.Generator().manual_seed(0))
    assert time_mask.any()
    torch.manual_seed(1)  # the Gumbel noise and the negatives
    output = model(wav, time_mask=time_mask, images=images)
    torch.manual_seed(1)
    masked = model.audio(wav, time_mask=time_mask, output_hidden_states=True)
    assert output.ssl is not None and output.ssl.num_masked == int(time_mask.sum())
    assert torch.equal(output.ssl.losses["ssl/contrastive"], masked.losses["ssl/contrastive"])
    hidden = masked.hidden_states[model.tap_layer]
    reference = margin_info_nce(
        unit(model.audio_head(hidden, None)), model.embed_images(images), torch.arange(2),
        margin=model.grounding_config.margin, logit_scale=model.logit_scale(),
    )  # fmt: skip
    assert output.losses["vg/audio_to_image"].item() == pytest.approx(
        reference.audio_to_image.item(), rel=1e-5
    )
    unmasked = model(wav, mask=False, images=images)  # evaluation and mask=False: the unmasked pass
    assert unmasked.ssl is None
    assert unmasked.losses["vg/audio_to_image"].item() != pytest.approx(reference.audio_to_image.item())


def test_the_tapped_layer_defaults_to_two_thirds_of_the_depth_and_must_exist() -> None:
    assert GroundingConfig().resolved_tap_layer(ModelConfig(layers=12)) == 8  # FaST-VGS+: 8 of 12
    assert GroundingConfig(tap_fraction=0.5).resolved_tap_layer(ModelConfig(layers=4)) == 2
    assert GroundingConfig(tap_fraction=0.0).resolved_tap_layer(ModelConfig(layers=4)) == 1  # never the input
    assert GroundingConfig(tap_fraction=1.0).resolved_tap_layer(ModelConfig(layers=3)) == 3
    assert GroundingConfig(tap_layer=4).resolved_tap_layer(ModelConfig(layers=4)) == 4
    with pytest.raises(GroundingConfigError, match="tap_layer=5 does not exist in a model with 4 layers"):
        GroundingConfig(tap_layer=5).resolved_tap_layer(ModelConfig(layers=4))
    with pytest.raises(pydantic.ValidationError, match="needs feature_dim"):
        GroundingConfig(image_input="features")


def test_a_fixed_temperature_is_not_trained() -> None:
    model = tiny_vgs(learn_temperature=False, temperature=0.2)
    assert "log_logit_scale" not in dict(model.named_parameters())
    assert model.logit_scale().item() == pytest.approx(5.0)
    assert "log_logit_scale" in model.grounding_state_dict()


def save_vgs(model: VgsModel, path: Path) -> None:
    atomic_torch_save({"format": CHECKPOINT_FORMAT, **model.checkpoint_entries(), "step": 3}, path)


def test_a_vgs_checkpoint_loads_as_its_audio_encoder_and_as_the_whole_model(tmp_path: Path) -> None:
    model = tiny_vgs(image_input="features", feature_dim=20, pooling="attention").eval()
    save_vgs(model, tmp_path / "checkpoints" / "last.pt")

    audio_only = load_model(tmp_path)  # what `vgssl extract` and `vgssl export-hf` use
    for key, value in model.audio.state_dict().items():
        assert torch.equal(audio_only.state_dict()[key], value)

    loaded = load_vgs_model(tmp_path)
    assert not loaded.training and loaded.grounding_config == model.grounding_config
    wav, features = torch.randn(2, 12_000), torch.randn(2, 20)
    assert torch.equal(loaded.embed_audio(wav), model.embed_audio(wav))
    assert torch.equal(loaded.embed_images(features), model.embed_images(features))


def test_an_audio_only_checkpoint_is_not_a_vgs_model(tmp_path: Path) -> None:
    audio = Wav2Vec2(ModelConfig(**TINY))
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "model_config": audio.config.model_dump(),
        "model": audio.state_dict(),
    }
    atomic_torch_save(checkpoint, tmp_path / "ssl.pt")
    with pytest.raises(NotAGroundedCheckpointError, match="audio-only model"):
        load_vgs_model(tmp_path / "ssl.pt")


def test_a_vgs_checkpoint_exports_its_audio_encoder_to_transformers(tmp_path: Path) -> None:
    from transformers import Wav2Vec2Model

    from vgssl.cli import main

    conv = {**TINY, "frontend": "conv", "conv_layers": [[32, 10, 5], [32, 8, 4], [32, 4, 4], [32, 2, 4]]}
    torch.manual_seed(0)
    model = VgsModel(ModelConfig(**conv), GroundingConfig(**TINY_GROUNDING)).eval()
    save_vgs(model, tmp_path / "vgs.pt")
    assert main(["export-hf", str(tmp_path / "vgs.pt"), str(tmp_path / "hf")]) == 0
    exported = Wav2Vec2Model.from_pretrained(tmp_path / "hf").eval()
    wav = torch.randn(1, 16_000)
    with torch.no_grad():
        theirs = exported(wav, output_hidden_states=True).hidden_states[model.tap_layer]
        ours = model.audio(wav, mask=False, output_hidden_states=True).hidden_states[model.tap_layer]
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)
