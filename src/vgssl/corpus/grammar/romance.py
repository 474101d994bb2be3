"""What French and Spanish share: nouns with a gender, and determiners and adjectives that agree with them.

A `GenderedGrammar` reads the tables its data file has in common with the other such languages (objects
with their adjectives and copula, determiners, contractions, weather phrases) and builds from them the
sentences whose shape is the same in both: ages, counts, weather reports and descriptions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vgssl.corpus.grammar.base import Grammar
from vgssl.corpus.grammar.sentences import Subject, choose, join, with_adjuncts
from vgssl.corpus.grammar.words import Forms, Gender, Noun, Verb, adjectives, agree, nouns, row
from vgssl.corpus.scenes import Mention

PERSON_INDEX = {"1s": 0, "2s": 1, "3s": 2, "1p": 3, "2p": 4, "3p": 5}  # the order of conjugation tables
TENSES = ("present", "past", "near_future", "modal")  # the tenses of statements and questions


@dataclass(frozen=True)
class ObjectKind:
    nouns: tuple[Noun, ...]
    adjectives: tuple[Forms, ...]
    copula: tuple[str, ...]  # is, was, are, were


def contractions(table: dict[str, str]) -> list[tuple[re.Pattern[str], str]]:
    """The data's contractions ("à le": "au") as patterns that match whole words."""
    return [(re.compile(rf"\b{re.escape(words)}\b"), contraction) for words, contraction in table.items()]


def contract(text: str, table: Sequence[tuple[re.Pattern[str], str]]) -> str:
    for pattern, contraction in table:
        text = pattern.sub(contraction, text)
    return text


