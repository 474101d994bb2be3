"""Load a trained model from a vgssl checkpoint, or initialise one from a local transformers checkpoint.

A checkpoint is a torch file holding {"format": CHECKPOINT_FORMAT, "model_config": ModelConfig.model_dump(),
"model": state_dict, …training keys owned by vgssl.train…}. A run directory holds checkpoints/best.pt and
checkpoints/last.pt. Checkpoints are read with `weights_only=True`: every value must be plain Python data
or tensors.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pydantic
import torch

from vgssl.errors import VgsslError
from vgssl.model.config import ModelConfig
from vgssl.model.hf import (
    check_hf_config,
    quantizer_matches,
    read_hf_config,
    read_hf_weights,
    state_from_hf,
)
from vgssl.model.wav2vec2 import Wav2Vec2

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "vgssl-checkpoint-v1"
CHECKPOINT_NAMES = ("best.pt", "last.pt")  # preference order inside a run directory


class NotACheckpointError(VgsslError):
    """A path holds no vgssl checkpoint; the message says what was found instead."""


class IncompatibleCheckpointError(VgsslError):
    """A vgssl checkpoint's config or weights do not fit this version of the model."""


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file itself, or a run directory's checkpoints/best.pt, else checkpoints/last.pt."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise NotACheckpointError(f"{path} does not exist: expected a checkpoint .pt file or a run directory")
    for folder in (path / "checkpoints", path):
        for name in CHECKPOINT_NAMES:
            if (folder / name).is_file():
                return folder / name
    found = sorted(child.name for child in path.iterdir())
    listing = ", ".join(found[:10]) + (" …" if len(found) > 10 else "") if found else "nothing"
    raise NotACheckpointError(
        f"{path} is a directory without checkpoints/best.pt or checkpoints/last.pt (it holds: {listing}); "
        "pass a run directory of `vgssl train` or a checkpoint file"
    )


def read_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint dictionary at `path` (file or run directory), its format checked."""
    file = find_checkpoint(path)
    try:
        checkpoint = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as error:  # unpickling arbitrary bytes raises any type (KeyError, IndexError, ...)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NotACheckpointError(f"{file} is not a readable torch checkpoint ({first_line})") from error
    if not isinstance(checkpoint, dict):
        raise NotACheckpointError(
            f"{file} holds a {type(checkpoint).__name__}, not a vgssl checkpoint dictionary"
        )
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        keys = ", ".join(sorted(map(str, checkpoint))[:10])
        raise NotACheckpointError(
            f"{file} is a torch file with format {checkpoint.get('format')!r} and keys [{keys}], "
            f"not a {CHECKPOINT_FORMAT!r} checkpoint"
        )
    return checkpoint


def checkpoint_identity(path: str | Path) -> dict[str, Any]:
    """Which checkpoint a file (or run directory) is: its resolved file, training step and content hash.

    Features record it, so that features of one checkpoint are never taken for another's (a run trained
    further keeps its path but not its weights)."""
    import hashlib

    file = find_checkpoint(path).resolve()
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    step = state.get("step") if isinstance(state, dict) else None
    return {"file": str(file), "step": step, "sha256": digest.hexdigest()}


def load_model(path: str | Path, *, map_location: str | torch.device = "cpu") -> Wav2Vec2:
    """The model saved at `path` (a .pt file or a run directory: best, else last), in eval mode."""
    file = find_checkpoint(path)
    checkpoint = read_checkpoint(file, map_location=map_location)
    try:
        config = ModelConfig.from_checkpoint(checkpoint["model_config"])
    except (KeyError, pydantic.ValidationError) as error:
        raise IncompatibleCheckpointError(f"{file} has no valid model_config: {error}") from error
    model = Wav2Vec2(config)
    try:
        model.load_state_dict(checkpoint["model"])
    except (KeyError, RuntimeError) as error:
        raise IncompatibleCheckpointError(
            f"{file}: its weights do not fit its model_config: {error}"
        ) from error
    return model.to(map_location).eval()


def init_from_hf(model: Wav2Vec2, hf_dir: Path) -> None:
    """Copy the weights of a local transformers wav2vec 2.0 checkpoint directory into a conv-front-end model.

    The encoder must match exactly (else HFCheckpointMismatchError names the differing fields). The quantizer
    and its projections are copied too when the checkpoint has them (Wav2Vec2ForPreTraining) and their sizes
    match; otherwise they keep their fresh initialisation and a warning says so.
    """
    hf_dir = Path(hf_dir)
    hf_config = read_hf_config(hf_dir)
    check_hf_config(hf_config, model.config, where=hf_dir)
    weights = read_hf_weights(hf_dir)
    include_quantizer = quantizer_matches(hf_config, model.config) and "quantizer.codevectors" in weights
    if not include_quantizer:
        logger.warning(
            "%s has no quantizer of the model's size: the quantizer and projections keep their init",
            hf_dir,
        )
    state = state_from_hf(weights, model.config, include_quantizer=include_quantizer, where=hf_dir)
    model.load_state_dict(state, strict=False)
