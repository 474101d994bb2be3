"""Interop with transformers' wav2vec 2.0: export a conv-front-end model, read a local HF checkpoint.

The two module layouts match one to one except that our attention uses one fused q/k/v projection and our
codebook is stored as (groups, entries, dim) instead of (1, groups · entries, dim). Exported configs set
`tie_last_hidden_states`, so that with pre-LN (`do_stable_layer_norm`) transformers ≥ 5 returns the last
hidden state after the final LayerNorm, as transformers 4 did and as we do. Exported configs keep
transformers' fine-tuning SpecAugment default (`mask_time_prob` 0.05): our pretraining masking (0.65) would
be a poor default for whoever fine-tunes the export.

transformers is imported lazily: it is an optional dependency and slow to import.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from vgssl.errors import VgsslError
from vgssl.model.config import SAMPLE_RATE, ModelConfig

if TYPE_CHECKING:
    from transformers import Wav2Vec2Config

    from vgssl.model.wav2vec2 import Wav2Vec2

logger = logging.getLogger(__name__)

PREPROCESSOR_FILE = "preprocessor_config.json"  # where transformers keeps `do_normalize`
HF_PREFIX = "wav2vec2."  # how Wav2Vec2ForPreTraining / ForCTC checkpoints prefix the base model's weights
# Fields that must agree for weights to mean the same thing in both implementations.
ARCHITECTURE_FIELDS = (
    "conv_dim",
    "conv_kernel",
    "conv_stride",
    "conv_bias",
    "feat_extract_norm",
    "feat_extract_activation",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups",
    "do_stable_layer_norm",
    "layer_norm_eps",
    "add_adapter",
    "adapter_attn_dim",
)
QUANTIZER_FIELDS = (
    "num_codevector_groups",
    "num_codevectors_per_group",
    "codevector_dim",
    "proj_codevector_dim",
)


class FbankNotExportableError(VgsslError):
    """A log-mel front-end model cannot become a transformers Wav2Vec2Model."""


class NotAnHFCheckpointError(VgsslError):
    """A directory does not hold a transformers wav2vec 2.0 checkpoint."""


class HFCheckpointMismatchError(VgsslError):
    """A transformers checkpoint's architecture differs from the model it should initialise."""


def hf_config_for(config: ModelConfig) -> Wav2Vec2Config:
    """The transformers config describing the same network as `config` (conv front-end only)."""
    from transformers import Wav2Vec2Config

    if config.frontend != "conv":
        raise FbankNotExportableError(
            "this model has the 'fbank' front-end (log-mel filterbank + linear); transformers' Wav2Vec2Model "
            "only has the waveform CNN feature encoder, so an export could not compute the same features. "
            "Export models trained with `frontend: conv`, or use the vgssl checkpoint directly."
        )
    if not config.feature_layer_norm:
        raise FbankNotExportableError(
            "this model has no LayerNorm on its front-end features (`feature_layer_norm: false`); "
            "transformers' Wav2Vec2Model always applies one, so an export would not compute the same "
            "hidden states. Train exportable models with `feature_layer_norm: true`."
        )
    return Wav2Vec2Config(
        architectures=["Wav2Vec2Model"],
        conv_dim=[channels for channels, _, _ in config.conv_layers],
        conv_kernel=[kernel for _, kernel, _ in config.conv_layers],
        conv_stride=[stride for _, _, stride in config.conv_layers],
        conv_bias=config.conv_bias,
        feat_extract_norm=config.conv_norm,
        feat_extract_activation="gelu",
        hidden_size=config.dim,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        intermediate_size=config.ffn_dim,
        hidden_act="gelu",
        num_conv_pos_embeddings=config.pos_conv_kernel,
        num_conv_pos_embedding_groups=config.pos_conv_groups,
        do_stable_layer_norm=config.norm_first,
        layer_norm_eps=1e-5,
        hidden_dropout=config.dropout,
        attention_dropout=config.attention_dropout,
        activation_dropout=config.activation_dropout,
        feat_proj_dropout=config.feature_dropout,
        layerdrop=config.layer_drop,  # transformers defaults to 0.1, which makes DDP replicas drift apart
        mask_time_length=config.mask_length,
        mask_time_min_masks=config.min_masks,
        num_codevector_groups=config.codebook_groups,
        num_codevectors_per_group=config.codebook_entries,
        codevector_dim=config.codevector_dim,
        proj_codevector_dim=config.final_dim,
        num_negatives=config.num_negatives,
        contrastive_logits_temperature=config.logit_temperature,
        diversity_loss_weight=config.diversity_weight,
        tie_last_hidden_states=True,
    )


