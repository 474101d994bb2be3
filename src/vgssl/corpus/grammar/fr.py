"""French: captions of scenes and everyday sentences (France voice of espeak-ng).

The words are in data/fr.yaml. Agreement follows the noun's gender and number: size adjectives go before the
noun and colours after it ("deux petites étoiles rouges"). Sentences are assembled word by word and then pass
through `finish`, which applies elision ("je aime" → "j'aime", "de une" → "d'une") and the contractions of
"à" and "de" with the definite article ("à le marché" → "au marché").
"""

from __future__ import annotations

import re

import numpy as np

from vgssl.corpus.grammar.romance import PERSON_INDEX, TENSES, GenderedGrammar, contract, contractions
from vgssl.corpus.grammar.sentences import Subject, choose, join
from vgssl.corpus.grammar.words import Forms, Gender, Verb, agree, load_words, row
from vgssl.corpus.scenes import Mention

_WORDS = load_words("fr")
_S = _WORDS["sentences"]
_VOWELS = "aeiouyàâéèêëîïôœh"  # and a mute h
# Words that drop their vowel before a vowel; the words before which they keep it are in the data.
_ELIDING = re.compile(rf"\b(je|me|te|se|le|la|ne|de|que) (?=([{_VOWELS}]\S*))", re.IGNORECASE)
_CONTRACTIONS = contractions(_S["contractions"])


def number_words(n: int, gender: Gender = "m") -> str:
    """French words for 0 ≤ n < 100, agreeing "un"/"une" with the counted noun ("vingt et une pommes")."""
    numbers = _S["numbers"]
    if n >= 80:
        rest = n - 80
        return f"{numbers['eighty']}s" if rest == 0 else f"{numbers['eighty']}-{number_words(rest, gender)}"
    if n >= 60:
        rest = n - 60
        if rest == 0:
            return numbers["tens"][6]
        joiner = " et " if rest in (1, 11) else "-"
        return f"{numbers['tens'][6]}{joiner}{number_words(rest, gender)}"
    if n >= 20:
        tens, unit = divmod(n, 10)
        if unit == 0:
            return numbers["tens"][tens]
        return f"{numbers['tens'][tens]}{' et ' if unit == 1 else '-'}{number_words(unit, gender)}"
    return "une" if n == 1 and gender == "f" else numbers["units"][n]


def finish(text: str) -> str:
    """Apply elision, then the contractions of "à"/"de" with "le"/"les"."""

    def elide(match: re.Match[str]) -> str:
        if match.group(2).lower() in _S["no_elision_before"]:
            return match.group(0)
        return match.group(1)[:-1] + "'"

    return contract(_ELIDING.sub(elide, text), _CONTRACTIONS)


def _verb_group(verb: Verb, person: str, tense: str, rng: np.random.Generator) -> tuple[str, str]:
    """(the conjugated word that "ne ... pas" surrounds, the rest of the verb group)."""
    # A verb's forms in the data: the six persons of the present, the participle (all take "avoir").
    index = PERSON_INDEX[person]
    if tense == "present":
        return verb.forms[index], ""
    if tense == "past":
        return row(_S["have"])[index], verb.forms[6]
    if tense == "near_future":
        return row(_S["go"])[index], verb.infinitive
    return row(choose(rng, _S["modals"]))[index], verb.infinitive


