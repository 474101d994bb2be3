"""The language-independent half of everyday sentences, and the text helpers every sentence is made with.

Audio-only speech needs sentences unrelated to images. `SentenceGrammar` chooses the kind of sentence
(statement, question, number, weather, description, command) and its subject, predicate, place and time,
so that every language gets the same variation; a language's `Grammar` subclass defines the makers whose
word order and agreement are its own. The helpers here (`choose`, `join`, `capitalize_first`,
`with_adjuncts`, the length bounds) are shared with the captions, which are sentences too, and with the
language modules.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from vgssl.corpus.grammar.words import Noun, Verb

# Length bounds of audio-only sentences, in whitespace-separated words.
MIN_WORDS = 4
MAX_WORDS = 15


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


def join(*parts: str) -> str:
    """The non-empty `parts`, separated by spaces."""
    return " ".join(part for part in parts if part)


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
class Subject:
    text: str  # empty when the pronoun is dropped
    person: str  # "1s", "3p", ...: the key of the language's conjugation tables


class SentenceGrammar(ABC):
    """Everyday sentences of a language, from the sentence tables that `Grammar.read_words` parses."""

    words: ClassVar[dict[str, Any]]  # the data file
    finish: ClassVar[Callable[[str], str]]  # the last pass over a sentence (see `Grammar.finish`)
    pronouns: ClassVar[Sequence[tuple[str, str]]]  # (pronoun, person)
    people: ClassVar[Sequence[Noun]]  # nouns for people ("teacher/teachers")
    verbs: ClassVar[Mapping[str, Sequence[Verb]]]  # "transitive", "ditransitive" and "intransitive" verbs
    outdoors: ClassVar[Sequence[str]]  # where weather happens: the data's places and its cities
    # Subjects of sentences: a pronoun below the first odds, a name below the second, else a person phrase.
    # A pronoun of a person in `dropped_persons` is left out at random ("(yo) como").
    subject_odds: ClassVar[tuple[float, float]] = (0.35, 0.5)
    dropped_persons: ClassVar[frozenset[str]] = frozenset()

    def sentence(self, rng: np.random.Generator) -> str:
        """An everyday sentence of `MIN_WORDS` to `MAX_WORDS` words, unrelated to images, for audio-only
        speech. Numbers are written as words."""
        # Templates are sized to fit; the rare draw (0.2 %) that elision shortens ("je ai" → "j'ai") or
        # optional parts lengthen past the bounds is drawn again.
        while True:
            text = self.compose_sentence(rng)
            if MIN_WORDS <= word_count(text) <= MAX_WORDS:
                return text

    def compose_sentence(self, rng: np.random.Generator) -> str:
        """One draw of the language's everyday-sentence grammar (`sentence` enforces the length bounds)."""
        kinds = (self.statement,) * 4 + (self.question,) * 2
        maker = choose(rng, (*kinds, self.with_number, self.weather, self.description, self.imperative))
        return capitalize_first(self.finish(maker(rng)))

    def subject(self, rng: np.random.Generator) -> Subject:
        """The subject of a sentence: a pronoun, a name or a person ("the old teacher")."""
        pronoun_odds, name_odds = self.subject_odds
        kind = rng.random()
        if kind < pronoun_odds:
            text, person = choose(rng, self.pronouns)
            dropped = person in self.dropped_persons and rng.random() < 0.6
            return Subject("" if dropped else text, person)
        if kind < name_odds:
            return Subject(choose(rng, self.words["sentences"]["names"]), "3s")
        plural = rng.random() < 0.3
        return Subject(self.person_phrase(rng, choose(rng, self.people), plural), "3p" if plural else "3s")

    @abstractmethod
    def person_phrase(self, rng: np.random.Generator, noun: Noun, plural: bool) -> str:
        """A person as a noun phrase, with a determiner ("my neighbours")."""

    def situated(self, rng: np.random.Generator, core: str, tense: str, *, end: str) -> str:
        """`core` with perhaps a place and a time that suits `tense` ("at home", "yesterday"), then `end`."""
        sentences = self.words["sentences"]
        return with_adjuncts(rng, core, (sentences["places"], sentences["times"][tense]), end=end)

    def predicate(self, rng: np.random.Generator, **options: bool) -> tuple[Verb, str]:
        """A verb and what follows it: its objects, or for an intransitive verb an adverb or nothing."""
        kind = rng.random()
        if kind < 0.6:
            verb = choose(rng, self.verbs["transitive"])
            return verb, self.object_phrase(rng, verb.objects, **options)
        if kind < 0.75:
            verb = choose(rng, self.verbs["ditransitive"])
            return verb, self.ditransitive_objects(rng, **options)
        verb = choose(rng, self.verbs["intransitive"])
        return verb, choose(rng, self.words["sentences"]["adverbs"]) if rng.random() < 0.5 else ""

    def object_phrase(self, rng: np.random.Generator, kind: str, **options: bool) -> str:
        """An object of `kind` ("food", "person", ...); a grammar that uses `predicate` defines it."""
        raise NotImplementedError

    def ditransitive_objects(self, rng: np.random.Generator, **options: bool) -> str:
        """The two objects of a verb such as "give"; a grammar that uses `predicate` defines it."""
        raise NotImplementedError

    def transitive(self, *kinds: str) -> list[Verb]:
        """The transitive verbs whose object is one of `kinds`."""
        return [verb for verb in self.verbs["transitive"] if verb.objects in kinds]

    def with_number(self, rng: np.random.Generator) -> str:
        """A sentence with a number written as words: an age, a time of day or a count of things."""
        kind = rng.random()
        if kind < 0.3:
            return self.age(rng)
        if kind < 0.6:
            return self.timetable(rng)
        return self.count(rng)

    def timetable(self, rng: np.random.Generator) -> str:
        """When a train, bus or boat leaves or arrives ("the bus to Dublin leaves at half past two")."""
        sentences = self.words["sentences"]
        timetable = sentences["timetable"]
        vehicle = choose(rng, timetable["vehicles"])
        hour = int(rng.integers(1, 13))
        clock = choose(rng, timetable["clocks"]).format(hour=self.clock(hour))
        verb = choose(rng, timetable["verbs"])
        city = (
            timetable["destination"].format(city=choose(rng, sentences["cities"]))
            if rng.random() < 0.9
            else ""
        )
        return timetable["sentence"].format(vehicle=vehicle, destination=city, verb=verb, clock=clock)

    @abstractmethod
    def clock(self, hour: int) -> str:
        """The hour `hour` (1 to 12) as the time of day, for the data's clock templates ("{hour} fifteen")."""

    @abstractmethod
    def age(self, rng: np.random.Generator) -> str:
        """Someone's age ("Anna is forty-two years old")."""

    @abstractmethod
    def count(self, rng: np.random.Generator) -> str:
        """A number of things somewhere ("there are twelve apples in the kitchen")."""

    @abstractmethod
    def statement(self, rng: np.random.Generator) -> str:
        """A statement, possibly negated, with a place or a time."""

    @abstractmethod
    def question(self, rng: np.random.Generator) -> str:
        """A yes-no question or a question with a question word."""

    @abstractmethod
    def weather(self, rng: np.random.Generator) -> str:
        """A weather report."""

    @abstractmethod
    def description(self, rng: np.random.Generator) -> str:
        """A thing and its quality ("this book is very long")."""

    @abstractmethod
    def imperative(self, rng: np.random.Generator) -> str:
        """A command."""
