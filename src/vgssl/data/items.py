"""ZeroSpeech-style item files: the segments an ABX task compares, one per line.

An item file is UTF-8 text ending in `.item`, its fields separated by spaces. The first line is the header,
naming the columns; every other non-blank line is one item with one field per column:

    #file onset offset #phone prev-phone next-phone speaker        (phone ABX, `PHONE_HEADER`)
    en/test/en-test-s07-u00012 0.1250 0.2100 a b t s07

    #file onset offset #language speaker length                    (language ABX, `LANGUAGE_HEADER`)

`#file` is the audio path relative to the audio root, without extension (also the name of its feature file),
`onset` and `offset` are seconds (vgssl writes four decimals). A built-in corpus keeps its item files in
`items/`: `{lang}_{split}_{flavour}.item` (`phone_item_file`) and `test_language.item`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from vgssl.atomic import atomic_write_text
from vgssl.errors import VgsslError

PHONE_COLUMNS = ("#file", "onset", "offset", "#phone", "prev-phone", "next-phone", "speaker")
LANGUAGE_COLUMNS = ("#file", "onset", "offset", "#language", "speaker", "length")
PHONE_HEADER = " ".join(PHONE_COLUMNS)
LANGUAGE_HEADER = " ".join(LANGUAGE_COLUMNS)
# Splits with phone item files: test for the reported numbers, valid for choosing layers (never on test).
PHONE_ITEM_SPLITS = ("valid", "test")
PHONE_FLAVOURS = ("phoneme", "triphone")
LANGUAGE_ITEM_FILE = "test_language.item"


class ItemFileError(VgsslError):
    """An item file is missing, has the wrong columns, or holds items that cover no frame."""


def phone_item_file(language: str, split: str, flavour: str) -> str:
    """The name of a phone item file in a corpus's `items/` directory, e.g. `en_valid_triphone.item`."""
    if flavour not in PHONE_FLAVOURS:
        raise ValueError(f"flavour must be one of {PHONE_FLAVOURS}, not {flavour!r}")
    return f"{language}_{split}_{flavour}.item"


def write_item_file(path: str | os.PathLike[str], header: str, rows: Iterable[Sequence[str]]) -> int:
    """Write an item file atomically; returns the number of items."""
    lines = [header]
    for row in rows:
        if any(not field or any(ch.isspace() for ch in field) for field in row):
            raise ValueError(f"item field is empty or holds whitespace in row {row!r}")
        lines.append(" ".join(row))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return len(lines) - 1


@dataclass(frozen=True)
class ItemFile:
    """An item file whose header has been checked; its rows are read (and checked) on demand."""

    path: Path
    header: tuple[str, ...]

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, fields) of every item; a row with another field count than the header fails."""
        with self.path.open(encoding="utf-8") as handle:
            handle.readline()
            for number, line in enumerate(handle, start=2):
                _refuse_tabs(self.path, number, line)
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != len(self.header):
                    raise ItemFileError(
                        f"{self.path}:{number}: {len(fields)} fields, the header has {len(self.header)}"
                    )
                yield number, fields


def read_item_file(path: str | os.PathLike[str], *, columns: Sequence[str] = ()) -> ItemFile:
    """Check that an item file exists, ends in `.item` and has a header with (at least) `columns`."""
    item_file = Path(path)
    if not item_file.is_file():
        raise ItemFileError(f"item file {item_file} does not exist")
    if item_file.suffix != ".item":
        raise ItemFileError(f"{item_file}: item files must be space-separated and end in .item")
    with item_file.open(encoding="utf-8") as handle:
        first = handle.readline()
    _refuse_tabs(item_file, 1, first)
    header = first.split()
    missing = [column for column in columns if column not in header]
    if missing:
        raise ItemFileError(
            f"{item_file}:1: header lacks column(s) {missing}; "
            f"expected {' '.join(columns)}, found {' '.join(header)}"
        )
    return ItemFile(item_file, tuple(header))


def is_item_file(path: str | os.PathLike[str]) -> bool:
    """Whether an existing file starts with an item header (first column `#file`), not e.g. a manifest."""
    with Path(path).open(encoding="utf-8") as handle:
        return handle.readline().startswith("#file")


def _item_fields(path: str | os.PathLike[str]) -> Iterator[list[str]]:
    """The fields of every non-blank line below the header, unchecked."""
    with Path(path).open(encoding="utf-8") as handle:
        handle.readline()
        for number, line in enumerate(handle, start=2):
            _refuse_tabs(Path(path), number, line)
            fields = line.split()
            if fields:
                yield fields


def _refuse_tabs(path: Path, number: int, line: str) -> None:
    """fastabx reads item files as space-separated; a tab would reach it as part of a field."""
    if "\t" in line:
        raise ItemFileError(
            f"{path}:{number}: the fields are separated by tabs; item files are space-separated (ZeroSpeech "
            "format): convert it with `tr '\\t' ' '`"
        )


def has_items(path: str | os.PathLike[str]) -> bool:
    """Whether an item file exists and holds at least one item below its header."""
    return Path(path).is_file() and any(True for _ in _item_fields(path))


def item_keys(path: str | os.PathLike[str]) -> set[str]:
    """The `#file` keys (the first field) of an item file's items, each once."""
    return {fields[0] for fields in _item_fields(path)}


def item_labels(path: str | os.PathLike[str], column: str) -> list[str]:
    """The sorted distinct values of one column (e.g. `#phone`) over an item file's items."""
    with Path(path).open(encoding="utf-8") as handle:
        at = handle.readline().split().index(column)
    return sorted({fields[at] for fields in _item_fields(path)})