class FrenchGrammar(GenderedGrammar):
    code = "fr"
    # espeak-ng's French (France) voice file is "fr"; its language code "fr-fr" is not a voice name.
    espeak_language = "fr"
    number_words = staticmethod(number_words)
    finish = staticmethod(finish)

    @staticmethod
    def regular(word: str) -> Forms:
        """An adjective in -e or invariable in gender: plural in -s, unless it ends in -s or -x ("frais")."""
        plural = word if word.endswith(("s", "x")) or " " in word else word + "s"
        return (word, word, plural, plural)

    @staticmethod
    def before_vowel(word: str) -> bool:
        return word[0].lower() in _VOWELS and word.lower() not in _S["no_elision_before"]

    def noun_phrase(self, mention: Mention, rng: np.random.Generator) -> str:
        count, noun, plural = self.counted(mention, rng)
        size = agree(choose(rng, self.sizes[mention.size]), noun.gender, plural)
        colour = agree(choose(rng, self.colours[mention.colour]), noun.gender, plural)
        return f"{count} {size} {noun.plural if plural else noun.singular} {colour}"

    def object_phrase(self, rng: np.random.Generator, kind: str, *, negative: bool = False) -> str:
        """An object of `kind`; after a negation, indefinite and partitive articles become "de"."""
        if kind == "person":
            if rng.random() < 0.3:
                return choose(rng, _S["names"])
            return self.person_phrase(rng, choose(rng, self.people), rng.random() < 0.3)
        if kind == "game":
            return choose(rng, _S["games"])
        objects = self.objects[kind]
        noun = choose(rng, objects.nouns)
        countable = bool(noun.plural)
        if countable and rng.random() < 0.3 and not negative:
            return self.some(rng, noun, objects.adjectives)
        if kind == "drink" and rng.random() < 0.4:
            container = choose(rng, _S["containers"])
            return f"{container} {self.with_adjective(rng, noun.singular, noun, False, objects.adjectives)}"
        plural = countable and rng.random() < 0.35
        kinds = (
            ("definite", "indefinite", "possessive", "demonstrative")
            if countable
            else ("definite", "partitive")
        )
        determiner_kind = choose(rng, kinds)
        words = self.with_adjective(
            rng, noun.plural if plural else noun.singular, noun, plural, objects.adjectives
        )
        if negative and determiner_kind in ("indefinite", "partitive"):
            return f"de {noun.plural if countable else noun.singular}"
        return f"{self.determiner(determiner_kind, noun.gender, plural, words, rng)} {words}"

    def ditransitive_objects(self, rng: np.random.Generator, *, negative: bool = False) -> str:
        return f"{self.object_phrase(rng, 'thing', negative=negative)} à {self.object_phrase(rng, 'person')}"

    def _clause(self, rng: np.random.Generator, subject: Subject, tense: str, *, negative: bool) -> str:
        verb, rest = self.predicate(rng, negative=negative)
        head, tail = _verb_group(verb, subject.person, tense, rng)
        if negative:
            head = f"ne {head} pas"
        return join(subject.text, head, tail, rest)

    def statement(self, rng: np.random.Generator) -> str:
        tense = choose(rng, TENSES)
        core = self._clause(rng, self.subject(rng), tense, negative=rng.random() < 0.25)
        return self.situated(rng, core, tense, end=".")

    def ask(self, rng: np.random.Generator, subject: Subject, tense: str, kind: float) -> tuple[str, str]:
        if kind < 0.2:
            # The passé composé would make the participle agree with the fronted object: keep other tenses.
            tense = choose(rng, ("present", "near_future", "modal"))
            verb, noun = self.counted_object(rng)
            asked = f"combien de {noun.plural} est-ce que {subject.text}"
            core = join(asked, *_verb_group(verb, subject.person, tense, rng))
        elif kind < 0.35:
            verb = choose(rng, [v for v in self.verbs["transitive"] if v.objects != "game"])
            asked = "qui est-ce que" if verb.objects == "person" else "qu'est-ce que"
            core = join(f"{asked} {subject.text}", *_verb_group(verb, subject.person, tense, rng))
        elif kind < 0.55:
            core = f"est-ce que {self._clause(rng, subject, tense, negative=False)}"
        elif kind < 0.7:
            core = self._clause(rng, subject, tense, negative=rng.random() < 0.3)
        else:
            opening = choose(rng, _S["question_words"])
            core = f"{opening} est-ce que {self._clause(rng, subject, tense, negative=False)}"
        return core, tense

    def clock(self, hour: int) -> str:
        return f"{number_words(hour, 'f')} {'heure' if hour == 1 else 'heures'}"

    def weather_felt(self, rng: np.random.Generator) -> str:
        weather = _S["weather"]
        adjective = choose(rng, weather["adjectives"])
        return f"{choose(rng, weather['degrees'])} {adjective}" if rng.random() < 0.4 else adjective

    def copula(self, forms: tuple[str, ...], plural: bool, rng: np.random.Generator) -> str:
        return choose(rng, forms[2:] if plural else forms[:2])

    def imperative(self, rng: np.random.Generator) -> str:
        verb = choose(rng, self.transitive("food", "drink", "text", "thing", "container"))
        polite = choose(rng, _S["polite"])
        negative = rng.random() < 0.3
        command = f"ne {verb.forms[4]} pas" if negative else verb.forms[4]
        objects = self.object_phrase(rng, verb.objects, negative=negative)
        return f"{command} {objects} {choose(rng, _S['places'])}{polite}."
