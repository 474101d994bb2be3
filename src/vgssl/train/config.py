"""The training configuration: one YAML file validated by pydantic.

Every mistake is reported as `file:line: key.path: message`, one line per problem, so a user fixes a config in
one pass. Relative paths in the YAML resolve against the YAML file's directory, so a config travels with the
corpus it names. The `model` section is `vgssl.model.config.ModelConfig` as is.

A VGS+ (visually grounded) run adds three sections: `grounding` (`vgssl.model.vgs.GroundingConfig` as is: the
grounding branch and its loss), `captions` (the image–caption data) and `objective` (how the SSL and grounding
losses combine, step by step). Without them the run is audio-only (SSL-A). A `captions` section without
`grounding` makes the caption-speech control: an audio-only run that also hears, without their images, the
very caption utterances (same selection, batches and step schedule) that a VGS+ run with the same seed,
data and `captions`/`objective` sections hears.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from vgssl.audio.frames import SAMPLE_RATE, SAMPLES_PER_FRAME, WINDOW_SAMPLES
from vgssl.errors import VgsslError
from vgssl.model.config import ModelConfig
from vgssl.model.vgs import GroundingConfig
from vgssl.yaml_config import (
    ExistingDir,
    ExistingFile,
    ResolvedPath,
    format_config_error,
    read_yaml_mapping,
    set_dotted,
    validate_config,
)


class ConfigError(VgsslError):
    """A training config cannot be read or does not validate; the message lists every problem."""


MixturePolicy = Literal["mono", "matched-total", "matched-per-language", "temperature"]
Precision = Literal["auto", "fp32", "bf16"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ManifestSource(_Section):
    manifest: ExistingFile
    language: str | None = None  # fills entries whose manifest has no language column


class DataConfig(_Section):
    train: list[ManifestSource] = Field(min_length=1)
    valid: list[ManifestSource] = []
    mixture: MixturePolicy = "matched-total"
    # The audio budget. mono: hours of the one language; matched-total: the run's total, hours / L per
    # language; matched-per-language: hours per language; temperature: the run's total. None: as much as
    # every language can match (mono and temperature: everything).
    hours: PositiveFloat | None = None
    temperature_alpha: float = Field(0.5, gt=0.0, le=1.0)
    max_seconds: PositiveFloat = 8.0  # longer utterances are randomly cropped to this
    min_seconds: NonNegativeFloat = 1.0  # shorter ones are dropped (and counted)
    batch_seconds: PositiveFloat = 80.0  # per micro-batch and rank, padding included
    on_bad_audio: Literal["skip", "fail"] = "skip"
    on_wrong_sample_rate: Literal["resample", "fail"] = "resample"
    num_workers: NonNegativeInt = 0

    @model_validator(mode="after")
    def _lengths_fit(self) -> DataConfig:
        if self.batch_seconds < self.max_seconds:
            raise ValueError(
                f"batch_seconds ({self.batch_seconds}) must be at least max_seconds ({self.max_seconds}), "
                "or a single cropped utterance could not fit in a batch"
            )
        if self.min_seconds >= self.max_seconds:
            raise ValueError(
                f"min_seconds ({self.min_seconds}) must be below max_seconds ({self.max_seconds})"
            )
        return self


class OptimConfig(_Section):
    """AdamW; parameter groups by role (`vgssl.train.optimizer`), each with its warm-up and decay."""

    lr: PositiveFloat = 5e-4  # the audio encoder's peak learning rate
    betas: tuple[float, float] = (0.9, 0.98)
    eps: PositiveFloat = 1e-6
    weight_decay: NonNegativeFloat = 0.01
    warmup_steps: NonNegativeInt = 1000
    decay: Literal["linear", "cosine"] = "linear"
    final_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)  # the learning rate at max_steps, relative to lr
    clip_norm: PositiveFloat | None = 10.0
    accumulation: PositiveInt = 1  # micro-batches per optimizer step and rank
    # The newly initialised grounding parts of a VGS+ model (audio_head, image_encoder, log_logit_scale):
    # their own peak learning rate and warm-up; None: lr and warmup_steps. No effect without grounding.
    head_lr: PositiveFloat | None = None
    head_warmup_steps: NonNegativeInt | None = None
    # The Gumbel temperature's anneal, as a fraction of max_steps: model.gumbel_temperature = (start, end,
    # decay) then reaches `end` at this fraction of training, its decay derived from max_steps (and
    # re-derived when a run is extended). None: the decay given in the model section.
    gumbel_floor_at: float | None = Field(None, gt=0.0, le=1.0)


BestBy = Literal["auto", "ssl_loss", "retrieval"]


class CheckpointConfig(_Section):
    every: PositiveInt = 1000
    keep_last: PositiveInt = 2
    # What best.pt follows, checked at logging.valid_every: `ssl_loss`, the SSL validation loss (lowest);
    # `retrieval`, speech–image retrieval on captions.valid (highest mean of speech->image and
    # image->speech R@10, ties broken by the mean R@1, then the later step); `auto`: retrieval for a
    # grounded run with captions.valid, the SSL loss otherwise.
    best_by: BestBy = "auto"


class LoggingConfig(_Section):
    every: PositiveInt = 10
    valid_every: PositiveInt = 1000
    tensorboard: bool = True
    progress: bool = True


class CollapseConfig(_Section):
    enabled: bool = True
    patience: PositiveInt = 200  # consecutive steps showing a symptom before the run stops
    # Code perplexity is summed over codebook groups, so its floor is the number of groups.
    perplexity_floor_ratio: float = Field(1.5, ge=1.0)
    accuracy_ceiling: float = Field(0.99, gt=0.0, le=1.0)
    loss_floor: NonNegativeFloat = 0.05  # contrastive loss per masked frame, in nats
    # Speech–image collapse (grounded runs): the VG loss stays within vg_tolerance (a fraction of it) of
    # its value when every embedding is the same, for vg_patience consecutive LOGGED steps that had a
    # grounding phase (so vg_patience × logging.every steps).
    vg_patience: PositiveInt = 15
    vg_tolerance: float = Field(0.02, gt=0.0, lt=1.0)


class CaptionSource(_Section):
    captions: ExistingFile  # a SpokenCOCO-style JSON
    language: str | None = None  # fills captions without a "lang" field (real SpokenCOCO has none)
    audio_root: ExistingDir | None = None  # where its wav paths start (default: the JSON's directory)
    image_root: ExistingDir | None = None  # where its image paths start (default: the JSON's directory)


class CaptionDataConfig(_Section):
    train: list[CaptionSource] = Field(min_length=1)
    valid: CaptionSource | None = None  # speech–image retrieval is logged on it at logging.valid_every
    # Caption languages to use. None: the languages of the run's audio-only training data.
    languages: list[str] | None = None
    # Precomputed image features (grounding.image_input: features), one directory for all splits.
    image_features: ExistingDir | None = None
    pairs_per_batch: PositiveInt = 32  # caption–image pairs per micro-batch and rank: the in-batch negatives
    # "Limited grounding": keep a random subset of the captions whose audio is this fraction of all the
    # training audio (captions + audio-only selection). None: every caption.
    grounded_fraction: float | None = Field(None, gt=0.0, lt=1.0)
    on_missing: Literal["fail", "skip"] = "fail"  # a caption whose wav or image is missing


class LossWeights(_Section):
    """The fixed weights w_ssl, w_cap, w_vg; or the α form of Khorrami et al. (2023),
    L = α · L_vg + (1 − α) · L_ssl, which sets w_vg = α and w_ssl = w_cap = 1 − α."""

    ssl: NonNegativeFloat = 1.0  # L_ssl on the audio-only batch
    caption_ssl: NonNegativeFloat = 1.0  # L_ssl on the (masked) caption batch
    vg: NonNegativeFloat = 1.0  # the speech–image contrastive loss
    alpha: float | None = Field(None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_form(self) -> LossWeights:
        explicit = self.model_fields_set & {"ssl", "caption_ssl", "vg"}
        if self.alpha is not None and explicit:
            raise ValueError(
                f"weights.alpha sets every weight; remove {', '.join(sorted(explicit))} or remove alpha"
            )
        return self

    def resolved(self) -> dict[str, float]:
        """{"ssl": w_ssl, "caption_ssl": w_cap, "vg": w_vg}, the α form expanded."""
        if self.alpha is None:
            return {"ssl": self.ssl, "caption_ssl": self.caption_ssl, "vg": self.vg}
        return {"ssl": 1.0 - self.alpha, "caption_ssl": 1.0 - self.alpha, "vg": self.alpha}


class ObjectiveConfig(_Section):
    """L = w_ssl · L_ssl(audio-only batch) + w_cap · L_ssl(caption batch) + w_vg · L_vg, per step.

    `joint`: every step has both batches. `ssl-then-joint`: audio-only steps first (`audio_only_steps`),
    then joint. `interleave`: a fraction `caption_step_fraction` of the steps are caption steps (caption
    batch only: w_cap · L_ssl + w_vg · L_vg), the others audio-only steps; exactly that fraction of every
    `interleave_block` steps, at positions drawn from (seed, block), so every rank agrees without talking.
    `weighting: uncertainty` learns one log-variance s_i per term: L = Σ w_i · exp(−s_i) · L_i + s_i
    (Kendall et al., 2018), in place of the paper's fixed weights.
    """

    schedule: Literal["joint", "ssl-then-joint", "interleave"] = "joint"
    audio_only_steps: NonNegativeInt = 0
    caption_step_fraction: float = Field(0.5, gt=0.0, le=1.0)
    interleave_block: PositiveInt = 100
    weights: LossWeights = LossWeights()
    weighting: Literal["fixed", "uncertainty"] = "fixed"


class TrainConfig(_Section):
    run_dir: ResolvedPath
    max_steps: PositiveInt
    seed: int = 0
    precision: Precision = "auto"
    # CUDA: deterministic kernels only (an op without one is an error), cuDNN autotuning off, cuBLAS's
    # fixed workspace; slower. A CPU run is already bit-identical for a seed and thread count.
    deterministic: bool = False
    init_from_hf: ExistingDir | None = None
    model: ModelConfig = ModelConfig()
    data: DataConfig
    optim: OptimConfig = OptimConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    logging: LoggingConfig = LoggingConfig()
    collapse: CollapseConfig = CollapseConfig()
    grounding: GroundingConfig | None = None
    captions: CaptionDataConfig | None = None
    objective: ObjectiveConfig | None = None  # None with grounding: ObjectiveConfig's defaults

    @model_validator(mode="after")
    def _grounding_is_complete(self) -> TrainConfig:
        if self.grounding is not None and self.captions is None:
            raise ValueError(
                "a grounded (VGS+) run needs both a grounding section and a captions section; an audio-only "
                "run has no grounding (and a captions section only for the caption-speech control)"
            )
        if self.captions is None:
            if self.objective is not None:
                raise ValueError("objective applies to runs with captions only: add grounding and captions")
            if self.checkpoint.best_by == "retrieval":
                raise ValueError(
                    "checkpoint.best_by: retrieval needs a grounded run (grounding and captions with a valid "
                    "set); use auto or ssl_loss"
                )
            return self
        if self.grounding is None:
            # The caption-speech control: captions heard without images.
            if self.captions.valid is not None:
                raise ValueError(
                    "captions.valid is for speech–image retrieval, which a run without grounding cannot do "
                    "(this is the caption-speech control); remove it, or add a grounding section"
                )
            if self.checkpoint.best_by == "retrieval":
                raise ValueError(
                    "checkpoint.best_by: retrieval needs a grounding section (this run is the caption-speech "
                    "control, audio only); use auto or ssl_loss"
                )
            return self
        uses_features = self.grounding.image_input == "features"
        if uses_features != (self.captions.image_features is not None):
            raise ValueError(
                "grounding.image_input: features needs captions.image_features (a feature directory), and "
                "captions.image_features needs grounding.image_input: features"
            )
        if self.checkpoint.best_by == "retrieval" and self.captions.valid is None:
            raise ValueError(
                "checkpoint.best_by: retrieval needs valid captions (captions.valid); add them, or use auto "
                "or ssl_loss"
            )
        try:
            self.grounding.resolved_tap_layer(self.model)
        except VgsslError as error:
            raise ValueError(str(error)) from None
        return self

    @property
    def is_grounded(self) -> bool:
        """A VGS+ run: grounding and captions."""
        return self.grounding is not None

    @property
    def is_caption_control(self) -> bool:
        """The caption-speech control: captions without grounding (audio-only SSL on both streams)."""
        return self.captions is not None and self.grounding is None

    @property
    def trained_model(self) -> ModelConfig:
        """The model section as training uses it: with `optim.gumbel_floor_at`, the Gumbel decay that takes
        the temperature from start to end in that fraction of max_steps."""
        if self.optim.gumbel_floor_at is None:
            return self.model
        start, end, _ = self.model.gumbel_temperature
        steps = max(1.0, self.optim.gumbel_floor_at * self.max_steps)
        return self.model.model_copy(
            update={"gumbel_temperature": (start, end, (end / start) ** (1.0 / steps))}
        )

    @property
    def grounded_objective(self) -> ObjectiveConfig:
        """The objective of a run with captions (its defaults when the section is left out)."""
        return self.objective or ObjectiveConfig()

    @property
    def best_by(self) -> Literal["ssl_loss", "retrieval"]:
        """The criterion best.pt follows, `auto` resolved."""
        if self.checkpoint.best_by != "auto":
            return self.checkpoint.best_by
        has_valid_captions = self.captions is not None and self.captions.valid is not None
        return "retrieval" if self.is_grounded and has_valid_captions else "ssl_loss"

    @model_validator(mode="after")
    def _clips_can_be_masked(self) -> TrainConfig:
        # The model needs min_masks frames per utterance; its front-ends give floor((N - 400) / 320) + 1.
        needed_samples = WINDOW_SAMPLES + (self.model.min_masks - 1) * SAMPLES_PER_FRAME
        if self.data.min_seconds * SAMPLE_RATE < needed_samples:
            raise ValueError(
                f"data.min_seconds={self.data.min_seconds} lets through clips too short to mask "
                f"model.min_masks={self.model.min_masks} frames; use at least "
                f"{needed_samples / SAMPLE_RATE:g}"
            )
        return self

    def identity(self) -> dict[str, Any]:
        """What must not change between the start of a run and its resumption: everything but `run_dir`."""
        return self.model_dump(mode="json", exclude={"run_dir"})


def load_config(path: str | os.PathLike[str], *, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read and validate a YAML config. `overrides` maps dotted keys ("max_steps", "optim.lr") to values."""
    source = Path(path)
    raw, root_node = read_yaml_mapping(
        source, error=ConfigError, missing=f"config file {source} does not exist", keys="run_dir, data, model"
    )
    for dotted_key, value in (overrides or {}).items():
        set_dotted(raw, dotted_key.split("."), value, error=ConfigError)
    try:
        return validate_config(TrainConfig, raw, base_dir=source.parent)
    except ValidationError as error:
        lines = [format_config_error(source, root_node, problem) for problem in error.errors()]
        raise ConfigError(f"{len(lines)} problem(s) in config {source}:\n" + "\n".join(lines)) from None
