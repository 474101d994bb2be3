"""Run directories and checkpoints: atomic saves, the last K steps plus the best, exact resumption.

A run directory holds the resolved `config.yaml` it was made with, and `checkpoints/` with `step_XXXXXXXX.pt`
(the last `keep_last` of them), `last.pt` and `best.pt` (by `checkpoint.best_by`: the SSL validation loss, or
valid retrieval for grounded runs; the checkpoint's "best" entry says which and its score). `last.pt` and
`best.pt` are hard links to a step file where the file system allows, so a checkpoint is written once.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml

from vgssl.atomic import atomic_path, atomic_torch_save, atomic_write_text
from vgssl.errors import VgsslError
from vgssl.locks import LOCK_FILE
from vgssl.train.config import TrainConfig

CHECKPOINTS = "checkpoints"
CONFIG_FILE = "config.yaml"


class ResumeError(VgsslError):
    """A checkpoint cannot be resumed under the current launch or by this version of vgssl."""


class RunDirConflictError(VgsslError):
    """The run directory was made with another config, or is not a run directory at all."""


def prepare_run_dir(config: TrainConfig) -> Literal["new", "resume", "extend"]:
    """Create the run directory, or check that an existing one was made with this very config.

    One difference is allowed: a larger `max_steps` extends the run ("extend"; config.yaml is rewritten).
    The schedules that depend on max_steps — the learning-rate decay, a Gumbel anneal given by
    `optim.gumbel_floor_at` — then follow the new length from the step reached.
    """
    run_dir = config.run_dir
    saved = run_dir / CONFIG_FILE
    if saved.is_file():
        previous = yaml.safe_load(saved.read_text(encoding="utf-8"))
        differences = _differences(previous, config.identity())
        if [key for key, _, _ in differences] == ["max_steps"] and config.max_steps > previous["max_steps"]:
            atomic_write_text(saved, yaml.safe_dump(config.identity(), sort_keys=False, allow_unicode=True))
            return "extend"
        if differences:
            listed = "\n".join(f"  {key}: {old!r} in the run, {new!r} now" for key, old, new in differences)
            raise RunDirConflictError(
                f"run directory {run_dir} was made with a different config:\n{listed}\n"
                f"To continue that run, use its config ({saved}; only a larger max_steps may differ, which "
                f"extends it); to start a new run, pass another --run-dir; to discard the old run, delete "
                f"{run_dir} first."
            )
        return "resume"
    if run_dir.exists() and any(path.name != LOCK_FILE for path in run_dir.iterdir()):
        raise RunDirConflictError(
            f"{run_dir} is not empty and has no {CONFIG_FILE}, so it is not a vgssl run directory; "
            "pass another --run-dir or empty it"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(saved, yaml.safe_dump(config.identity(), sort_keys=False, allow_unicode=True))
    return "new"


def _differences(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        found = []
        for key in sorted(set(old) | set(new)):
            found += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    # YAML has no tuples: compare lists and tuples alike.
    if _as_lists(old) != _as_lists(new):
        return [(prefix.rstrip("."), old, new)]
    return []


def _as_lists(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_as_lists(item) for item in value]
    return value


def last_checkpoint_path(run_dir: Path) -> Path:
    return run_dir / CHECKPOINTS / "last.pt"


def load_last_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    path = last_checkpoint_path(run_dir)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def save_checkpoint(
    state: Mapping[str, Any], run_dir: Path, *, step: int, keep_last: int, is_best: bool
) -> Path:
    """Write the step's checkpoint, point last.pt (and best.pt) at it, and delete older step files."""
    directory = run_dir / CHECKPOINTS
    step_path = directory / f"step_{step:08d}.pt"
    atomic_torch_save(dict(state), step_path)
    _link_atomically(step_path, directory / "last.pt")
    if is_best:
        _link_atomically(step_path, directory / "best.pt")
    for old in sorted(directory.glob("step_*.pt"))[:-keep_last]:
        old.unlink()
    return step_path


def _link_atomically(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:  # no hard links on this file system
            shutil.copyfile(source, tmp)


def capture_rng_state() -> dict[str, Any]:
    """The process's RNG states as plain lists and tensors, so checkpoints load with `weights_only=True`."""
    numpy_state = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
