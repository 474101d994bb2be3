"""What every language's grammar provides, and the language-independent half of captioning.

A language is one module defining a `Grammar` subclass: word tables, three caption hooks (`single`,
`related`, `listed`) that realise mentions with the language's agreement and word order, a
`CaptionLexicon` for parsing captions back, and `compose_sentence` for audio-only speech. This module
chooses what to say (which group is the subject, the order of a list) so that every language gets the same
paraphrase variation, and parses any language's captions from its lexicon alone.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

from vgssl.corpus.scenes import (
    INVERSE_RELATION,
    Colour,
    Mention,
    Relation,
    Scene,
    SceneDescription,
    Shape,
    Size,
)
from vgssl.errors import VgsslError

# Words are letter runs, possibly hyphenated ("au-dessus"); an elided word keeps its apostrophe ("d'", "l'").
# Any other non-space character is a token of its own, so that digits or symbols in a caption are reported.
_TOKEN = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*'?|\S")
_PUNCTUATION = frozenset(",.;:!?¿¡")
# Length bounds of audio-only sentences, in whitespace-separated words.
MIN_WORDS = 4
MAX_WORDS = 15


class CaptionParseError(VgsslError):
    """A caption does not read as a description of a scene in its grammar's lexicon."""


def tokenize(text: str) -> list[str]:
    """Lower-cased words of `text`, punctuation dropped; "d'un" gives "d'" and "un"."""
    return [token for token in _TOKEN.findall(text.lower().replace("’", "'")) if token not in _PUNCTUATION]


def choose[T](rng: np.random.Generator, options: Sequence[T]) -> T:
    """One of `options`, uniformly."""
    return options[int(rng.integers(len(options)))]


def word_count(text: str) -> int:
    """Words of a sentence; punctuation standing alone (a French " ?") is not a word."""
    return sum(1 for chunk in text.split() if any(character.isalpha() for character in chunk))


def capitalize_first(text: str) -> str:
    """Upper-case the first letter, after any opening mark ("¿dónde" gives "¿Dónde")."""
    for index, character in enumerate(text):
        if character.isalpha():
            return text[:index] + character.upper() + text[index + 1 :]
    return text


def with_adjuncts(
    rng: np.random.Generator,
    core: str,
    options: Sequence[Sequence[str]],
    *,
    end: str,
    probability: float = 0.4,
) -> str:
    """`core` followed by at most one phrase from each list of `options` (places, times, ...).

    Each phrase is added with `probability`, or always while the sentence is shorter than `MIN_WORDS`, and
    never when it would make the sentence longer than `MAX_WORDS`.
    """
    text = core
    for phrases in options:
        phrase = choose(rng, phrases)
        wanted = rng.random() < probability or word_count(text) < MIN_WORDS
        if wanted and word_count(text) + word_count(phrase) <= MAX_WORDS:
            text = f"{text} {phrase}"
    return text + end


