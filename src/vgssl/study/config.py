"""The study configuration: one YAML file validated by pydantic, errors as `file:line: key.path: message`.

The `train` section is a training config (`vgssl.train.config.TrainConfig`) without what the study fills in
per run: `run_dir`, `seed` and the manifests of `data.train` / `data.valid`. The `grounded` section holds the
training-config sections that make a run VGS+ (`grounding`, `captions`, `objective`) and is merged into the
training config of VGS+ runs; the study fills `captions.train` / `captions.valid` with the corpus's caption
files. `control` (default `caption-speech`) gives SSL-A runs the `captions` and `objective` sections of
`grounded` without `grounding`: they hear the very caption speech VGS+ runs hear (same selection, batches and
schedule) without the images, so the only difference between SSL-A and VGS+ is the image; `none` gives them
no caption speech. `run_overrides` maps a run name (`ssl-a_en`, `vgs+_en+fr`, see `vgssl.study.grid`) to
keys merged over all that for that run only. Relative paths resolve against the YAML file's directory, as
in training configs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from vgssl.corpus.spec import CorpusSpecError, make_spec
from vgssl.errors import VgsslError
from vgssl.evaluate.results import ContextMode, Objective, SpeakerMode
from vgssl.yaml_config import ResolvedPath, format_config_error, read_yaml_mapping, validate_config

BaselineName = Literal["mfcc", "mfcc-raw", "fbank", "random-init"]
# Keys of a run's training config that the study sets; a value in the study config would be silently replaced.
STUDY_OWNED_TRAIN_KEYS = (
    ("run_dir",),
    ("seed",),
    ("data", "train"),
    ("data", "valid"),
    ("captions", "train"),
    ("captions", "valid"),
)
GROUNDED_SECTIONS = ("grounding", "captions", "objective")
# The sections of `grounded` that the caption-speech control gives SSL-A runs (everything but the images).
CONTROL_SECTIONS = ("captions", "objective")
Control = Literal["caption-speech", "none"]


class StudyConfigError(VgsslError):
    """A study config is unreadable, invalid, or does not fit its corpus; the message lists every problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorpusSection(_Section):
    path: ResolvedPath | None = None  # None: DIR/corpus
    # `vgssl synth` options (`tiny`, `languages`, `hours`, ...) used when the corpus is missing; null: never
    # build, the corpus must exist (a built-in corpus, or real data arranged in the built-in layout).
    synth: dict[str, Any] | None = Field(default_factory=dict)
    workers: PositiveInt | None = None  # synthesis processes; None: one per CPU core
    # Per language, a phone ABX item file on the audio of manifests/{lang}_valid.tsv (e.g. a ZeroSpeech or
    # Libri-light dev item file) on which every model's layer is chosen; default: the corpus's own
    # items/{lang}_valid_triphone.item.
    valid_items: dict[str, Path] = {}

    @field_validator("synth")
    @classmethod
    def _buildable(cls, synth: dict[str, Any] | None) -> dict[str, Any] | None:
        if synth is not None:
            try:
                make_spec(**synth)
            except CorpusSpecError as error:
                raise ValueError(str(error)) from None
        return synth


class LaunchSection(_Section):
    nproc_per_node: PositiveInt = 1  # above 1, runs train under `torchrun --standalone`
    # Runs trained at the same time, each in its own slot: on CPUs the cores are shared out (each trainer
    # gets cores // (parallel_runs × nproc_per_node) threads), on GPUs slot i sees GPUs i·nproc_per_node …
    # (i+1)·nproc_per_node − 1. Two one-thread trainers did 1.35× the work of one two-thread trainer on a
    # 2-core CPU (a small model keeps two threads half idle).
    parallel_runs: PositiveInt = 1


class EvaluationSection(_Section):
    layers: Literal["all"] | list[NonNegativeInt] = "all"
    fixed_layer: NonNegativeInt | None = None  # the report's fixed-layer column; None: the middle layer
    speakers: list[SpeakerMode] = Field(default=["within", "across"], min_length=1)
    contexts: list[ContextMode] = Field(default=["within"], min_length=1)
    max_size_group: int | None = Field(10, ge=2)
    max_x_across: int | None = Field(5, ge=2)
    seed: int = 0  # ABX subsampling seed
    # Phone ABX slicing: "librilight" drops an item's last frame as the Libri-Light / ZeroSpeech 2021 ABX
    # package does (numbers comparable with published ones); "exact" keeps every frame inside the item.
    slicing: Literal["exact", "librilight"] = "exact"
    language_abx: bool = True
    retrieval: bool = True  # for VGS+ runs
    baselines: list[BaselineName] = ["mfcc", "mfcc-raw", "random-init"]
    batch_seconds: PositiveFloat = 60.0
    device: str = "auto"
    keep_features: bool = False  # features are large; results alone make the report

    @model_validator(mode="after")
    def _fixed_layer_evaluated(self) -> EvaluationSection:
        if self.fixed_layer is not None and self.layers != "all" and self.fixed_layer not in self.layers:
            raise ValueError(
                f"fixed_layer {self.fixed_layer} is not among the evaluated layers {self.layers}"
            )
        return self


