import subprocess
import sys
from pathlib import Path

import pytest

from vgssl.atomic import atomic_write_json, atomic_write_text
from vgssl.cli import COMMANDS, build_parser


def test_atomic_write_leaves_old_file_when_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    atomic_write_json(target, {"a": 1})

    with pytest.raises(ValueError):  # NaN is refused: results never hold silent NaNs
        atomic_write_json(target, {"a": float("nan")})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temp file left behind


def test_atomic_write_text_creates_parents_with_ordinary_permissions(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a" / "b.txt", "hi")
    (tmp_path / "plain.txt").write_text("hi")
    assert (tmp_path / "a" / "b.txt").read_text() == "hi"
    assert (tmp_path / "a" / "b.txt").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode


def test_every_available_command_has_help() -> None:
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(subcommands) <= set(COMMANDS)
    for name in subcommands:
        result = subprocess.run(
            [sys.executable, "-m", "vgssl", name, "--help"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert f"usage: vgssl {name}" in result.stdout