def model_config_from_hf(hf_dir: str | Path, **overrides: Any) -> ModelConfig:
    """A conv-front-end ModelConfig matching a local HF wav2vec 2.0 checkpoint; `overrides` set the rest."""
    hf = read_hf_config(Path(hf_dir))
    fields: dict[str, Any] = {
        "frontend": "conv",
        "conv_layers": list(zip(hf.conv_dim, hf.conv_kernel, hf.conv_stride, strict=True)),
        "conv_norm": hf.feat_extract_norm,
        "conv_bias": hf.conv_bias,
        "dim": hf.hidden_size,
        "layers": hf.num_hidden_layers,
        "heads": hf.num_attention_heads,
        "ffn_dim": hf.intermediate_size,
        "norm_first": hf.do_stable_layer_norm,
        "pos_conv_kernel": hf.num_conv_pos_embeddings,
        "pos_conv_groups": hf.num_conv_pos_embedding_groups,
        "codebook_groups": hf.num_codevector_groups,
        "codebook_entries": hf.num_codevectors_per_group,
        "codevector_dim": hf.codevector_dim,
        "final_dim": hf.proj_codevector_dim,
    }
    do_normalize = read_do_normalize(Path(hf_dir))
    if do_normalize is not None:
        fields["normalize_waveform"] = do_normalize
    return ModelConfig(**(fields | overrides))


def read_do_normalize(hf_dir: Path) -> bool | None:
    """The checkpoint's `do_normalize` from its preprocessor_config.json; None when it has none."""
    path = hf_dir / PREPROCESSOR_FILE
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("do_normalize", True)
    except (OSError, ValueError, AttributeError) as error:
        raise HFCheckpointMismatchError(f"{path}: not a readable preprocessor config: {error}") from None
    if not isinstance(value, bool):
        raise HFCheckpointMismatchError(f"{path}: do_normalize must be true or false, found {value!r}")
    return value


def read_hf_config(hf_dir: Path) -> Wav2Vec2Config:
    from transformers import Wav2Vec2Config

    config_file = hf_dir / "config.json"
    if not config_file.is_file():
        raise NotAnHFCheckpointError(
            f"{hf_dir} has no config.json: expected a transformers wav2vec 2.0 directory "
            "(config.json + model.safetensors or pytorch_model.bin)"
        )
    model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    if model_type != "wav2vec2":
        raise NotAnHFCheckpointError(
            f"{config_file} describes a {model_type!r} model; only 'wav2vec2' checkpoints can initialise "
            "this model"
        )
    return Wav2Vec2Config.from_pretrained(hf_dir, local_files_only=True)


def read_hf_weights(hf_dir: Path) -> dict[str, Tensor]:
    """All tensors of a local checkpoint (sharded or not), with the `wav2vec2.` prefix removed."""
    from safetensors.torch import load_file

    files = sorted(hf_dir.glob("model*.safetensors"))
    if files:
        shards = [load_file(file) for file in files]
    else:
        files = sorted(hf_dir.glob("pytorch_model*.bin"))
        shards = [torch.load(file, map_location="cpu", weights_only=True) for file in files]
    if not files:
        raise NotAnHFCheckpointError(f"{hf_dir} has no model*.safetensors or pytorch_model*.bin weights file")
    weights = {}
    for shard in shards:
        for name, tensor in shard.items():
            weights[name.removeprefix(HF_PREFIX)] = tensor
    return weights


