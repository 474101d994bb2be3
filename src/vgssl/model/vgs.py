"""The VGS+ model (FaST-VGS+ recipe): the wav2vec 2.0 encoder, an image encoder and an audio grounding head.

    forward without images (audio-only or caption batch):
        wav -> Wav2Vec2 (masked) -> "ssl/contrastive", "ssl/diversity"
    forward with images (caption batch), `audio_pass: unmasked`:
        wav -> Wav2Vec2 (unmasked) -> hidden_states[tap_layer] -> grounding head -> unit vector -┐
        image -> image encoder (CNN on pixels, or MLP on precomputed features) -> unit vector ---┴->
        margin-InfoNCE over the in-batch pairs (of all ranks) -> "vg/audio_to_image", "vg/image_to_audio"
    forward with images, `audio_pass: masked` (FaST-VGS+: one pass serves both losses):
        wav -> Wav2Vec2 (masked) -> "ssl/..." losses, and hidden_states[tap_layer] -> grounding head -> ...

Everything goes through `forward`, so a DDP wrapper sees every pass. Losses are sums, like the SSL losses:
the trainer divides the "vg/..." sums by the global number of pairs.

Checkpoints keep the audio encoder exactly where an audio-only model keeps it ("model_config", "model"), so
`load_model`, `vgssl extract` and `vgssl export-hf` read a VGS+ checkpoint as its audio encoder; the grounding
parts travel next to it under "grounding_config" and "grounding".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

import pydantic
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from vgssl.errors import VgsslError
from vgssl.model.config import ModelConfig
from vgssl.model.grounding import AudioGroundingHead, margin_info_nce
from vgssl.model.image_encoder import ConvImageEncoder, FeatureImageEncoder
from vgssl.model.pretrained import IncompatibleCheckpointError, find_checkpoint, read_checkpoint
from vgssl.model.wav2vec2 import Wav2Vec2, Wav2Vec2Output

MAX_LOGIT_SCALE = 100.0  # CLIP's cap: beyond it the softmax saturates and training becomes unstable
AUDIO_PREFIX = "audio."


class GroundingConfig(BaseModel):
    """The grounding branch: which SSL layer it taps, how it pools, the image side and the loss."""

    model_config = ConfigDict(extra="forbid")

    # hidden_states index (0 = input to block 1). None: round(tap_fraction · layers), at least 1; the
    # default fraction is FaST-VGS+'s 8 of 12.
    tap_layer: int | None = Field(default=None, ge=0)
    tap_fraction: float = Field(default=2 / 3, ge=0.0, le=1.0)
    # Which forward pass the branch reads on a caption batch with images: `masked` is the caption SSL
    # loss's own pass (one forward for both losses, as FaST-VGS+); `unmasked`, a second forward of its own.
    audio_pass: Literal["masked", "unmasked"] = "unmasked"
    # Stride-2 residual convolutions above the tap, below the pooler (FaST-VGS+'s ResDAVEnet layers):
    # each halves the frame rate the pooler reads.
    conv_layers: int = Field(default=0, ge=0)
    pooling: Literal["cls", "attention"] = "cls"
    pool_layers: int = Field(default=1, ge=1)  # transformer layers of the CLS pooler
    pool_heads: int = Field(default=4, ge=1)
    joint_dim: int = Field(default=256, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)

    image_input: Literal["pixels", "features"] = "pixels"
    image_size: int = Field(default=128, ge=16)  # pixels: every image is resized to this square
    image_channels: tuple[int, ...] = (32, 64, 128, 128)  # the CNN's stride-2 layers
    feature_dim: int | None = Field(default=None, ge=1)  # features: the external encoder's dimension

    margin: float = Field(default=1.0, ge=0.0)  # in logit units (nats), as FaST-VGS+; see grounding.py
    temperature: float = Field(default=0.07, gt=1.0 / MAX_LOGIT_SCALE)
    learn_temperature: bool = True
    # Under DDP, the negatives of each caption and image are the pairs of ALL ranks (CLIP-style gathered
    # embeddings), not only its own rank's: W ranks of B pairs train as one batch of W·B pairs.
    gather_negatives: bool = True

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = []
        if self.image_input == "features" and self.feature_dim is None:
            problems.append("image_input 'features' needs feature_dim (the external encoder's dimension)")
        if self.image_input == "pixels" and not self.image_channels:
            problems.append("image_channels is empty")
        if self.pooling == "cls" and self.joint_dim % self.pool_heads:
            problems.append(f"joint_dim={self.joint_dim} is not divisible by pool_heads={self.pool_heads}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def resolved_tap_layer(self, model: ModelConfig) -> int:
        """The hidden-state index tapped in a model with `model.layers` blocks."""
        if self.tap_layer is None:
            return max(1, round(self.tap_fraction * model.layers))
        if self.tap_layer > model.layers:
            raise GroundingConfigError(
                f"grounding.tap_layer={self.tap_layer} does not exist in a model with {model.layers} layers "
                f"(hidden states 0 … {model.layers}); choose one of them"
            )
        return self.tap_layer


class GroundingConfigError(VgsslError):
    """The grounding section does not fit the audio model."""


class NotAGroundedCheckpointError(VgsslError):
    """A checkpoint holds an audio-only model where a VGS+ model is needed."""


@dataclass
class GroundingOutput:
    # Sums over pairs, fp32: "vg/audio_to_image" and "vg/image_to_audio"; the VG loss is their sum.
    losses: dict[str, Tensor]
    num_pairs: Tensor  # int count of caption–image pairs in this batch
    # Detached scalars: "vg/accuracy_audio_to_image", "vg/accuracy_image_to_audio", "vg/temperature".
    stats: dict[str, Tensor]
    # `audio_pass: masked`: the SSL output of the masked pass the branch read (its "ssl/..." losses).
    ssl: Wav2Vec2Output | None = None


class VgsModel(nn.Module):
    def __init__(self, model_config: ModelConfig, grounding: GroundingConfig) -> None:
        super().__init__()
        self.grounding_config = grounding
        self.tap_layer = grounding.resolved_tap_layer(model_config)
        self.audio = Wav2Vec2(model_config)
        self.audio_head = AudioGroundingHead(
            model_config.dim,
            grounding.joint_dim,
            pooling=grounding.pooling,
            layers=grounding.pool_layers,
            heads=grounding.pool_heads,
            dropout=grounding.dropout,
            conv_layers=grounding.conv_layers,
        )
        self.image_encoder: ConvImageEncoder | FeatureImageEncoder
        if grounding.image_input == "pixels":
            self.image_encoder = ConvImageEncoder(grounding.image_channels, grounding.joint_dim)
        else:
            assert grounding.feature_dim is not None  # checked by GroundingConfig
            self.image_encoder = FeatureImageEncoder(
                grounding.feature_dim, grounding.joint_dim, grounding.joint_dim
            )
        initial = torch.tensor(math.log(1.0 / grounding.temperature))
        if grounding.learn_temperature:
            self.log_logit_scale = nn.Parameter(initial)
        else:
            self.register_buffer("log_logit_scale", initial)

    @property
    def config(self) -> ModelConfig:
        return self.audio.config

    def set_num_updates(self, num_updates: int) -> None:
        """The audio encoder's Gumbel temperature follows the step, as in an audio-only run."""
        self.audio.set_num_updates(num_updates)

    def logit_scale(self) -> Tensor:
        return self.log_logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def forward(
        self,
        wav: Tensor,
        padding_mask: Tensor | None = None,
        *,
        mask: bool = True,
        time_mask: Tensor | None = None,
        images: Tensor | None = None,
        image_groups: Tensor | None = None,
        global_image_groups: bool = False,
    ) -> Wav2Vec2Output | GroundingOutput:
        """Without images: the SSL forward of the audio encoder (`Wav2Vec2.forward`).

        With images (B, 3, H, W) pixels or (B, D) / (B, R, D) features, one per caption, and `image_groups`
        (B,) ints equal for captions of the same image (None: all images distinct): the grounding loss.
        With `audio_pass: masked` and `mask`, the branch reads the masked pass (`time_mask`, or drawn), whose
        SSL output comes back as `.ssl`; otherwise an unmasked pass of its own. With
        `grounding.gather_negatives` under DDP, the negatives are every rank's pairs and every rank must
        make this call; the losses stay sums over this rank's pairs. `global_image_groups`: the ids name
        images across ranks (equal on two ranks = one image); False: they are per batch, so captions on
        different ranks are never taken for the same image.
        """
        if images is None:
            return self.audio(wav, padding_mask, mask=mask, time_mask=time_mask)
        if image_groups is None:
            image_groups = torch.arange(wav.shape[0], device=wav.device)
        ssl = None
        if mask and self.grounding_config.audio_pass == "masked":
            ssl = self.audio(wav, padding_mask, mask=True, time_mask=time_mask, output_hidden_states=True)
            audio = self._pool(ssl)
        else:
            audio = self.embed_audio(wav, padding_mask)
        image = self.embed_images(images)
        scale = self.logit_scale()
        result = margin_info_nce(
            audio,
            image,
            image_groups,
            margin=self.grounding_config.margin,
            logit_scale=scale,
            gather=self.grounding_config.gather_negatives,
            global_groups=global_image_groups,
        )
        num_pairs = torch.tensor(wav.shape[0], device=wav.device)
        return GroundingOutput(
            losses={"vg/audio_to_image": result.audio_to_image, "vg/image_to_audio": result.image_to_audio},
            num_pairs=num_pairs,
            stats={
                "vg/accuracy_audio_to_image": result.correct_audio_to_image.float() / num_pairs,
                "vg/accuracy_image_to_audio": result.correct_image_to_audio.float() / num_pairs,
                "vg/temperature": (1.0 / scale).detach(),
            },
            ssl=ssl,
        )

    def embed_audio(self, wav: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """(B, N) waveforms -> (B, joint_dim) unit vectors, from the tapped layer of the unmasked encoder."""
        return self._pool(self.audio(wav, padding_mask, mask=False, output_hidden_states=True))

    def _pool(self, output: Wav2Vec2Output) -> Tensor:
        assert output.hidden_states is not None  # the callers ask for them
        frame_padding = output.frame_padding_mask
        if frame_padding is not None and not bool(frame_padding.any()):
            frame_padding = None
        pooled = self.audio_head(output.hidden_states[self.tap_layer], frame_padding)
        return F.normalize(pooled.float(), dim=-1)

    def embed_images(self, images: Tensor) -> Tensor:
        """Pixels or features -> (B, joint_dim) unit vectors."""
        return F.normalize(self.image_encoder(images).float(), dim=-1)

    # -- checkpoints ---------------------------------------------------------------------------------------

    def grounding_state_dict(self) -> dict[str, Tensor]:
        """Every tensor of the state outside the audio encoder (whose state is `self.audio.state_dict()`)."""
        return {key: value for key, value in self.state_dict().items() if not key.startswith(AUDIO_PREFIX)}

    def checkpoint_entries(self) -> dict[str, Any]:
        """A checkpoint's model entries: the audio encoder as audio-only models store it, plus grounding."""
        return {
            "model_config": self.audio.config.model_dump(mode="json"),
            "model": self.audio.state_dict(),
            "grounding_config": self.grounding_config.model_dump(mode="json"),
            "grounding": self.grounding_state_dict(),
        }

    def load_checkpoint_entries(self, checkpoint: dict[str, Any]) -> None:
        """Load `checkpoint_entries()` back (strictly: every tensor of the model must be there)."""
        state = {AUDIO_PREFIX + key: value for key, value in checkpoint["model"].items()}
        state.update(checkpoint["grounding"])
        self.load_state_dict(state)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any], *, where: str | Path = "checkpoint") -> VgsModel:
        if "grounding" not in checkpoint or "grounding_config" not in checkpoint:
            raise NotAGroundedCheckpointError(
                f"{where} holds an audio-only model (no grounding branch); speech–image retrieval needs a "
                "VGS+ model trained with a grounding section"
            )
        try:
            model_config = ModelConfig.from_checkpoint(checkpoint["model_config"])
            grounding = GroundingConfig.model_validate(checkpoint["grounding_config"])
        except (KeyError, pydantic.ValidationError) as error:
            raise IncompatibleCheckpointError(
                f"{where} has no valid model or grounding config: {error}"
            ) from error
        model = cls(model_config, grounding)
        try:
            model.load_checkpoint_entries(checkpoint)
        except (KeyError, RuntimeError) as error:
            raise IncompatibleCheckpointError(
                f"{where}: its weights do not fit its configs: {error}"
            ) from error
        return model


def load_vgs_model(path: str | Path, *, map_location: str | torch.device = "cpu") -> VgsModel:
    """The VGS+ model saved at `path` (a .pt file or a run directory: best, else last), in eval mode."""
    file = find_checkpoint(path)
    checkpoint = read_checkpoint(file, map_location=map_location)
    return VgsModel.from_checkpoint(checkpoint, where=file).to(map_location).eval()
