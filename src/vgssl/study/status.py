"""`status.json` of a run: what happened to its training and evaluation, kept across re-runs of the study.

Wall time adds up over attempts, so a run interrupted and resumed reports the compute it really used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from vgssl.atomic import atomic_write_json

StageState = Literal["pending", "running", "interrupted", "done", "failed"]


class StageStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: StageState = "pending"
    attempts: int = 0
    wall_seconds: float = 0.0  # summed over attempts
    error: str | None = None  # what the last failure said


class RunStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    training: StageStatus = StageStatus()
    evaluation: StageStatus = StageStatus()


def read_status(path: Path) -> RunStatus:
    if not path.is_file():
        return RunStatus()
    return RunStatus.model_validate(json.loads(path.read_text(encoding="utf-8")))


def write_status(path: Path, status: RunStatus) -> None:
    atomic_write_json(path, status.model_dump(mode="json"))
