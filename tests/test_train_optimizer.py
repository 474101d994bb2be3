"""Optimizer parameter groups by role and weight decay, and each role's learning-rate schedule."""

import pytest
import torch

from tiny_models import TINY_GROUNDING, TINY_MODEL
from vgssl.model.config import ModelConfig
from vgssl.model.vgs import GroundingConfig, VgsModel
from vgssl.model.wav2vec2 import Wav2Vec2
from vgssl.train.config import ObjectiveConfig, OptimConfig
from vgssl.train.objective import LossWeighting
from vgssl.train.optimizer import build_optimizer, module_parameters, parameter_groups
from vgssl.train.schedule import lr_scale

CONV_MODEL = {
    **TINY_MODEL,
    "frontend": "conv",
    "conv_layers": [[32, 10, 5], [32, 8, 4], [32, 4, 4], [32, 2, 4]],
}


def vgs_model(**grounding: object) -> VgsModel:
    torch.manual_seed(0)
    return VgsModel(ModelConfig(**TINY_MODEL), GroundingConfig(**{**TINY_GROUNDING, **grounding}))


def groups_by_name(model: torch.nn.Module, **options: object) -> dict[str, set[str]]:
    return {group.name: set(group.parameter_names) for group in parameter_groups(model, **options)}


def test_weight_decay_only_on_linear_and_convolution_weights() -> None:
    for model in (vgs_model(), vgs_model(pooling="attention"), Wav2Vec2(ModelConfig(**CONV_MODEL))):
        modules = dict(model.named_modules())
        groups = groups_by_name(model)
        decayed = set().union(*(names for name, names in groups.items() if name.endswith("/decay")))
        kept = set().union(*(names for name, names in groups.items() if name.endswith("/no_decay")))
        every = {name for name, _ in model.named_parameters()}
        assert decayed | kept == every and not decayed & kept  # every parameter exactly once
        for name in decayed:
            owner, _, leaf = name.rpartition(".")
            if leaf == "original1":  # the weight-normed positional convolution's direction v
                assert name.endswith("positional.conv.parametrizations.weight.original1")
            elif leaf == "in_proj_weight":
                assert isinstance(modules[owner], torch.nn.MultiheadAttention)
            else:
                assert leaf == "weight"
                assert isinstance(modules[owner], torch.nn.Linear | torch.nn.Conv1d | torch.nn.Conv2d), name
        prefix = "audio." if isinstance(model, VgsModel) else ""
        for name in (
            "encoder.positional.conv.parametrizations.weight.original0",  # the weight-norm gain g
            "quantizer.codebook",
            "mask_embedding",
            "encoder.norm.weight",
            "encoder.blocks.0.attention.qkv.bias",
        ):
            assert prefix + name in kept, name
    # Norms and biases of the conv front-end are kept as well, its convolutions decayed.
    conv = groups_by_name(Wav2Vec2(ModelConfig(**CONV_MODEL)))
    assert {"frontend.layers.0.conv.weight", "frontend.layers.1.conv.weight"} <= conv["encoder/decay"]
    assert "frontend.layers.0.norm.weight" in conv["encoder/no_decay"]


def test_the_grounding_parts_form_the_head_role() -> None:
    model = vgs_model()
    groups = groups_by_name(model)
    head = groups["head/decay"] | groups["head/no_decay"]
    assert head == {name for name, _ in model.named_parameters() if not name.startswith("audio.")}
    assert {"log_logit_scale", "audio_head.cls_token", "image_encoder.norm.weight"} <= groups["head/no_decay"]
    assert {"audio_head.blocks.0.self_attn.in_proj_weight", "image_encoder.project.weight"} <= groups[
        "head/decay"
    ]
    assert all(name.startswith("audio.") for name in groups["encoder/decay"] | groups["encoder/no_decay"])
    # An audio-only model has the encoder role only; learned loss weights get their own undecayed group.
    weighting = LossWeighting(ObjectiveConfig(weighting="uncertainty"))
    audio_only = groups_by_name(Wav2Vec2(ModelConfig(**TINY_MODEL)), loss_weighting=weighting)
    assert set(audio_only) == {"encoder/decay", "encoder/no_decay", "loss_weighting"}
    assert len(audio_only["loss_weighting"]) == 3
    # A fixed temperature is a buffer, not a parameter.
    assert "log_logit_scale" not in groups_by_name(vgs_model(learn_temperature=False))["head/no_decay"]
    assert set(module_parameters(model)) == {
        "audio_encoder",
        "audio_head",
        "image_encoder",
        "log_logit_scale",
    }


def test_each_role_follows_its_own_schedule() -> None:
    optim = OptimConfig(lr=2e-3, warmup_steps=4, head_lr=3e-4, head_warmup_steps=10, weight_decay=0.05)
    optimizer, scheduler, specs = build_optimizer(vgs_model(), optim, max_steps=20)
    assert [spec.name for spec in specs] == [
        "encoder/decay",
        "encoder/no_decay",
        "head/decay",
        "head/no_decay",
    ]
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.05, 0.0, 0.05, 0.0]
    for step in range(20):
        encoder = 2e-3 * lr_scale(step, warmup_steps=4, total_steps=20, decay="linear")
        head = 3e-4 * lr_scale(step, warmup_steps=10, total_steps=20, decay="linear")
        assert [group["lr"] for group in optimizer.param_groups] == pytest.approx(
            [encoder, encoder, head, head]
        ), step
        optimizer.step()
        scheduler.step()
    # Left out, the head trains exactly like the encoder.
    optimizer, _, _ = build_optimizer(vgs_model(), OptimConfig(lr=1e-3, warmup_steps=5), max_steps=20)
    assert {group["lr"] for group in optimizer.param_groups} == {1e-3 / 5}