@dataclass(frozen=True)
class CaptionLexicon:
    """Every surface form a language's captions use, mapped to what it means.

    Phrases (relations and fillers) may span several words and are matched longest first, so a filler such as
    "a picture of" wins over the article "a". A relation phrase is always followed by its landmark.
    """

    counts: Mapping[str, int]
    sizes: Mapping[str, Size]
    colours: Mapping[str, Colour]
    shapes: Mapping[str, Shape]
    relations: Mapping[str, Relation]
    fillers: frozenset[str]
    _phrases: dict[tuple[str, ...], Relation | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        phrases: dict[tuple[str, ...], Relation | None] = {tuple(tokenize(f)): None for f in self.fillers}
        phrases.update({tuple(tokenize(p)): relation for p, relation in self.relations.items()})
        object.__setattr__(self, "_phrases", phrases)

    def match_phrase(self, tokens: Sequence[str], start: int) -> tuple[int, Relation | None]:
        """(length, relation or None for a filler) of the longest phrase at `start`; length 0 if none."""
        longest = max(len(phrase) for phrase in self._phrases)
        for length in range(min(longest, len(tokens) - start), 0, -1):
            phrase = tuple(tokens[start : start + length])
            if phrase in self._phrases:
                return length, self._phrases[phrase]
        return 0, None


@dataclass
class _PartialMention:
    count: int
    size: Size | None = None
    colour: Colour | None = None
    shape: Shape | None = None


class Grammar(ABC):
    """A language: captions of scenes and everyday sentences, as plain text espeak-ng reads."""

    code: ClassVar[str]  # ISO 639-1, as used in corpus paths and configs ("en")
    espeak_language: ClassVar[str]  # the espeak-ng voice ("en-us")
    caption_lexicon: ClassVar[CaptionLexicon]

    def caption(self, scene: Scene, rng: np.random.Generator) -> str:
        """A sentence that mentions exactly the scene's objects and relation, with paraphrase variation."""
        mentions = [group.mention for group in scene.groups]
        if scene.relation is not None:
            subject, landmark = mentions
            relation = scene.relation
            # "A above B" and "B below A" describe the same scene: say it from either side.
            if rng.random() < 0.5:
                subject, landmark, relation = landmark, subject, INVERSE_RELATION[relation]
            text = self.related(subject, relation, landmark, rng)
        elif len(mentions) == 1:
            text = self.single(mentions[0], rng)
        else:
            text = self.listed([mentions[i] for i in rng.permutation(len(mentions))], rng)
        return capitalize_first(text) + "."

    def parse_caption(self, text: str) -> SceneDescription:
        """The mentions and relation a caption states, read back with the lexicon (the test of `caption`)."""
        lexicon = self.caption_lexicon
        tokens = tokenize(text)
        mentions: list[_PartialMention] = []
        current: _PartialMention | None = None
        relation: Relation | None = None
        landmark_index: int | None = None
        position = 0
        while position < len(tokens):
            length, phrase_relation = lexicon.match_phrase(tokens, position)
            if length:
                if phrase_relation is not None:
                    if relation is not None:
                        raise self._parse_error(text, f"a second relation at {tokens[position]!r}")
                    relation = phrase_relation
                    following = tokens[position + length] if position + length < len(tokens) else ""
                    if following not in lexicon.counts:
                        raise self._parse_error(
                            text, f"the relation is followed by {following!r}, not a count"
                        )
                    landmark_index = len(mentions)
                current = None
                position += length
                continue
            word = tokens[position]
            if word in lexicon.counts:
                current = _PartialMention(lexicon.counts[word])
                mentions.append(current)
            else:
                attribute, value = self._attribute_of(text, word)
                if current is None:
                    raise self._parse_error(text, f"{word!r} stands outside a noun phrase")
                if getattr(current, attribute) is not None:
                    raise self._parse_error(text, f"a noun phrase has two {attribute} words (at {word!r})")
                setattr(current, attribute, value)
            position += 1
        complete = [self._complete(text, partial) for partial in mentions]
        if relation is None:
            if len(complete) == 2:
                raise self._parse_error(text, "two noun phrases without a relation")
            return SceneDescription.from_parts(complete, None)
        if len(complete) != 2 or landmark_index is None:
            raise self._parse_error(text, f"a relation needs two noun phrases, found {len(complete)}")
        landmark = complete[landmark_index]
        subject = complete[1 - landmark_index]
        return SceneDescription.from_parts([subject, landmark], relation)

    def _attribute_of(self, text: str, word: str) -> tuple[Literal["size", "colour", "shape"], str]:
        lexicon = self.caption_lexicon
        if word in lexicon.sizes:
            return "size", lexicon.sizes[word]
        if word in lexicon.colours:
            return "colour", lexicon.colours[word]
        if word in lexicon.shapes:
            return "shape", lexicon.shapes[word]
        raise self._parse_error(
            text, f"{word!r} is not in the lexicon of {type(self).__name__}; add it there or fix the caption"
        )

    def _complete(self, text: str, partial: _PartialMention) -> Mention:
        if partial.size is None or partial.colour is None or partial.shape is None:
            raise self._parse_error(text, f"a noun phrase lacks a size, colour or shape: {partial}")
        return Mention(partial.count, partial.size, partial.colour, partial.shape)

    def _parse_error(self, text: str, problem: str) -> CaptionParseError:
        return CaptionParseError(f"cannot parse {self.code} caption {text!r}: {problem}")

    @abstractmethod
    def single(self, mention: Mention, rng: np.random.Generator) -> str:
        """A caption of a scene with one group ("two red circles")."""

    @abstractmethod
    def related(
        self, subject: Mention, relation: Relation, landmark: Mention, rng: np.random.Generator
    ) -> str:
        """A caption stating that `subject` stands in `relation` to `landmark`."""

    @abstractmethod
    def listed(self, mentions: Sequence[Mention], rng: np.random.Generator) -> str:
        """A caption listing several groups in the given order, without a relation."""

    def sentence(self, rng: np.random.Generator) -> str:
        """An everyday sentence of `MIN_WORDS` to `MAX_WORDS` words, unrelated to images, for audio-only
        speech. Numbers are written as words."""
        # Templates are sized to fit; the rare draw (0.2 %) that elision shortens ("je ai" → "j'ai") or
        # optional parts lengthen past the bounds is drawn again.
        while True:
            text = self.compose_sentence(rng)
            if MIN_WORDS <= word_count(text) <= MAX_WORDS:
                return text

    @abstractmethod
    def compose_sentence(self, rng: np.random.Generator) -> str:
        """One draw of the language's everyday-sentence grammar (`sentence` enforces the length bounds)."""
