"""Spanish: captions of scenes and everyday sentences (Spain voice of espeak-ng).

The words are in data/es.yaml. Adjectives agree with the noun's gender and number and follow it ("dos
estrellas rojas pequeñas"); a size may also stand before the noun, where "grande" shortens to "gran" in the
singular ("un gran círculo rojo"). Regular verbs are conjugated from their infinitive. Sentences pass through
`finish`, which contracts "a el" and "de el" into "al" and "del".
"""

from __future__ import annotations

import numpy as np

from vgssl.corpus.grammar.romance import PERSON_INDEX, TENSES, GenderedGrammar, contract, contractions
from vgssl.corpus.grammar.sentences import Subject, choose, join
from vgssl.corpus.grammar.words import Forms, Gender, Verb, agree, load_words, row
from vgssl.corpus.scenes import Mention

_WORDS = load_words("es")
_S = _WORDS["sentences"]
_CONTRACTIONS = contractions(_S["contractions"])


def number_words(n: int, gender: Gender = "m") -> str:
    """Spanish words for 0 ≤ n < 100 before a noun of `gender`: "uno" agrees and shortens ("veintiún
    libros", "treinta y una cartas")."""
    units = _S["numbers"]["units"]
    if n < 30:
        word = units[n]
    else:
        tens, unit = divmod(n, 10)
        word = _S["numbers"]["tens"][tens] + (f" y {units[unit]}" if unit else "")
    if word.endswith("uno"):
        word = word[:-1] if gender == "m" else word[:-1] + "a"
        if word == "veintiun":
            word = "veintiún"
    return word


def finish(text: str) -> str:
    """Contract "a el" and "de el" (not "de él") into "al" and "del"."""
    return contract(text, _CONTRACTIONS)


def _verbs(table: str) -> tuple[Verb, ...]:
    """Lines "infinitive objects [| present forms [| preterite forms]]"; missing forms are regular.

    A verb's forms: the six persons of the present, then of the preterite."""
    endings, spelling = _S["endings"], _S["preterite_spelling"]
    verbs = []
    for line in table.strip().splitlines():
        head, *irregular = (part.split() for part in line.split("|"))
        infinitive, objects = head
        stem, ending = infinitive[:-2], infinitive[-2:].replace("í", "i")  # reír conjugates like an -ir verb
        present = [stem + e for e in endings["present"][ending].split()]
        preterite = [stem + e for e in endings["preterite"][ending].split()]
        if ending == "ar" and stem[-1] in spelling:
            # Spelling keeps the consonant's sound before the -é: busqué, jugué, abracé.
            preterite[0] = stem[:-1] + spelling[stem[-1]] + endings["preterite"]["ar"].split()[0]
        if irregular and irregular[0]:
            present = irregular[0]
        if len(irregular) == 2:
            preterite = irregular[1]
        verbs.append(Verb(infinitive, (*present, *preterite), "" if objects == "-" else objects))
    return tuple(verbs)


def _verb_group(verb: Verb, person: str, tense: str, rng: np.random.Generator) -> str:
    index = PERSON_INDEX[person]
    if tense == "present":
        return verb.forms[index]
    if tense == "past":
        return verb.forms[6 + index]
    auxiliary = _S["go"] if tense == "near_future" else choose(rng, _S["modals"])
    return f"{row(auxiliary)[index]} {verb.infinitive}"