def _renamed_keys(config: ModelConfig) -> dict[str, str]:
    """Our state-dict key -> transformers' key, for every tensor that only changes name."""
    names = {
        "mask_embedding": "masked_spec_embed",
        "feature_norm.weight": "feature_projection.layer_norm.weight",
        "feature_norm.bias": "feature_projection.layer_norm.bias",
        "feature_projection.weight": "feature_projection.projection.weight",
        "feature_projection.bias": "feature_projection.projection.bias",
        "encoder.positional.conv.bias": "encoder.pos_conv_embed.conv.bias",
        "encoder.positional.conv.parametrizations.weight.original0": (
            "encoder.pos_conv_embed.conv.parametrizations.weight.original0"
        ),
        "encoder.positional.conv.parametrizations.weight.original1": (
            "encoder.pos_conv_embed.conv.parametrizations.weight.original1"
        ),
        "encoder.norm.weight": "encoder.layer_norm.weight",
        "encoder.norm.bias": "encoder.layer_norm.bias",
    }
    for index in range(len(config.conv_layers)):
        ours, theirs = f"frontend.layers.{index}", f"feature_extractor.conv_layers.{index}"
        names[f"{ours}.conv.weight"] = f"{theirs}.conv.weight"
        if config.conv_bias:
            names[f"{ours}.conv.bias"] = f"{theirs}.conv.bias"
        if config.conv_norm == "layer" or index == 0:
            for tensor in ("weight", "bias"):
                names[f"{ours}.norm.{tensor}"] = f"{theirs}.layer_norm.{tensor}"
    block_names = {
        "attention.out": "attention.out_proj",
        "attention_norm": "layer_norm",
        "feed_forward.expand": "feed_forward.intermediate_dense",
        "feed_forward.contract": "feed_forward.output_dense",
        "feed_forward_norm": "final_layer_norm",
    }
    for index in range(config.layers):
        for ours, theirs in block_names.items():
            for tensor in ("weight", "bias"):
                names[f"encoder.blocks.{index}.{ours}.{tensor}"] = f"encoder.layers.{index}.{theirs}.{tensor}"
    return names


QUANTIZER_NAMES = {
    "quantizer.logits.weight": "quantizer.weight_proj.weight",
    "quantizer.logits.bias": "quantizer.weight_proj.bias",
    "project_targets.weight": "project_q.weight",
    "project_targets.bias": "project_q.bias",
    "project_context.weight": "project_hid.weight",
    "project_context.bias": "project_hid.bias",
}


def encoder_state_to_hf(model: Wav2Vec2) -> dict[str, Tensor]:
    """The state dict of a transformers Wav2Vec2Model equal to our encoder (quantizer left out)."""
    state = model.state_dict()
    hf_state = {theirs: state[ours] for ours, theirs in _renamed_keys(model.config).items()}
    for index in range(model.config.layers):
        query, key, value = state[f"encoder.blocks.{index}.attention.qkv.weight"].chunk(3)
        query_bias, key_bias, value_bias = state[f"encoder.blocks.{index}.attention.qkv.bias"].chunk(3)
        theirs = f"encoder.layers.{index}.attention"
        hf_state |= {
            f"{theirs}.q_proj.weight": query,
            f"{theirs}.k_proj.weight": key,
            f"{theirs}.v_proj.weight": value,
            f"{theirs}.q_proj.bias": query_bias,
            f"{theirs}.k_proj.bias": key_bias,
            f"{theirs}.v_proj.bias": value_bias,
        }
    return {name: tensor.detach().clone().contiguous() for name, tensor in hf_state.items()}


