"""The ABX result file: one JSON document per `vgssl abx` / `vgssl abx-lang` run, plus a flat CSV twin.

A result records everything needed to compare it with another one: the features and item file, the
model that made the features, the conventions (frame rate, frame times, last-frame rule, subsampling,
seed), one score per layer × speaker mode × context mode, and for every score the collapsed ABX cells
whose plain mean is that score, so that `vgssl gap` can bootstrap over them. A `run` block tags the
result with the study's metadata (objective, training languages, evaluated language, seed, run name).

All error rates in a result are percentages (0 = perfect, 50 = chance).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vgssl.atomic import atomic_write_json, atomic_write_text
from vgssl.audio.frames import FRAME_RATE
from vgssl.errors import VgsslError

RESULT_FORMAT = "vgssl-abx-result-v1"
# fastabx's convention (Δt/2 + iΔt); the 400-sample receptive field of frame i starts at 0.02·i s, so its
# centre is 2.5 ms later than this stated time, an offset ZeroSpeech's evaluations also ignore.
FRAME_TIMES = "frame i is at 0.01 + 0.02·i s and belongs to an item when onset ≤ time ≤ offset"

Objective = Literal["ssl-a", "vgs+"]
SpeakerMode = Literal["within", "across"]
ContextMode = Literal["within", "any"]
AbxTask = Literal["phone", "language"]
LastFrame = Literal["kept", "dropped (Libri-Light bug)"]


class ResultFormatError(VgsslError):
    """A result file is missing, is not JSON, or does not follow the vgssl ABX result schema."""


class BadRunTagError(VgsslError):
    """A `--run-tag key=value` option names an unknown key or holds a value of the wrong type."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunTag(_Strict):
    """The study's metadata for one trained model evaluated on one language."""

    objective: Objective | None = None
    train_languages: list[str] = Field(default_factory=list)
    eval_language: str | None = None
    seed: int | None = None
    run: str | None = None

    @field_validator("train_languages")
    @classmethod
    def _no_empty_language(cls, languages: list[str]) -> list[str]:
        if any(not language for language in languages):
            raise ValueError("training languages must be non-empty codes such as 'en'")
        return languages


class Conventions(_Strict):
    frame_rate: int = FRAME_RATE
    frame_times: str = FRAME_TIMES
    last_frame: LastFrame
    distance: Literal["angular"] = "angular"
    alignment: Literal["dtw", "none (segments are mean-pooled)"]
    max_size_group: int | None
    max_x_across: int | None
    seed: int
    collapse: str  # how the cells were averaged into one score
    fastabx_version: str


class CellScores(_Strict):
    """Collapsed ABX cells in columns: `a` and `b` are the discriminated labels (e.g. two phones)."""

    a: list[str]
    b: list[str]
    error: list[float]  # percent
    triplets: list[int]  # number of (A, B, X) triplets behind each cell

    def __len__(self) -> int:
        return len(self.error)


class ConditionScore(_Strict):
    layer: int
    speaker: SpeakerMode
    context: ContextMode | None  # None for language ABX, which has no phonetic context
    error: float  # percent: fastabx's collapsed score, equal to the mean of `cells.error`
    cells: CellScores


class AbxResult(_Strict):
    format: Literal["vgssl-abx-result-v1"] = RESULT_FORMAT
    task: AbxTask
    features: str
    item_file: str
    language: str | None  # the evaluated language of a phone ABX; None for language ABX
    labels: list[str]  # the labels discriminated: phones, or languages
    model: dict[str, Any]  # the "model" block of the extraction's features.json
    conventions: Conventions
    content_control: str | None = None
    run: RunTag | None = None
    scores: list[ConditionScore]
    vgssl_version: str

    def score(self, *, layer: int, speaker: SpeakerMode, context: ContextMode | None) -> ConditionScore:
        for candidate in self.scores:
            if (candidate.layer, candidate.speaker, candidate.context) == (layer, speaker, context):
                return candidate
        available = sorted({(s.speaker, s.context or "-") for s in self.scores})
        raise ResultFormatError(
            f"result for {self.features} has no score for layer {layer}, speaker={speaker}, "
            f"context={context}; it has layers {self.layers} and conditions {available}"
        )

    @property
    def layers(self) -> list[int]:
        return sorted({score.layer for score in self.scores})


def parse_run_tags(pairs: Sequence[str]) -> RunTag | None:
    """Turn `key=value` strings into a `RunTag`; `train_languages` takes a comma-separated list."""
    if not pairs:
        return None
    fields: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadRunTagError(f"run tag {pair!r} must look like key=value, e.g. objective=ssl-a")
        if key not in RunTag.model_fields:
            raise BadRunTagError(
                f"unknown run tag key {key!r}; the keys are {', '.join(RunTag.model_fields)}"
            )
        fields[key] = [part for part in value.split(",") if part] if key == "train_languages" else value
    try:
        return RunTag.model_validate(fields)
    except ValidationError as error:
        raise BadRunTagError(f"bad run tags {list(pairs)}: {_describe(error)}") from None


def write_result(result: AbxResult, json_path: str | os.PathLike[str]) -> Path:
    """Write the result JSON and its CSV twin (same name, `.csv`); return the CSV path."""
    json_path = Path(json_path)
    atomic_write_json(json_path, result.model_dump(mode="json"))
    csv_path = json_path.with_suffix(".csv")
    atomic_write_text(csv_path, result_csv(result))
    return csv_path


def result_csv(result: AbxResult) -> str:
    """One row per layer × condition, with the conventions and run tags repeated on every row."""
    run = result.run or RunTag()
    conventions = result.conventions
    columns = [
        "task", "language", "layer", "speaker", "context", "error_percent", "cells", "triplets",
        "features", "item_file", "frame_rate", "last_frame", "max_size_group", "max_x_across", "seed",
        "objective", "train_languages", "eval_language", "run_seed", "run",
    ]  # fmt: skip
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for score in result.scores:
        writer.writerow(
            [
                result.task, result.language or "", score.layer, score.speaker, score.context or "",
                f"{score.error:.4f}", len(score.cells), sum(score.cells.triplets),
                result.features, result.item_file, conventions.frame_rate, conventions.last_frame,
                _blank(conventions.max_size_group), _blank(conventions.max_x_across), conventions.seed,
                run.objective or "", ",".join(run.train_languages), run.eval_language or "",
                _blank(run.seed), run.run or "",
            ]
        )  # fmt: skip
    return buffer.getvalue()


def read_result(path: str | os.PathLike[str]) -> AbxResult:
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultFormatError(f"result file {path} does not exist; make it with `vgssl abx`") from None
    except json.JSONDecodeError as error:
        raise ResultFormatError(
            f"{path} is not JSON ({error}); give the .json file `vgssl abx` wrote"
        ) from None
    if not isinstance(document, dict) or document.get("format") != RESULT_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ResultFormatError(
            f"{path} is not a vgssl ABX result (format {found!r}, expected {RESULT_FORMAT!r})"
        )
    try:
        return AbxResult.model_validate(document)
    except ValidationError as error:
        raise ResultFormatError(f"{path} does not follow the ABX result schema: {_describe(error)}") from None


def _blank(value: object) -> object:
    return "" if value is None else value


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in issue['loc']) or '(top)'}: {issue['msg']}"
        for issue in error.errors()
    )