class AnalysisSection(_Section):
    speaker: SpeakerMode = "across"  # FACTS: within-speaker ABX is near ceiling on espeak speech
    context: ContextMode = "within"
    layer: Literal["best"] | NonNegativeInt = "best"
    bootstrap: int = Field(2000, ge=100)
    bootstrap_seed: int = 0


class StudyConfig(_Section):
    corpus: CorpusSection = CorpusSection()
    languages: list[str] | None = Field(None, min_length=1)  # None: every language of the corpus
    objectives: list[Objective] = Field(default=["ssl-a", "vgs+"], min_length=1)
    seeds: list[int] = Field(default=[0], min_length=1)
    pairwise: bool = False  # also every bilingual pair, for 3+ languages
    launch: LaunchSection = LaunchSection()
    train: dict[str, Any]
    grounded: dict[str, Any] = {}  # training-config sections of VGS+ runs: grounding, captions, objective
    # caption-speech: in a study with VGS+ runs, SSL-A runs also hear their caption speech, without images;
    # none: they do not.
    control: Control = "caption-speech"
    run_overrides: dict[str, dict[str, Any]] = {}
    evaluation: EvaluationSection = EvaluationSection()
    analysis: AnalysisSection = AnalysisSection()

    @field_validator("languages", "objectives", "seeds")
    @classmethod
    def _unique(cls, values: list[Any] | None) -> list[Any] | None:
        if values is not None and len(set(values)) != len(values):
            raise ValueError(f"values repeat: {values}")
        return values

    @field_validator("train")
    @classmethod
    def _audio_only_train_section(cls, train: dict[str, Any]) -> dict[str, Any]:
        _check_study_owned(train)
        grounded = [key for key in GROUNDED_SECTIONS if key in train]
        if grounded:
            raise ValueError(
                f"{', '.join(grounded)} belong in the `grounded` section, which only VGS+ runs get; `train` "
                "is what every run shares"
            )
        if nested_value(train, ("data", "mixture")) == "mono":
            raise ValueError(
                "train.data.mixture 'mono' cannot make the multilingual runs; use matched-total (the "
                "study's budget-matched default) or matched-per-language"
            )
        return train

    @field_validator("grounded")
    @classmethod
    def _grounded_sections_only(cls, grounded: dict[str, Any]) -> dict[str, Any]:
        unknown = [key for key in grounded if key not in GROUNDED_SECTIONS]
        if unknown:
            raise ValueError(f"unknown section(s) {unknown}; grounded holds {', '.join(GROUNDED_SECTIONS)}")
        _check_study_owned(grounded)
        return grounded

    @model_validator(mode="after")
    def _analysed_condition_evaluated(self) -> StudyConfig:
        problems = []
        if self.analysis.speaker not in self.evaluation.speakers:
            problems.append(f"analysis.speaker {self.analysis.speaker} is not in evaluation.speakers")
        if self.analysis.context not in self.evaluation.contexts:
            problems.append(f"analysis.context {self.analysis.context} is not in evaluation.contexts")
        layers = self.evaluation.layers
        if isinstance(self.analysis.layer, int) and layers != "all" and self.analysis.layer not in layers:
            problems.append(f"analysis.layer {self.analysis.layer} is not in evaluation.layers {layers}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _check_study_owned(section: Mapping[str, Any]) -> None:
    for keys in STUDY_OWNED_TRAIN_KEYS:
        if nested_value(section, keys) is not None:
            raise ValueError(
                f"{'.'.join(keys)} is set by the study for each run (its directory under DIR/runs, the "
                "study's seeds, the corpus files of the run's languages); remove it"
            )


def nested_value(tree: Mapping[str, Any], keys: Sequence[str]) -> Any:
    """`tree[keys[0]][keys[1]]...`, or None where a key is missing."""
    for key in keys:
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree


@dataclass(frozen=True)
class StudyFile:
    """A validated study config and where it came from, to point later problems at their YAML line."""

    config: StudyConfig
    path: Path
    root_node: yaml.Node | None

    def problem(self, location: Sequence[str | int], message: str) -> str:
        """`file:line: key.path: message` for the key at `location` (its deepest part found in the file)."""
        return format_config_error(self.path, self.root_node, {"loc": tuple(location), "msg": message})

    def fail(self, problems: Sequence[str]) -> StudyConfigError:
        return _listed(self.path, problems)


def _listed(path: Path, problems: Sequence[str]) -> StudyConfigError:
    return StudyConfigError(f"{len(problems)} problem(s) in study config {path}:\n" + "\n".join(problems))


def load_study_config(path: str | os.PathLike[str]) -> StudyFile:
    """Read and validate a study YAML file; raise `StudyConfigError` listing every problem with its line."""
    source = Path(path)
    raw, root_node = read_yaml_mapping(
        source,
        error=StudyConfigError,
        missing=f"study config {source} does not exist",
        keys="corpus, languages, train",
    )
    try:
        config = validate_config(StudyConfig, raw, base_dir=source.parent)
    except ValidationError as error:
        raise _listed(
            source, [format_config_error(source, root_node, problem) for problem in error.errors()]
        ) from None
    return StudyFile(config=config, path=source, root_node=root_node)
