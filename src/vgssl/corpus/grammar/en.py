"""English: captions of scenes and everyday sentences (American voice of espeak-ng).

The words are in data/en.yaml. This module holds the rules: "a" or "an", the auxiliaries that carry tense,
negation and questions ("does not", "will they"), and the number words.
"""

from __future__ import annotations

import numpy as np

from vgssl.corpus.grammar.base import Grammar
from vgssl.corpus.grammar.sentences import choose, join, with_adjuncts
from vgssl.corpus.grammar.words import Noun, Verb, load_words, nouns
from vgssl.corpus.scenes import Mention

_WORDS = load_words("en")
_CAPTIONS = _WORDS["captions"]
_S = _WORDS["sentences"]
_OBJECTS = {kind: (nouns(o["nouns"], gendered=False), o["adjectives"]) for kind, o in _S["objects"].items()}
_TENSES = ("present", "past", "will", "going_to", "modal")


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def number_words(n: int) -> str:
    """English words for 0 ≤ n < 100 ("forty-two")."""
    ones, tens = _S["numbers"]["ones"], _S["numbers"]["tens"]
    if n < 20:
        return ones[n]
    ten, one = divmod(n, 10)
    return tens[ten] + (f"-{ones[one]}" if one else "")


def _conjugate(verb: Verb, person: str, tense: str, rng: np.random.Generator) -> str:
    # A verb's forms in the data: third person singular present, past.
    if tense == "present":
        return verb.forms[0] if person == "3s" else verb.infinitive
    if tense == "past":
        return verb.forms[1]
    if tense == "modal":
        return f"{choose(rng, _S['modals'])} {verb.infinitive}"
    return f"{_auxiliary(person, tense, [], rng)} {_infinitive(verb, tense)}"


def _infinitive(verb: Verb, tense: str) -> str:
    """What follows the auxiliary in a question or a negation."""
    return f"going to {verb.infinitive}" if tense == "going_to" else verb.infinitive


def _auxiliary(person: str, tense: str, modals: list[str], rng: np.random.Generator) -> str:
    """The auxiliary that moves to the front of a question, or takes "not" in a negation."""
    return choose(rng, modals) if tense == "modal" else _by_person(_S["auxiliaries"][tense], person)


def _by_person(forms: dict[str, str], person: str) -> str:
    return forms.get(person, forms["other"])


def _negated(auxiliary: str, rng: np.random.Generator) -> str:
    contracted = _S["contracted_negations"]
    if auxiliary in contracted and rng.random() < 0.5:
        return contracted[auxiliary]
    return "cannot" if auxiliary == "can" else f"{auxiliary} not"


def _countable(kind: str) -> list[Noun]:
    return [noun for noun in _OBJECTS[kind][0] if noun.plural]


