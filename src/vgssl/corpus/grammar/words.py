"""The words of each language: the data file `data/<code>.yaml` and the notation of its tables.

Long word lists are written as tables: whitespace-separated entries whose forms are joined by "/", with "_"
standing for a space inside a form ("jus_d'orange/m"). Nouns are "singular/plural", "word" for a mass noun,
and in a language with genders end in "/m" or "/f". Verb tables have one verb a line: its infinitive, the
forms the language's module reads, and the kind of object it takes ("-" for none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any, Literal

import yaml

from vgssl.errors import VgsslError

Gender = Literal["m", "f"]
# Masculine singular, feminine singular, masculine plural, feminine plural; a determiner may add the masculine
# and feminine singular it takes before a vowel ("ce/cette/ces/ces/cet/cette").
Forms = tuple[str, ...]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class WordsFileError(VgsslError):
    """A language's data file holds something other than words."""


@cache
def load_words(code: str) -> dict[str, Any]:
    """The data file of language `code`, shipped with the package as `data/<code>.yaml` (read only)."""
    resource = files("vgssl.corpus.grammar") / "data" / f"{code}.yaml"
    words = yaml.load(resource.read_text(encoding="utf-8"), Loader=_LOADER)
    _check_words(words, f"data/{code}.yaml")
    return words


def _check_words(value: object, where: str) -> None:
    # YAML reads a bare `on`, `no` or `null` as a boolean or nothing: only words and counts may stand there.
    if isinstance(value, dict):
        for key, item in value.items():
            _check_words(key, where)
            _check_words(item, f"{where}: {key}")
    elif isinstance(value, list):
        for item in value:
            _check_words(item, where)
    elif not isinstance(value, str | int) or isinstance(value, bool):
        raise WordsFileError(f"{where}: {value!r} is not a word; quote it")


def entries(table: str) -> list[list[str]]:
    """The forms of each entry of a table."""
    return [entry.replace("_", " ").split("/") for entry in table.split()]


def row(table: str) -> list[str]:
    """The words of a table of one-form entries ("ai as a avons avez ont")."""
    return [form for (form,) in entries(table)]


def pairs(table: str) -> list[tuple[str, str]]:
    """The entries of a table of "word/tag" entries ("je/1s tu/2s")."""
    return [(word, tag) for word, tag in entries(table)]


@dataclass(frozen=True)
class Noun:
    singular: str
    plural: str  # "" for a mass noun
    gender: Gender = "m"


def nouns(table: str, *, gendered: bool = True) -> tuple[Noun, ...]:
    result = []
    for forms in entries(table):
        gender: Gender = "f" if gendered and forms.pop() == "f" else "m"
        result.append(Noun(forms[0], forms[1] if len(forms) == 2 else "", gender))
    return tuple(result)


@dataclass(frozen=True)
class Verb:
    infinitive: str
    forms: tuple[str, ...]  # what the language's module reads: conjugations, participles
    objects: str  # a kind of object ("food", "person", ...), or "" for an intransitive verb


def verbs(table: str) -> tuple[Verb, ...]:
    result = []
    for line in table.strip().splitlines():
        infinitive, *forms, objects = line.split()
        result.append(Verb(infinitive, tuple(forms), "" if objects == "-" else objects))
    return tuple(result)


def adjectives(table: str, regular: Callable[[str], Forms]) -> tuple[Forms, ...]:
    """Entries "m/f/mp/fp" (or a determiner's six forms), "singular/plural" for one form per number, or one
    word that `regular` inflects."""
    result = []
    for forms in entries(table):
        if len(forms) == 1:
            result.append(regular(forms[0]))
        elif len(forms) == 2:
            result.append((forms[0], forms[0], forms[1], forms[1]))
        else:
            result.append(tuple(forms))
    return tuple(result)


def agree(forms: Forms, gender: Gender, plural: bool) -> str:
    return forms[(gender == "f") + 2 * plural]
