"""The configuration of the wav2vec 2.0-family model: front-end, transformer, quantizer and SSL objective.

Defaults are the small CPU model that learned in the calibration run (FACTS.md): log-mel front-end, 4 pre-LN
layers × 256, a 2 × 160 Gumbel codebook, span masking 0.65 / 10 and 50 negatives from masked frames.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vgssl.audio.frames import FRAME_RATE, SAMPLES_PER_FRAME
from vgssl.audio.frames import SAMPLE_RATE as SAMPLE_RATE  # re-exported for older imports; use audio.frames

# Values that checkpoints written before a key existed were trained with (the key's default differs).
LEGACY_DEFAULTS: dict[str, Any] = {"fbank_normalization": "none"}

WAV2VEC2_CONV_LAYERS: list[tuple[int, int, int]] = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2


class ModelConfig(BaseModel):
    """Every architectural and objective setting of `vgssl.model.Wav2Vec2`; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    frontend: Literal["conv", "fbank"] = "fbank"
    # (channels, kernel, stride) per waveform-CNN layer; the strides must multiply to 320 (50 Hz at 16 kHz).
    conv_layers: list[tuple[int, int, int]] = Field(default_factory=lambda: list(WAV2VEC2_CONV_LAYERS))
    conv_norm: Literal["group", "layer"] = "group"
    conv_bias: bool = False
    fbank_bins: int = Field(default=80, ge=8)
    # Per-utterance normalisation of the input, over valid samples / frames only (padding-blind).
    # fbank: mean and variance of each log-mel bin over the utterance (what the MFCC baseline has; without
    # it the model spends its capacity on channel and speaker level). conv: zero mean, unit variance of the
    # waveform (transformers' `do_normalize`, written into and read from its preprocessor config).
    fbank_normalization: Literal["utterance", "none"] = "utterance"
    normalize_waveform: bool = False
    # The LayerNorm over each front-end frame before the projection and the quantizer (wav2vec 2.0 has it).
    # It removes each frame's overall energy; normalised log-mel features do not need it.
    feature_layer_norm: bool = True

    dim: int = Field(default=256, ge=1)
    layers: int = Field(default=4, ge=1)
    heads: int = Field(default=4, ge=1)
    ffn_dim: int = Field(default=1024, ge=1)
    norm_first: bool = True
    pos_conv_kernel: int = Field(default=128, ge=1)
    pos_conv_groups: int = Field(default=16, ge=1)

    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    attention_dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    activation_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    # Dropout on the projected front-end features before masking (transformers' `feat_proj_dropout`).
    feature_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    # Scales the gradient reaching the front-end; wav2vec 2.0 uses 0.1 to keep its waveform CNN stable.
    feature_grad_mult: float = Field(default=1.0, ge=0.0, le=1.0)
    layer_drop: float = Field(default=0.0, ge=0.0, lt=1.0)

    codebook_groups: int = Field(default=2, ge=1)
    codebook_entries: int = Field(default=160, ge=2)
    codevector_dim: int = Field(default=256, ge=1)
    final_dim: int = Field(default=256, ge=1)
    gumbel_temperature: tuple[float, float, float] = (2.0, 0.5, 0.999995)

    mask_prob: float = Field(default=0.65, gt=0.0, le=1.0)
    mask_length: int = Field(default=10, ge=1)
    min_masks: int = Field(default=2, ge=2)
    num_negatives: int = Field(default=50, ge=1)
    logit_temperature: float = Field(default=0.1, gt=0.0)
    diversity_weight: float = Field(default=0.1, ge=0.0)

    @model_validator(mode="after")
    def _check_shapes(self) -> Self:
        problems = []
        if self.dim % self.heads:
            problems.append(f"dim={self.dim} is not divisible by heads={self.heads}")
        if self.dim % self.pos_conv_groups:
            problems.append(f"dim={self.dim} is not divisible by pos_conv_groups={self.pos_conv_groups}")
        if self.codevector_dim % self.codebook_groups:
            problems.append(
                f"codevector_dim={self.codevector_dim} is not divisible by "
                f"codebook_groups={self.codebook_groups}"
            )
        if not self.conv_layers:
            problems.append("conv_layers is empty")
        elif math.prod(stride for _, _, stride in self.conv_layers) != SAMPLES_PER_FRAME:
            strides = [stride for _, _, stride in self.conv_layers]
            problems.append(
                f"conv_layers strides {strides} multiply to {math.prod(strides)}, but every front-end must "
                f"produce {FRAME_RATE} frames per second, i.e. strides multiplying to {SAMPLES_PER_FRAME}"
            )
        if any(min(layer) < 1 for layer in self.conv_layers):
            problems.append(f"conv_layers {self.conv_layers} has a channel, kernel or stride below 1")
        start, end, decay = self.gumbel_temperature
        if not (start >= end > 0 and 0 < decay <= 1):
            problems.append(
                f"gumbel_temperature={self.gumbel_temperature} must be (start, end, decay) with "
                "start >= end > 0 and 0 < decay <= 1"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def from_checkpoint(cls, fields: dict[str, Any]) -> ModelConfig:
        """A config stored in a checkpoint; keys added after it was written take the behaviour it had then."""
        return cls.model_validate({**LEGACY_DEFAULTS, **fields})

    @property
    def frontend_dim(self) -> int:
        """Channels of the front-end's output, i.e. of the quantizer's input."""
        return self.conv_layers[-1][0] if self.frontend == "conv" else self.dim