class EnglishGrammar(Grammar):
    code = "en"
    espeak_language = "en-us"

    def noun_phrase(self, mention: Mention, rng: np.random.Generator) -> str:
        noun = self.shapes[mention.shape]
        words = f"{choose(rng, self.sizes[mention.size])} {choose(rng, self.colours[mention.colour])} "
        if mention.count > 1:
            return f"{_CAPTIONS['numbers'][mention.count]} {words}{noun.plural}"
        if rng.random() < 0.2:
            return f"{_CAPTIONS['numbers'][1]} {words}{noun.singular}"
        return _with_article(words + noun.singular)

    def person_phrase(self, rng: np.random.Generator, noun: Noun, plural: bool) -> str:
        words = noun.plural if plural else noun.singular
        if rng.random() < 0.4:
            words = f"{choose(rng, _S['people_adjectives'])} {words}"
        determiner = choose(rng, _S["determiners"]["people" if plural else "person"])
        return _with_article(words) if determiner == "a" else f"{determiner} {words}"

    def object_phrase(self, rng: np.random.Generator, kind: str, **options: bool) -> str:
        if kind == "person":
            if rng.random() < 0.3:
                return choose(rng, _S["names"])
            plural = rng.random() < 0.3
            return self.person_phrase(rng, choose(rng, self.people), plural)
        nouns, adjectives = _OBJECTS[kind]
        noun = choose(rng, nouns)
        adjective = f"{choose(rng, adjectives)} " if adjectives and rng.random() < 0.35 else ""
        determiners = _S["determiners"]
        if not noun.plural:
            if kind == "game":
                return noun.singular
            if kind == "drink" and rng.random() < 0.4:
                return f"{choose(rng, _S['containers'])} {adjective}{noun.singular}"
            return join(choose(rng, determiners["mass"]), f"{adjective}{noun.singular}")
        form = rng.random()
        if form < 0.3:
            return _with_article(adjective + noun.singular)
        if form < 0.5:
            return f"{choose(rng, determiners['singular'])} {adjective}{noun.singular}"
        if form < 0.8:
            return f"{number_words(int(rng.integers(2, 100)))} {adjective}{noun.plural}"
        return f"{choose(rng, determiners['plural'])} {adjective}{noun.plural}"

    def ditransitive_objects(self, rng: np.random.Generator, **options: bool) -> str:
        return f"{self.object_phrase(rng, 'person')} {self.object_phrase(rng, 'thing')}"

    def statement(self, rng: np.random.Generator) -> str:
        subject = self.subject(rng)
        tense = choose(rng, _TENSES)
        verb, rest = self.predicate(rng)
        if rng.random() < 0.25:
            negated = _negated(_auxiliary(subject.person, tense, _S["modals"], rng), rng)
            core = join(subject.text, negated, _infinitive(verb, tense), rest)
        else:
            core = join(subject.text, _conjugate(verb, subject.person, tense, rng), rest)
        return self.situated(rng, core, tense, end=".")

    def question(self, rng: np.random.Generator) -> str:
        subject = self.subject(rng)
        tense = choose(rng, _TENSES)
        auxiliary = _auxiliary(subject.person, tense, _S["question_modals"], rng)
        kind = rng.random()
        if kind < 0.2:
            verb = choose(rng, self.transitive("food", "text", "thing", "show"))
            things = choose(rng, _countable(verb.objects)).plural
            core = f"How many {things} {auxiliary} {subject.text} {_infinitive(verb, tense)}"
        elif kind < 0.35:
            verb = choose(rng, [v for v in self.verbs["transitive"] if v.objects != "game"])
            asked = "Who" if verb.objects == "person" else "What"
            core = f"{asked} {auxiliary} {subject.text} {_infinitive(verb, tense)}"
        else:
            verb, rest = self.predicate(rng)
            clause = join(subject.text, _infinitive(verb, tense), rest)
            if kind < 0.7:
                core = f"{auxiliary.capitalize()} {clause}"
            else:
                core = f"{choose(rng, _S['question_words'])} {auxiliary} {clause}"
        return self.situated(rng, core, tense, end="?")

    def age(self, rng: np.random.Generator) -> str:
        subject = self.subject(rng)
        be = _by_person(_S["be"][choose(rng, ("present", "past"))], subject.person)
        return f"{subject.text} {be} {number_words(int(rng.integers(2, 100)))} years old."

    def clock(self, hour: int) -> str:
        return number_words(hour)

    def count(self, rng: np.random.Generator) -> str:
        noun = choose(rng, _countable(choose(rng, ("food", "text", "thing"))))
        be = choose(rng, ("are", "were"))
        count = number_words(int(rng.integers(2, 100)))
        return f"There {be} {count} {noun.plural} {choose(rng, _S['places'])}."

    def weather(self, rng: np.random.Generator) -> str:
        tense = choose(rng, ("present", "past", "will"))
        weather = _S["weather"]
        degree = f"{choose(rng, _S['degrees'])} " if rng.random() < 0.5 else ""
        first, second = (weather["kinds"][i] for i in rng.choice(len(weather["kinds"]), 2, replace=False))
        core = join(choose(rng, _S["hearsay"]), f"{weather['it_is'][tense]} {degree}{first}")
        if rng.random() < 0.3:
            core = f"{core} and {second}"
        return with_adjuncts(rng, core, (self.outdoors, _S["times"][tense]), end=".", probability=0.9)

    def description(self, rng: np.random.Generator) -> str:
        kind = choose(rng, ("food", "text", "thing", "show"))
        noun = choose(rng, _countable(kind))
        plural = rng.random() < 0.3
        determiner = choose(rng, _S["determiners"]["singular"])
        if plural:
            determiner = _S["determiners"]["plural_of"].get(determiner, determiner)
        be = ("are" if plural else "is") if rng.random() < 0.5 else ("were" if plural else "was")
        adjectives = _OBJECTS[kind][1]
        adjective = choose(rng, adjectives)
        if rng.random() < 0.3:
            adjective = f"{adjective} and {choose(rng, [a for a in adjectives if a != adjective])}"
        words = noun.plural if plural else noun.singular
        return f"{determiner} {words} {be} {choose(rng, _S['degrees'])} {adjective}."

    def imperative(self, rng: np.random.Generator) -> str:
        verb = choose(rng, self.transitive("food", "drink", "text", "thing", "container"))
        opening = choose(rng, _S["imperative_openings"])
        objects = self.object_phrase(rng, verb.objects)
        return join(opening, verb.infinitive, objects, choose(rng, _S["places"])) + "."