class SpanishGrammar(GenderedGrammar):
    code = "es"
    espeak_language = "es"
    number_words = staticmethod(number_words)
    finish = staticmethod(finish)
    parse_verbs = staticmethod(_verbs)
    # Spanish drops subject pronouns freely, most of all in the first and second persons.
    subject_odds = (0.4, 0.55)
    dropped_persons = frozenset({"1s", "2s", "1p", "2p"})

    @staticmethod
    def regular(word: str) -> Forms:
        """An adjective in -o (o, a, os, as), or one that never changes."""
        if word.endswith("o"):
            stem = word[:-1]
            return (stem + "o", stem + "a", stem + "os", stem + "as")
        return (word, word, word, word)

    @classmethod
    def read_words(cls) -> None:
        super().read_words()
        # Each size's forms after the noun, then before it.
        before = cls.words["captions"]["sizes_before"]
        cls.sizes = {size: (*forms, *cls.adjectives(before[size])) for size, forms in cls.sizes.items()}

    def noun_phrase(self, mention: Mention, rng: np.random.Generator) -> str:
        count, noun, plural = self.counted(mention, rng)
        words = noun.plural if plural else noun.singular
        colour = agree(choose(rng, self.colours[mention.colour]), noun.gender, plural)
        after, before = self.sizes[mention.size]
        if rng.random() < 0.5:
            return f"{count} {agree(before, noun.gender, plural)} {words} {colour}"
        return f"{count} {words} {colour} {agree(after, noun.gender, plural)}"

    def _person_object(self, rng: np.random.Generator) -> tuple[str, bool]:
        """A person as an object, with the personal "a", and whether it is plural."""
        if rng.random() < 0.3:
            return f"a {choose(rng, _S['names'])}", False
        plural = rng.random() < 0.3
        return f"a {self.person_phrase(rng, choose(rng, self.people), plural)}", plural

    def object_phrase(self, rng: np.random.Generator, kind: str, **options: bool) -> str:
        if kind == "person":
            return self._person_object(rng)[0]
        if kind == "game":
            return choose(rng, _S["games"])
        objects = self.objects[kind]
        noun = choose(rng, objects.nouns)
        countable = bool(noun.plural)
        if countable and rng.random() < 0.3:
            return self.some(rng, noun, objects.adjectives)
        if not countable:
            words = self.with_adjective(rng, noun.singular, noun, False, objects.adjectives)
            if kind == "drink" and rng.random() < 0.4:
                return f"{choose(rng, _S['containers'])} {words}"
            if rng.random() < 0.4:
                return words
            return f"{self.determiner('definite', noun.gender, False, words, rng)} {words}"
        plural = rng.random() < 0.35
        words = self.with_adjective(
            rng, noun.plural if plural else noun.singular, noun, plural, objects.adjectives
        )
        kinds = ("definite", "indefinite", "possessive", "demonstrative")
        return f"{self.determiner(choose(rng, kinds), noun.gender, plural, words, rng)} {words}"

    def _predicate(self, rng: np.random.Generator, person: str, tense: str) -> tuple[str, str]:
        """(verb group, with an indirect-object pronoun when there is one; what follows it)."""
        kind = rng.random()
        if kind < 0.6:
            verb = choose(rng, self.verbs["transitive"])
            return _verb_group(verb, person, tense, rng), self.object_phrase(rng, verb.objects)
        if kind < 0.75:
            verb = choose(rng, self.verbs["ditransitive"])
            recipient, plural = self._person_object(rng)
            # Spanish doubles the recipient with "le"/"les" before the verb group.
            pronoun = "les" if plural else "le"
            thing = self.object_phrase(rng, "thing")
            return f"{pronoun} {_verb_group(verb, person, tense, rng)}", f"{thing} {recipient}"
        verb = choose(rng, self.verbs["intransitive"])
        return _verb_group(verb, person, tense, rng), choose(rng, _S["adverbs"]) if rng.random() < 0.5 else ""

    def statement(self, rng: np.random.Generator) -> str:
        subject = self.subject(rng)
        tense = choose(rng, TENSES)
        verb_group, rest = self._predicate(rng, subject.person, tense)
        negation = "no" if rng.random() < 0.25 else ""
        core = join(subject.text, negation, verb_group, rest)
        return self.situated(rng, core, tense, end=".")

    def ask(self, rng: np.random.Generator, subject: Subject, tense: str, kind: float) -> tuple[str, str]:
        if kind < 0.2:
            verb, noun = self.counted_object(rng)
            how_many = "cuántas" if noun.gender == "f" else "cuántos"
            core = join(
                f"¿{how_many} {noun.plural}", _verb_group(verb, subject.person, tense, rng), subject.text
            )
        elif kind < 0.35:
            verb = choose(rng, [v for v in self.verbs["transitive"] if v.objects != "game"])
            asked = "¿a quién" if verb.objects == "person" else "¿qué"
            core = join(asked, _verb_group(verb, subject.person, tense, rng), subject.text)
        elif kind < 0.7:
            verb_group, rest = self._predicate(rng, subject.person, tense)
            negation = "no" if rng.random() < 0.3 else ""
            core = "¿" + join(subject.text, negation, verb_group, rest)
        else:
            # Questions with a question word put the subject after the verb.
            verb_group, rest = self._predicate(rng, subject.person, tense)
            opening = choose(rng, _S["question_words"])
            core = join(f"¿{opening}", verb_group, subject.text, rest)
        return core, tense

    def clock(self, hour: int) -> str:
        return "a la una" if hour == 1 else f"a las {number_words(hour, 'f')}"

    def weather_felt(self, rng: np.random.Generator) -> str:
        amount = choose(rng, _S["weather"]["amounts"])
        return f"{amount}{choose(rng, _S['weather']['felt'])}"

    def copula(self, forms: tuple[str, ...], plural: bool, rng: np.random.Generator) -> str:
        return forms[2 * plural + (rng.random() < 0.5)]

    def imperative(self, rng: np.random.Generator) -> str:
        # The familiar affirmative imperative of these verbs equals their third person singular present.
        verb = choose(rng, self.transitive("food", "drink", "text", "thing", "container"))
        polite = choose(rng, _S["polite"])
        return f"{verb.forms[2]} {self.object_phrase(rng, verb.objects)} {choose(rng, _S['places'])}{polite}."
