"""fairseq-style audio manifests (TSV).

Line 1 is the audio root directory; every other line is `relative/path<TAB>num_samples`, optionally
followed by `<TAB>language<TAB>speaker`. fairseq's own reader accepts only the first two columns
(`cut -f1,2` makes such a file). A relative root is resolved against the manifest's own directory, so a
corpus can be moved as a whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vgssl.atomic import atomic_write_text
from vgssl.errors import VgsslError


class ManifestError(VgsslError):
    """A manifest file is missing or malformed."""


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # relative to the manifest root, as written in the file
    num_samples: int
    language: str | None = None
    speaker: str | None = None
    line: int | None = field(default=None, compare=False)  # the manifest line it was read from, for errors

    @property
    def key(self) -> str:
        """The file's key for feature layouts and item files: its relative path without extension."""
        return os.path.splitext(self.path)[0]


@dataclass(frozen=True)
class Manifest:
    source: Path
    root: Path
    entries: tuple[ManifestEntry, ...]

    def audio_path(self, entry: ManifestEntry) -> Path:
        return self.root / entry.path

    def __len__(self) -> int:
        return len(self.entries)


def read_manifest(path: str | os.PathLike[str], *, language: str | None = None) -> Manifest:
    """Read a manifest; `language` fills entries that have no language column."""
    source = Path(path)
    if not source.is_file():
        raise ManifestError(
            f"manifest {source} does not exist; build a corpus with `vgssl synth` or check the path"
        )
    lines = source.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].strip():
        raise ManifestError(
            f"{source}:1: the first line must be the audio root directory, found an empty line"
        )
    root = Path(lines[0].strip())
    if not root.is_absolute():
        root = (source.parent / root).resolve()
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        columns = line.rstrip("\n").split("\t")
        if len(columns) not in (2, 3, 4):
            raise ManifestError(
                f"{source}:{number}: expected 2 to 4 tab-separated columns "
                f"(path, num_samples[, language[, speaker]]), found {len(columns)}: {line!r}"
            )
        try:
            num_samples = int(columns[1])
        except ValueError:
            raise ManifestError(
                f"{source}:{number}: num_samples must be an integer, found {columns[1]!r}"
            ) from None
        if num_samples <= 0:
            raise ManifestError(f"{source}:{number}: num_samples must be positive, found {num_samples}")
        entries.append(
            ManifestEntry(
                path=columns[0],
                num_samples=num_samples,
                language=columns[2] if len(columns) > 2 and columns[2] else language,
                speaker=columns[3] if len(columns) > 3 and columns[3] else None,
                line=number,
            )
        )
    return Manifest(source=source, root=root, entries=tuple(entries))


def write_manifest(
    path: str | os.PathLike[str], root: str | os.PathLike[str], entries: Iterable[ManifestEntry]
) -> None:
    """Write a manifest atomically. Language and speaker columns are written when any entry has them."""
    entries = list(entries)
    extra = any(entry.language or entry.speaker for entry in entries)
    rows = [str(root)]
    for entry in entries:
        if "\t" in entry.path or "\n" in entry.path:
            raise ManifestError(f"audio path {entry.path!r} contains a tab or newline and cannot be written")
        row = f"{entry.path}\t{entry.num_samples}"
        if extra:
            row += f"\t{entry.language or ''}\t{entry.speaker or ''}"
        rows.append(row)
    atomic_write_text(path, "\n".join(rows) + "\n")
