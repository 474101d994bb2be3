import re
import subprocess
import sys
from pathlib import Path

import pytest

from vgssl.atomic import atomic_write_json, atomic_write_text
from vgssl.cli import COMMANDS, CommandRegistryError, build_parser, main


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


def documented_commands() -> set[str]:
    """The commands README.md's "## Commands" section has a heading for (`### `vgssl NAME ...``)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    headings = [line for line in section.splitlines() if line.startswith("### ")]
    return {name for line in headings for name in re.findall(r"`vgssl ([a-z][a-z-]*)", line)}


def test_every_documented_command_is_registered_and_has_help() -> None:
    documented = documented_commands()
    # The README's headings as of this writing; a renamed heading must not shrink what is checked.
    assert documented >= {"synth", "check-images", "train", "export-hf", "extract", "abx", "abx-lang"}
    assert documented >= {"retrieval", "gap", "study"}
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(subcommands) == set(COMMANDS)  # every registered command made it into the parser
    assert documented <= set(subcommands)
    listing = subprocess.run(
        [sys.executable, "-m", "vgssl", "--help"], capture_output=True, text=True, check=False
    )
    assert listing.returncode == 0, listing.stderr
    assert all(re.search(rf"^\s+{re.escape(name)}\s", listing.stdout, re.M) for name in COMMANDS)
    for name in subcommands:
        result = subprocess.run(
            [sys.executable, "-m", "vgssl", name, "--help"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert f"usage: vgssl {name}" in result.stdout


def test_a_command_whose_module_is_missing_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(COMMANDS, "frobnicate", "vgssl.no_such_module")
    with pytest.raises(CommandRegistryError, match=r"command 'frobnicate': its module vgssl\.no_such_module"):
        build_parser()
    assert main(["--help"]) == 2
    assert "vgssl.no_such_module" in capsys.readouterr().err

    # A module that imports but lacks the interface is refused the same way.
    monkeypatch.setitem(COMMANDS, "frobnicate", "vgssl.errors")
    with pytest.raises(CommandRegistryError, match=r"'frobnicate'.*vgssl\.errors does not define HELP"):
        build_parser()