class GenderedGrammar(Grammar):
    """A language whose nouns have a gender; a subclass defines `regular`, how one-word adjectives inflect."""

    objects: ClassVar[dict[str, ObjectKind]]
    determiners: ClassVar[dict[str, tuple[Forms, ...]]]
    people_before: ClassVar[tuple[Forms, ...]]  # adjectives that stand before a person noun
    people_after: ClassVar[tuple[Forms, ...]]

    gendered = True

    @classmethod
    def read_words(cls) -> None:
        super().read_words()
        sentences = cls.words["sentences"]
        cls.people_before = cls.adjectives(sentences["people_before"])
        cls.people_after = cls.adjectives(sentences["people_after"])
        cls.determiners = {kind: cls.adjectives(table) for kind, table in sentences["determiners"].items()}
        copulas = {name: tuple(forms.split()) for name, forms in sentences["copulas"].items()}
        cls.objects = {
            kind: ObjectKind(nouns(o["nouns"]), cls.adjectives(o["adjectives"]), copulas[o["copula"]])
            for kind, o in sentences["objects"].items()
        }

    @staticmethod
    def regular(word: str) -> Forms:
        """The forms of an adjective written as one word in the data."""
        raise NotImplementedError

    @classmethod
    def adjectives(cls, table: str) -> tuple[Forms, ...]:
        return adjectives(table, cls.regular)

    @staticmethod
    def number_words(n: int, gender: Gender = "m") -> str:
        """The words for 0 ≤ n < 100 before a noun of `gender`."""
        raise NotImplementedError

    @staticmethod
    def before_vowel(word: str) -> bool:
        """Whether a determiner before `word` takes its before-a-vowel form ("cet ami"); never by default."""
        return False

    def determiner(
        self, kind: str, gender: Gender, plural: bool, following: str, rng: np.random.Generator
    ) -> str:
        """A determiner of `kind` ("definite", "possessive", ...) before the words `following`."""
        table = self.determiners[kind]
        forms = table[0] if len(table) == 1 else choose(rng, table)
        if len(forms) == 6 and not plural and self.before_vowel(following):
            return forms[4 + (gender == "f")]
        return agree(forms, gender, plural)

    def counted(self, mention: Mention, rng: np.random.Generator) -> tuple[str, Noun, bool]:
        """The count word of a mention ("une", "deux"), its shape's noun, and whether it is plural."""
        noun = self.shapes[mention.shape]
        if mention.count > 1:
            return self.words["captions"]["numbers"][mention.count], noun, True
        return self.determiner("indefinite", noun.gender, False, noun.singular, rng), noun, False

    def person_phrase(self, rng: np.random.Generator, noun: Noun, plural: bool) -> str:
        words = noun.plural if plural else noun.singular
        modifier = rng.random()
        if modifier < 0.2:
            words = f"{agree(choose(rng, self.people_before), noun.gender, plural)} {words}"
        elif modifier < 0.4:
            words = f"{words} {agree(choose(rng, self.people_after), noun.gender, plural)}"
        kind = choose(rng, ("definite", "possessive", "possessive", "indefinite"))
        return f"{self.determiner(kind, noun.gender, plural, words, rng)} {words}"

    def with_adjective(
        self, rng: np.random.Generator, words: str, noun: Noun, plural: bool, adjectives: Sequence[Forms]
    ) -> str:
        if rng.random() < 0.35:
            return f"{words} {agree(choose(rng, adjectives), noun.gender, plural)}"
        return words

    def some(self, rng: np.random.Generator, noun: Noun, adjectives: Sequence[Forms]) -> str:
        """A number of `noun`, possibly with an adjective ("douze pommes rouges")."""
        words = f"{self.number_words(int(rng.integers(2, 100)), noun.gender)} {noun.plural}"
        return self.with_adjective(rng, words, noun, True, adjectives)

    def counted_object(self, rng: np.random.Generator) -> tuple[Verb, Noun]:
        """A verb and a countable noun it takes, for a question such as "how many apples ...?"."""
        verb = choose(rng, self.transitive("food", "text", "thing", "container"))
        return verb, choose(rng, [noun for noun in self.objects[verb.objects].nouns if noun.plural])

    def _countable(self, rng: np.random.Generator, kinds: Sequence[str]) -> tuple[ObjectKind, Noun]:
        kind = self.objects[choose(rng, kinds)]
        return kind, choose(rng, [noun for noun in kind.nouns if noun.plural])

    def age(self, rng: np.random.Generator) -> str:
        subject = self.subject(rng)
        years = self.number_words(int(rng.integers(2, 100)))
        sentences = self.words["sentences"]
        have = row(sentences["have"])[PERSON_INDEX[subject.person]]
        return join(subject.text, have, years, sentences["years"]) + "."

    def count(self, rng: np.random.Generator) -> str:
        _, noun = self._countable(rng, ("food", "text", "thing"))
        count = self.number_words(int(rng.integers(2, 100)), noun.gender)
        sentences = self.words["sentences"]
        return (
            f"{choose(rng, sentences['there_is'])} {count} {noun.plural} {choose(rng, sentences['places'])}."
        )

    def question(self, rng: np.random.Generator) -> str:
        subject = self.subject(rng)
        tense = choose(rng, TENSES)
        core, tense = self.ask(rng, subject, tense, rng.random())
        return self.situated(rng, core, tense, end="?")

    def ask(self, rng: np.random.Generator, subject: Subject, tense: str, kind: float) -> tuple[str, str]:
        """A question of `subject` in `tense` before its place and time, and the tense they suit: `kind`,
        uniform in [0, 1), chooses the sort of question (a count, a question word, yes or no, ...)."""
        raise NotImplementedError

    def weather(self, rng: np.random.Generator) -> str:
        sentences = self.words["sentences"]
        weather = sentences["weather"]
        tense = choose(rng, ("present", "past", "near_future"))
        felt = self.weather_felt(rng)
        phrases = [phrase.format(felt=felt) for phrase in weather["phrases"][tense]]
        first, second = (phrases[i] for i in rng.choice(len(phrases), 2, replace=False))
        core = join(choose(rng, sentences["hearsay"]), first)
        if rng.random() < 0.3:
            core = f"{core} {choose(rng, weather['conjunctions'])} {second}"
        return with_adjuncts(rng, core, (self.outdoors, sentences["times"][tense]), end=".", probability=0.9)

    def weather_felt(self, rng: np.random.Generator) -> str:
        """What the weather feels like, for the data's weather phrases ("{felt}": "très froid")."""
        raise NotImplementedError

    def description(self, rng: np.random.Generator) -> str:
        kind, noun = self._countable(rng, ("food", "text", "thing", "show"))
        plural = rng.random() < 0.3
        words = noun.plural if plural else noun.singular
        determiner_kind = choose(rng, ("definite", "possessive", "demonstrative"))
        determiner = self.determiner(determiner_kind, noun.gender, plural, words, rng)
        copula = self.copula(kind.copula, plural, rng)
        # Only one-word adjectives take a degree ("très lourd", not "très en bois").
        adjective = agree(choose(rng, [a for a in kind.adjectives if " " not in a[0]]), noun.gender, plural)
        return f"{determiner} {words} {copula} {choose(rng, self.words['sentences']['degrees'])} {adjective}."

    def copula(self, forms: tuple[str, ...], plural: bool, rng: np.random.Generator) -> str:
        """The present or past of the copula `forms` (is, was, are, were), chosen at random."""
        raise NotImplementedError
