"""The language-independent half of captioning: what to say about a scene, and reading a caption back.

`CaptionGrammar` chooses what a caption says (which group is the subject, the order of a list, the
template, the verbs that agree with the first group, a place) so that every language gets the same
paraphrase variation; a language's `Grammar` subclass realises each mention in its own words
(`noun_phrase`). The caption lexicon, every surface form the captions use with its meaning, is built from the
data file's caption tables, and `parse_caption` reads any language's captions back with it: that is how the
tests check a caption states exactly its scene.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from vgssl.corpus.grammar.sentences import capitalize_first, choose
from vgssl.corpus.grammar.words import Noun
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


class CaptionParseError(VgsslError):
    """A caption does not read as a description of a scene in its grammar's lexicon."""


def tokenize(text: str) -> list[str]:
    """Lower-cased words of `text`, punctuation dropped; "d'un" gives "d'" and "un"."""
    return [token for token in _TOKEN.findall(text.lower().replace("’", "'")) if token not in _PUNCTUATION]


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


def _surface_forms(value: object) -> list[str]:
    """Every word in a caption table's value: a word, a noun's two forms, or (nested) sequences of them."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Noun):
        return [value.singular, value.plural]
    assert isinstance(value, Sequence), value
    return [word for item in value for word in _surface_forms(item)]


class CaptionGrammar(ABC):
    """Captions of scenes in a language, from the caption tables that `Grammar.read_words` parses."""

    code: ClassVar[str]
    words: ClassVar[dict[str, Any]]  # the data file
    finish: ClassVar[Callable[[str], str]]  # the last pass over a caption (see `Grammar.finish`)
    shapes: ClassVar[Mapping[Shape, Noun]]
    sizes: ClassVar[Mapping[Size, Sequence[object]]]
    colours: ClassVar[Mapping[Colour, Sequence[object]]]
    caption_lexicon: ClassVar[CaptionLexicon]

    @classmethod
    def _lexicon(cls) -> CaptionLexicon:
        """The caption lexicon of the parsed caption tables, once `read_words` has filled them."""
        captions = cls.words["captions"]

        def index[K](table: Mapping[K, object]) -> dict[str, K]:
            return {word: key for key, value in table.items() for word in _surface_forms(value)}

        # A relation phrase is spelled as `finish` leaves it before each count word ("au-dessus d'un").
        counts: Mapping[str, int] = captions["counts"]
        relations = {
            cls.finish(f"{phrase} {count}").removesuffix(count).rstrip(): relation
            for relation, phrases in captions["relations"].items()
            for phrase in phrases
            for count in counts
        }
        return CaptionLexicon(
            counts=counts,
            sizes=index(cls.sizes),
            colours=index(cls.colours),
            shapes=index(cls.shapes),
            relations=relations,
            fillers=frozenset([*captions["fillers"], *captions["where"]]),
        )

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

    def single(self, mention: Mention, rng: np.random.Generator) -> str:
        """A caption of a scene with one group ("two red circles")."""
        template = choose(rng, self.words["captions"]["templates"]["single"])
        return self._fill(template, mention, rng, np=self.noun_phrase(mention, rng))

    def related(
        self, subject: Mention, relation: Relation, landmark: Mention, rng: np.random.Generator
    ) -> str:
        """A caption stating that `subject` stands in `relation` to `landmark`."""
        captions = self.words["captions"]
        template = choose(rng, captions["templates"]["related"])
        a = self.noun_phrase(subject, rng)
        b = self.noun_phrase(landmark, rng)
        return self._fill(template, subject, rng, a=a, b=b, rel=choose(rng, captions["relations"][relation]))

    def listed(self, mentions: Sequence[Mention], rng: np.random.Generator) -> str:
        """A caption listing several groups in the given order, without a relation."""
        captions = self.words["captions"]
        phrases = [self.noun_phrase(mention, rng) for mention in mentions]
        items = ", ".join(phrases[:-1]) + f" {captions['conjunction']} " + phrases[-1]
        return self._fill(choose(rng, captions["templates"]["listed"]), mentions[0], rng, items=items)

    def _fill(self, template: str, agreeing_with: Mention, rng: np.random.Generator, **parts: str) -> str:
        """`template` with `parts`, the verbs that agree with `agreeing_with` and a place ("{where}")."""
        captions = self.words["captions"]
        verbs = {name: forms[agreeing_with.count > 1] for name, forms in captions["agreeing"].items()}
        return self.finish(template.format(**parts, **verbs, where=choose(rng, captions["where"])))

    @abstractmethod
    def noun_phrase(self, mention: Mention, rng: np.random.Generator) -> str:
        """A mention in words, with its count ("two small red circles")."""

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
