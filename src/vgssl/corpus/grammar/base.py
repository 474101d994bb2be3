"""What every language's grammar provides: the `Grammar` base class, which reads a language's data file.

A language is a data file `data/<code>.yaml` holding its words (see `words.py`) and one module defining a
`Grammar` subclass with the rules that are code: `noun_phrase` realises a mention with the language's
agreement and word order, and six sentence makers compose everyday sentences for audio-only speech. What is
the same in every language lives in two halves that `Grammar` joins: `captions.py` chooses what a caption
says and parses captions back from the lexicon the data file gives, and `sentences.py` chooses the kind of
everyday sentence and holds the text helpers (`choose`, `join`, ...) the language modules use. This module
parses the data file's tables that both halves read, when a language's class is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from vgssl.corpus.grammar.captions import CaptionGrammar
from vgssl.corpus.grammar.sentences import SentenceGrammar
from vgssl.corpus.grammar.words import load_words, nouns, pairs, row, verbs


class Grammar(CaptionGrammar, SentenceGrammar):
    """A language: captions of scenes and everyday sentences, as plain text espeak-ng reads.

    A subclass sets `code` and `espeak_language`; its words are read from `data/<code>.yaml` into `words`
    and parsed into the tables below when the class is made: the caption tables `shapes`, `sizes` and
    `colours` (each key's word forms), from which the caption lexicon follows, and the sentence tables
    (`pronouns`, `people`, `verbs`, `outdoors`; see `SentenceGrammar`).
    """

    code: ClassVar[str]  # ISO 639-1, as used in corpus paths and configs ("en")
    espeak_language: ClassVar[str]  # the espeak-ng voice ("en-us")
    gendered: ClassVar[bool] = False  # whether the data's nouns end in their gender ("pomme/pommes/f")
    words: ClassVar[dict[str, Any]]  # the data file

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            cls.words = load_words(cls.code)
            cls.read_words()
            cls.caption_lexicon = cls._lexicon()

    @classmethod
    def read_words(cls) -> None:
        """Parse the tables of `words` that the shared code reads; a language extends it with its own."""
        captions, sentences = cls.words["captions"], cls.words["sentences"]
        cls.shapes = {
            shape: nouns(entry, gendered=cls.gendered)[0] for shape, entry in captions["shapes"].items()
        }
        cls.sizes = {size: cls.adjectives(table) for size, table in captions["sizes"].items()}
        cls.colours = {colour: cls.adjectives(table) for colour, table in captions["colours"].items()}
        cls.pronouns = pairs(sentences["pronouns"])
        cls.people = nouns(sentences["people"], gendered=cls.gendered)
        cls.verbs = {kind: cls.parse_verbs(table) for kind, table in sentences["verbs"].items()}
        in_city = sentences["in_city"]
        cls.outdoors = [*sentences["outdoors"], *(in_city.format(city=c) for c in sentences["cities"])]

    @classmethod
    def adjectives(cls, table: str) -> Sequence[Any]:
        """The adjectives of a table, each as the language's agreement needs it: by default, plain words."""
        return row(table)

    parse_verbs = staticmethod(verbs)

    @staticmethod
    def finish(text: str) -> str:
        """The last pass over a caption or sentence (elision, contractions); none by default."""
        return text
