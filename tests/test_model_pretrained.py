"""load_model: checkpoint files and run directories, and clear errors for anything else."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vgssl.atomic import atomic_torch_save
from vgssl.model.config import ModelConfig
from vgssl.model.pretrained import (
    CHECKPOINT_FORMAT,
    IncompatibleCheckpointError,
    NotACheckpointError,
    load_model,
)
from vgssl.model.wav2vec2 import Wav2Vec2

TINY = {"dim": 32, "layers": 2, "heads": 2, "ffn_dim": 64, "pos_conv_kernel": 16, "pos_conv_groups": 4}


def save(model: Wav2Vec2, path: Path, **extra: object) -> None:
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "model_config": model.config.model_dump(),
        "model": model.state_dict(),
    }
    atomic_torch_save(checkpoint | extra, path)


def test_a_run_directory_loads_best_else_last_in_eval_mode(tmp_path: Path) -> None:
    torch.manual_seed(0)
    last, best = Wav2Vec2(ModelConfig(**TINY)), Wav2Vec2(ModelConfig(**TINY))
    save(last, tmp_path / "checkpoints" / "last.pt", step=10)
    loaded = load_model(tmp_path)
    assert not loaded.training
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.state_dict().values(), last.state_dict().values(), strict=True)
    )

    save(best, tmp_path / "checkpoints" / "best.pt")
    loaded = load_model(tmp_path)
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.state_dict().values(), best.state_dict().values(), strict=True)
    )
    assert load_model(tmp_path / "checkpoints" / "last.pt").config == last.config


def test_anything_else_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(NotACheckpointError, match="holds: nothing"):
        load_model(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NotACheckpointError, match=r"holds: notes\.txt"):
        load_model(tmp_path)
    random_file = tmp_path / "random.pt"
    random_file.write_bytes(torch.randint(0, 256, (1000,), dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(NotACheckpointError, match="not a readable torch checkpoint"):
        load_model(random_file)
    (tmp_path / "text.pt").write_text("a plain text file\n")  # torch.load raises KeyError on these
    with pytest.raises(NotACheckpointError, match="not a readable torch checkpoint"):
        load_model(tmp_path / "text.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(NotACheckpointError, match=r"keys \[state_dict\]"):
        load_model(tmp_path / "other.pt")
    with pytest.raises(NotACheckpointError, match="does not exist"):
        load_model(tmp_path / "missing")


def test_a_checkpoint_whose_config_no_longer_validates_is_incompatible(tmp_path: Path) -> None:
    model = Wav2Vec2(ModelConfig(**TINY))
    save(model, tmp_path / "old.pt", model_config=model.config.model_dump() | {"retired_option": 1})
    with pytest.raises(IncompatibleCheckpointError, match="retired_option"):
        load_model(tmp_path / "old.pt")