def state_from_hf(
    weights: dict[str, Tensor], config: ModelConfig, *, include_quantizer: bool, where: Path
) -> dict[str, Tensor]:
    """Our state dict from transformers' tensors (the `wav2vec2.` prefix already removed).

    Accepts the weight-norm names of older transformers (`weight_g`, `weight_v`). With `include_quantizer`,
    the quantizer and both projections come along (Wav2Vec2ForPreTraining checkpoints). The masking embedding
    is optional: transformers leaves it out of checkpoints saved with `mask_time_prob` 0.
    """
    conv = "encoder.pos_conv_embed.conv"
    legacy = {
        f"{conv}.weight_g": f"{conv}.parametrizations.weight.original0",
        f"{conv}.weight_v": f"{conv}.parametrizations.weight.original1",
    }
    weights = {legacy.get(name, name): tensor for name, tensor in weights.items()}
    wanted = _renamed_keys(config) | (QUANTIZER_NAMES if include_quantizer else {})
    state = {ours: weights[theirs] for ours, theirs in wanted.items() if theirs in weights}
    missing = [
        theirs for theirs in wanted.values() if theirs not in weights and theirs != "masked_spec_embed"
    ]
    for index in range(config.layers):
        for tensor in ("weight", "bias"):
            parts = [f"encoder.layers.{index}.attention.{name}_proj.{tensor}" for name in ("q", "k", "v")]
            missing += [part for part in parts if part not in weights]
            if not missing:
                qkv = torch.cat([weights[part] for part in parts])
                state[f"encoder.blocks.{index}.attention.qkv.{tensor}"] = qkv
    if include_quantizer:
        codebook_shape = (config.codebook_groups, config.codebook_entries, -1)
        state["quantizer.codebook"] = weights["quantizer.codevectors"].reshape(codebook_shape)
    if missing:
        raise HFCheckpointMismatchError(f"{where} lacks weights the model needs: {', '.join(missing[:8])}")
    return state


def check_hf_config(hf: Wav2Vec2Config, config: ModelConfig, *, where: Path) -> None:
    """Raise HFCheckpointMismatchError naming every architecture field in which `hf` and `config` differ."""
    if config.frontend != "conv":
        raise HFCheckpointMismatchError(
            f"cannot initialise a model with the {config.frontend!r} front-end from {where}: transformers "
            "wav2vec 2.0 checkpoints have a waveform CNN; set `frontend: conv`"
        )
    expected = hf_config_for(config)
    differences = [
        f"{field}: checkpoint {getattr(hf, field, None)!r}, model {getattr(expected, field)!r}"
        for field in ARCHITECTURE_FIELDS
        if _normalised(getattr(hf, field, None)) != _normalised(getattr(expected, field))
    ]
    do_normalize = read_do_normalize(Path(where))
    if do_normalize is not None and do_normalize != config.normalize_waveform:
        differences.append(
            f"do_normalize ({PREPROCESSOR_FILE}): checkpoint {do_normalize}, model normalize_waveform "
            f"{config.normalize_waveform}"
        )
    if differences:
        raise HFCheckpointMismatchError(
            f"the transformers checkpoint in {where} does not match the model config: "
            + "; ".join(differences)
            + ". Build the model config with vgssl.model.hf.model_config_from_hf(hf_dir) to match it."
        )


def quantizer_matches(hf: Wav2Vec2Config, config: ModelConfig) -> bool:
    expected = hf_config_for(config)
    return all(getattr(hf, field) == getattr(expected, field) for field in QUANTIZER_FIELDS)


def _normalised(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def export_to_hf(model: Wav2Vec2, out_dir: Path) -> None:
    """Write `out_dir` as a transformers Wav2Vec2Model directory (config, safetensors weights, preprocessor).

    The directory is built next to `out_dir` and swapped in at the end, so a failure never leaves a
    half-written export. Whatever `out_dir` held before is replaced: callers decide whether that is allowed.
    """
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    hf_model = Wav2Vec2Model(hf_config_for(model.config))
    hf_model.load_state_dict(encoder_state_to_hf(model), strict=True)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        hf_model.save_pretrained(staging)
        # What the model did to each waveform before its CNN, so that transformers' pipeline does the same.
        Wav2Vec2FeatureExtractor(
            feature_size=1,
            sampling_rate=SAMPLE_RATE,
            padding_value=0.0,
            do_normalize=model.config.normalize_waveform,
            return_attention_mask=True,
        ).save_pretrained(staging)
        _swap_in(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported a transformers Wav2Vec2Model to %s", out_dir)


def _swap_in(staging: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staging, target)
        return
    holder = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    retired = holder / target.name
    os.replace(target, retired)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(retired, target)
        raise
    finally:
        shutil.rmtree(holder, ignore_errors=True)
