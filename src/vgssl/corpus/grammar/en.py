"""English: captions of scenes and everyday sentences (American voice of espeak-ng)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vgssl.corpus.grammar.base import CaptionLexicon, Grammar, capitalize_first, choose, with_adjuncts
from vgssl.corpus.scenes import Colour, Mention, Relation, Shape, Size

# ---------------------------------------------------------------------------------------------- captions

_SHAPES: dict[Shape, tuple[str, str]] = {
    "circle": ("circle", "circles"),
    "square": ("square", "squares"),
    "triangle": ("triangle", "triangles"),
    "star": ("star", "stars"),
    "heart": ("heart", "hearts"),
    "cross": ("cross", "crosses"),
    "diamond": ("diamond", "diamonds"),
    "hexagon": ("hexagon", "hexagons"),
}
_COLOURS: dict[Colour, tuple[str, ...]] = {
    "red": ("red",),
    "green": ("green",),
    "blue": ("blue",),
    "yellow": ("yellow",),
    "black": ("black",),
    "white": ("white",),
    "purple": ("purple", "violet"),
    "orange": ("orange",),
}
_SIZES: dict[Size, tuple[str, ...]] = {"small": ("small", "little"), "big": ("big", "large")}
_NUMBERS = {2: "two", 3: "three"}
_RELATIONS: dict[Relation, tuple[str, ...]] = {
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
    "left_of": ("to the left of", "left of", "on the left of"),
    "right_of": ("to the right of", "right of", "on the right of"),
    "next_to": ("next to", "beside"),
}
_WHERE = ("in the picture", "in the image")


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _noun_phrase(mention: Mention, rng: np.random.Generator) -> str:
    singular, plural = _SHAPES[mention.shape]
    words = f"{choose(rng, _SIZES[mention.size])} {choose(rng, _COLOURS[mention.colour])} "
    if mention.count > 1:
        return f"{_NUMBERS[mention.count]} {words}{plural}"
    if rng.random() < 0.2:
        return f"one {words}{singular}"
    return _with_article(words + singular)


def _be(mention: Mention) -> str:
    return "is" if mention.count == 1 else "are"


# ---------------------------------------------------------------------------------------------- sentences

Person = Literal["1s", "2", "3s", "1p", "3p"]


@dataclass(frozen=True)
class _Verb:
    base: str
    third: str  # third person singular present
    past: str
    objects: str  # key of _OBJECTS, "person", or "" for an intransitive verb


def _verbs(table: str) -> tuple[_Verb, ...]:
    verbs = []
    for line in table.strip().splitlines():
        base, third, past, *objects = line.split()
        verbs.append(_Verb(base, third, past, objects[0] if objects else ""))
    return tuple(verbs)


_TRANSITIVE = _verbs("""
eat eats ate food
cook cooks cooked food
buy buys bought food
share shares shared food
cut cuts cut food
taste tastes tasted food
order orders ordered food
drink drinks drank drink
pour pours poured drink
read reads read text
write writes wrote text
send sends sent text
print prints printed text
sign signs signed text
find finds found thing
lose loses lost thing
carry carries carried thing
wash washes washed thing
fix fixes fixed thing
clean cleans cleaned thing
sell sells sold thing
borrow borrows borrowed thing
paint paints painted thing
open opens opened container
close closes closed container
empty empties emptied container
move moves moved thing
hide hides hid thing
choose chooses chose thing
measure measures measured thing
watch watches watched show
enjoy enjoys enjoyed show
play plays played game
visit visits visited person
call calls called person
help helps helped person
meet meets met person
thank thanks thanked person
invite invites invited person
teach teaches taught person
follow follows followed person
recognize recognizes recognized person
""")
_INTRANSITIVE = _verbs("""
sleep sleeps slept
sing sings sang
dance dances danced
swim swims swam
run runs ran
walk walks walked
work works worked
laugh laughs laughed
cry cries cried
rest rests rested
study studies studied
travel travels traveled
wait waits waited
smile smiles smiled
jump jumps jumped
shout shouts shouted
whisper whispers whispered
climb climbs climbed
relax relaxes relaxed
""")
_DITRANSITIVE = _verbs("""
give gives gave
show shows showed
lend lends lent
bring brings brought
""")
_ADVERBS = ("quietly", "happily", "slowly", "quickly", "loudly", "carefully", "a lot", "all day", "again")


@dataclass(frozen=True)
class _Noun:
    singular: str
    plural: str  # "" for a mass noun


def _nouns(table: str) -> tuple[_Noun, ...]:
    """Entries "singular/plural", or one word for a mass noun."""
    nouns = []
    for entry in table.split():
        singular, _, plural = entry.partition("/")
        nouns.append(_Noun(singular, plural))
    return tuple(nouns)


_OBJECTS: dict[str, tuple[tuple[_Noun, ...], tuple[str, ...]]] = {
    "food": (
        _nouns("""apple/apples orange/oranges sandwich/sandwiches egg/eggs tomato/tomatoes potato/potatoes
            cake/cakes cherry/cherries pear/pears lemon/lemons cookie/cookies carrot/carrots peach/peaches
            onion/onions mushroom/mushrooms bread cheese soup rice chocolate butter yogurt spinach
            cabbage"""),
        ("fresh", "warm", "sweet", "delicious", "cold", "small", "huge", "strange", "juicy"),
    ),
    "drink": (
        _nouns("coffee tea milk water juice lemonade cocoa soda"),
        ("hot", "cold", "fresh", "sweet", "bitter", "strong"),
    ),
    "text": (
        _nouns("""letter/letters book/books newspaper/newspapers message/messages story/stories poem/poems
            report/reports postcard/postcards magazine/magazines recipe/recipes invitation/invitations"""),
        ("long", "short", "strange", "funny", "boring", "old", "new", "beautiful", "unusual"),
    ),
    "thing": (
        _nouns("""bag/bags umbrella/umbrellas bicycle/bicycles chair/chairs lamp/lamps key/keys
            jacket/jackets shoe/shoes watch/watches guitar/guitars camera/cameras box/boxes
            television/televisions computer/computers mirror/mirrors toy/toys pencil/pencils
            basket/baskets bottle/bottles suitcase/suitcases vase/vases"""),
        (
            "old",
            "new",
            "heavy",
            "broken",
            "yellow",
            "green",
            "cheap",
            "expensive",
            "shiny",
            "dirty",
            "beige",
        ),
    ),
    "container": (
        _nouns("""door/doors window/windows box/boxes drawer/drawers bag/bags suitcase/suitcases
            bottle/bottles envelope/envelopes jar/jars closet/closets"""),
        ("old", "new", "heavy", "wooden", "blue", "small", "big", "dusty"),
    ),
    "show": (
        _nouns("film/films match/matches cartoon/cartoons concert/concerts game/games play/plays"),
        ("long", "new", "funny", "exciting", "boring", "famous"),
    ),
    "game": (_nouns("chess cards tennis football volleyball"), ()),
}
_CONTAINERS = ("a cup of", "a glass of", "a bottle of", "a jug of")

_PEOPLE = _nouns("""teacher/teachers doctor/doctors baker/bakers farmer/farmers nurse/nurses pilot/pilots
    painter/painters singer/singers student/students neighbor/neighbors boy/boys girl/girls
    child/children fisherman/fishermen engineer/engineers brother/brothers sister/sisters
    cousin/cousins uncle/uncles aunt/aunts friend/friends grandmother/grandmothers
    grandfather/grandfathers judge/judges driver/drivers gardener/gardeners journalist/journalists
    musician/musicians""")
_PEOPLE_ADJECTIVES = (
    "old",
    "young",
    "tall",
    "happy",
    "tired",
    "quiet",
    "clever",
    "angry",
    "shy",
    "busy",
    "friendly",
    "lazy",
    "jolly",
    "thoughtful",
    "cheerful",
)
_NAMES = (
    "Anna",
    "Thomas",
    "Julia",
    "George",
    "Sophie",
    "Victor",
    "Emma",
    "Oliver",
    "Lucy",
    "Jack",
    "Maria",
    "Peter",
    "Zoe",
    "Charlotte",
    "Hugo",
    "Isabel",
    "Joseph",
    "Ruth",
    "Nathan",
    "Olga",
)
_PRONOUNS: tuple[tuple[str, Person], ...] = (
    ("I", "1s"),
    ("you", "2"),
    ("he", "3s"),
    ("she", "3s"),
    ("we", "1p"),
    ("they", "3p"),
)
_POSSESSIVES = ("my", "your", "his", "her", "our", "their")

_PLACES = (
    "at home",
    "in the kitchen",
    "in the garden",
    "at school",
    "at the station",
    "at the market",
    "in the library",
    "on the beach",
    "near the river",
    "in the park",
    "at the office",
    "in the village",
    "by the lake",
    "at the airport",
    "in the forest",
    "on the bridge",
    "at the museum",
    "in the shop",
    "under the old tree",
    "behind the house",
    "in the garage",
    "at the zoo",
    "on the boat",
    "in the hotel",
    "at the bakery",
    "in the mountains",
    "in the city center",
    "at the hospital",
    "on the train",
)
Tense = Literal["present", "past", "will", "going_to", "modal"]
_TIMES: dict[Tense, tuple[str, ...]] = {
    "present": (
        "every day",
        "every morning",
        "in the evening",
        "on weekends",
        "twice a week",
        "on Sundays",
        "after lunch",
        "every summer",
        "at night",
    ),
    "past": (
        "yesterday",
        "last night",
        "last week",
        "this morning",
        "on Monday",
        "last summer",
        "after dinner",
        "a long time ago",
        "on Thursday",
    ),
    "will": ("tomorrow", "tonight", "next week", "later", "on Friday", "soon", "next year", "this afternoon"),
    "going_to": ("tomorrow", "tonight", "next week", "on Saturday", "this evening", "next month"),
    "modal": ("today", "tomorrow", "now", "this weekend", "on Wednesday", "tonight"),
}
_MODALS = ("can", "should", "must", "might", "could", "would")
_CITIES = (
    "London",
    "Chicago",
    "Boston",
    "Dublin",
    "Geneva",
    "Oxford",
    "Vienna",
    "Madrid",
    "Zurich",
    "Houston",
)
_OUTDOORS = (
    "here",
    "outside",
    "in the north",
    "in the mountains",
    "on the coast",
    "in the valley",
    "at the beach",
    "in our town",
    *(f"in {city}" for city in _CITIES),
)
_WEATHER = ("cold", "warm", "hot", "sunny", "windy", "cloudy", "foggy", "freezing", "rainy", "humid")
# Openings of a weather report; the empty one leaves the report bare.
_HEARSAY = ("", "I think", "they say", "according to the radio,", "luckily,", "unfortunately,", "apparently,")
_DEGREES = ("very", "quite", "really", "too", "rather", "a bit", "extremely")

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty", 6: "sixty", 7: "seventy", 8: "eighty", 9: "ninety"}


def number_words(n: int) -> str:
    """English words for 0 ≤ n < 100 ("forty-two")."""
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


@dataclass(frozen=True)
class _Subject:
    text: str
    person: Person


def _subject(rng: np.random.Generator) -> _Subject:
    kind = rng.random()
    if kind < 0.35:
        return _Subject(*choose(rng, _PRONOUNS))
    if kind < 0.5:
        return _Subject(choose(rng, _NAMES), "3s")
    plural = rng.random() < 0.3
    return _Subject(_person_phrase(rng, plural=plural), "3p" if plural else "3s")


def _person_phrase(rng: np.random.Generator, *, plural: bool) -> str:
    noun = choose(rng, _PEOPLE)
    words = noun.plural if plural else noun.singular
    if rng.random() < 0.4:
        words = f"{choose(rng, _PEOPLE_ADJECTIVES)} {words}"
    determiner = choose(rng, ("the", "a", *_POSSESSIVES) if not plural else ("the", "some", *_POSSESSIVES))
    return _with_article(words) if determiner == "a" else f"{determiner} {words}"


def _object_phrase(rng: np.random.Generator, kind: str, *, countable_only: bool = False) -> str:
    if kind == "person":
        return choose(rng, _NAMES) if rng.random() < 0.3 else _person_phrase(rng, plural=rng.random() < 0.3)
    nouns, adjectives = _OBJECTS[kind]
    noun = choose(rng, [n for n in nouns if n.plural] if countable_only else nouns)
    adjective = f"{choose(rng, adjectives)} " if adjectives and rng.random() < 0.35 else ""
    if not noun.plural:
        if kind == "game":
            return noun.singular
        if kind == "drink" and rng.random() < 0.4:
            return f"{choose(rng, _CONTAINERS)} {adjective}{noun.singular}"
        return f"{choose(rng, ('the ', 'my ', 'our ', ''))}{adjective}{noun.singular}"
    form = rng.random()
    if form < 0.3:
        return _with_article(adjective + noun.singular)
    if form < 0.5:
        return f"{choose(rng, ('the', 'this', 'that', *_POSSESSIVES))} {adjective}{noun.singular}"
    if form < 0.8:
        return f"{number_words(int(rng.integers(2, 100)))} {adjective}{noun.plural}"
    return f"{choose(rng, ('these', 'those', 'the', 'their'))} {adjective}{noun.plural}"


def _conjugate(verb: _Verb, person: Person, tense: Tense, rng: np.random.Generator) -> str:
    if tense == "present":
        return verb.third if person == "3s" else verb.base
    if tense == "past":
        return verb.past
    if tense == "will":
        return f"will {verb.base}"
    if tense == "going_to":
        return f"{_be_form(person)} going to {verb.base}"
    return f"{choose(rng, _MODALS)} {verb.base}"


def _infinitive(verb: _Verb, tense: Tense) -> str:
    """What follows the auxiliary in a question or a negation."""
    return f"going to {verb.base}" if tense == "going_to" else verb.base


def _be_form(person: Person) -> str:
    return {"1s": "am", "3s": "is"}.get(person, "are")


def _was_form(person: Person) -> str:
    return "was" if person in ("1s", "3s") else "were"


def _auxiliary(person: Person, tense: Tense, modals: Sequence[str], rng: np.random.Generator) -> str:
    """The auxiliary that moves to the front of a question, or takes "not" in a negation."""
    if tense == "present":
        return "does" if person == "3s" else "do"
    if tense == "past":
        return "did"
    if tense == "will":
        return "will"
    if tense == "going_to":
        return _be_form(person)
    return choose(rng, modals)


_CONTRACTED_NEGATIONS = {
    "do": "don't",
    "does": "doesn't",
    "did": "didn't",
    "will": "won't",
    "is": "isn't",
    "are": "aren't",
    "can": "can't",
    "should": "shouldn't",
    "must": "mustn't",
    "could": "couldn't",
    "would": "wouldn't",
}


def _negated(auxiliary: str, rng: np.random.Generator) -> str:
    if auxiliary in _CONTRACTED_NEGATIONS and rng.random() < 0.5:
        return _CONTRACTED_NEGATIONS[auxiliary]
    return "cannot" if auxiliary == "can" else f"{auxiliary} not"


def _predicate(rng: np.random.Generator) -> tuple[_Verb, str]:
    """A verb and what follows it (objects or an adverb, possibly nothing)."""
    kind = rng.random()
    if kind < 0.6:
        verb = choose(rng, _TRANSITIVE)
        return verb, _object_phrase(rng, verb.objects)
    if kind < 0.75:
        verb = choose(rng, _DITRANSITIVE)
        return verb, f"{_object_phrase(rng, 'person')} {_object_phrase(rng, 'thing')}"
    verb = choose(rng, _INTRANSITIVE)
    return verb, choose(rng, _ADVERBS) if rng.random() < 0.5 else ""


def _sentence(*parts: str, end: str) -> str:
    return " ".join(part for part in parts if part) + end


def _statement(rng: np.random.Generator) -> str:
    subject = _subject(rng)
    tense: Tense = choose(rng, ("present", "past", "will", "going_to", "modal"))
    verb, rest = _predicate(rng)
    if rng.random() < 0.25:
        negated = _negated(_auxiliary(subject.person, tense, _MODALS, rng), rng)
        core = _sentence(subject.text, negated, _infinitive(verb, tense), rest, end="")
    else:
        core = _sentence(subject.text, _conjugate(verb, subject.person, tense, rng), rest, end="")
    return with_adjuncts(rng, core, (_PLACES, _TIMES[tense]), end=".")


def _question(rng: np.random.Generator) -> str:
    subject = _subject(rng)
    tense: Tense = choose(rng, ("present", "past", "will", "going_to", "modal"))
    auxiliary = _auxiliary(subject.person, tense, ("can", "should", "could", "would"), rng)
    kind = rng.random()
    if kind < 0.2:
        verb = choose(rng, [v for v in _TRANSITIVE if v.objects in ("food", "text", "thing", "show")])
        nouns, _ = _OBJECTS[verb.objects]
        noun = choose(rng, [n for n in nouns if n.plural])
        core = f"How many {noun.plural} {auxiliary} {subject.text} {_infinitive(verb, tense)}"
    elif kind < 0.35:
        verb = choose(rng, [v for v in _TRANSITIVE if v.objects != "game"])
        asked = "Who" if verb.objects == "person" else "What"
        core = f"{asked} {auxiliary} {subject.text} {_infinitive(verb, tense)}"
    else:
        verb, rest = _predicate(rng)
        clause = _sentence(subject.text, _infinitive(verb, tense), rest, end="")
        if kind < 0.7:
            core = f"{auxiliary.capitalize()} {clause}"
        else:
            core = f"{choose(rng, ('Where', 'When', 'Why', 'How often'))} {auxiliary} {clause}"
    return with_adjuncts(rng, core, (_PLACES, _TIMES[tense]), end="?")


def _with_number(rng: np.random.Generator) -> str:
    kind = rng.random()
    if kind < 0.3:
        subject = _subject(rng)
        tense = choose(rng, ("present", "past"))
        be = _be_form(subject.person) if tense == "present" else _was_form(subject.person)
        return f"{subject.text} {be} {number_words(int(rng.integers(2, 100)))} years old."
    if kind < 0.6:
        vehicle = choose(rng, ("train", "bus", "boat", "plane", "last tram", "night bus"))
        hour = number_words(int(rng.integers(1, 13)))
        clock = choose(
            rng, (f"{hour} o'clock", f"half past {hour}", f"a quarter to {hour}", f"{hour} fifteen")
        )
        verb = choose(rng, ("leaves", "arrives", "left", "arrived", "will leave", "usually stops here"))
        destination = f" to {choose(rng, _CITIES)}" if rng.random() < 0.9 else ""
        return f"The {vehicle}{destination} {verb} at {clock}."
    nouns, _ = _OBJECTS[choose(rng, ("food", "text", "thing"))]
    noun = choose(rng, [n for n in nouns if n.plural])
    be = choose(rng, ("are", "were"))
    return f"There {be} {number_words(int(rng.integers(2, 100)))} {noun.plural} {choose(rng, _PLACES)}."


def _weather(rng: np.random.Generator) -> str:
    tense: Tense = choose(rng, ("present", "past", "will"))
    verb = {"present": "it is", "past": "it was", "will": "it will be"}[tense]
    degree = f"{choose(rng, _DEGREES)} " if rng.random() < 0.5 else ""
    first, second = (_WEATHER[i] for i in rng.choice(len(_WEATHER), 2, replace=False))
    core = _sentence(choose(rng, _HEARSAY), f"{verb} {degree}{first}", end="")
    if rng.random() < 0.3:
        core = f"{core} and {second}"
    return with_adjuncts(rng, core, (_OUTDOORS, _TIMES[tense]), end=".", probability=0.9)


def _description(rng: np.random.Generator) -> str:
    nouns, adjectives = _OBJECTS[choose(rng, ("food", "text", "thing", "show"))]
    noun = choose(rng, [n for n in nouns if n.plural])
    plural = rng.random() < 0.3
    determiner = choose(rng, ("the", "this", "that", *_POSSESSIVES))
    if plural:
        determiner = {"this": "these", "that": "those"}.get(determiner, determiner)
    be = ("are" if plural else "is") if rng.random() < 0.5 else ("were" if plural else "was")
    adjective = choose(rng, adjectives)
    if rng.random() < 0.3:
        adjective = f"{adjective} and {choose(rng, [a for a in adjectives if a != adjective])}"
    return (
        f"{determiner} {noun.plural if plural else noun.singular} {be} {choose(rng, _DEGREES)} {adjective}."
    )


def _imperative(rng: np.random.Generator) -> str:
    verb = choose(
        rng, [v for v in _TRANSITIVE if v.objects in ("food", "drink", "text", "thing", "container")]
    )
    opening = choose(rng, ("Please", "Don't", "Never", "Always", "Quickly"))
    return _sentence(opening, verb.base, _object_phrase(rng, verb.objects), choose(rng, _PLACES), end=".")


class EnglishGrammar(Grammar):
    code = "en"
    espeak_language = "en-us"
    caption_lexicon = CaptionLexicon(
        counts={"a": 1, "an": 1, "one": 1, "two": 2, "three": 3},
        sizes={word: size for size, words in _SIZES.items() for word in words},
        colours={word: colour for colour, words in _COLOURS.items() for word in words},
        shapes={form: shape for shape, forms in _SHAPES.items() for form in forms},
        relations={phrase: relation for relation, phrases in _RELATIONS.items() for phrase in phrases},
        fillers=frozenset(
            {"there", "is", "are", "and", "the picture shows", "i see", "a picture of", *_WHERE}
        ),
    )

    def single(self, mention: Mention, rng: np.random.Generator) -> str:
        template = choose(
            rng,
            (
                "{np}",
                "there {be} {np}",
                "{np} {where}",
                "there {be} {np} {where}",
                "the picture shows {np}",
                "I see {np}",
                "a picture of {np}",
            ),
        )
        return template.format(np=_noun_phrase(mention, rng), be=_be(mention), where=choose(rng, _WHERE))

    def related(
        self, subject: Mention, relation: Relation, landmark: Mention, rng: np.random.Generator
    ) -> str:
        template = choose(
            rng,
            (
                "{a} {rel} {b}",
                "{a} {rel} {b} {where}",
                "there {be} {a} {rel} {b}",
                "there {be} {a} {rel} {b} {where}",
                "{a} {be} {rel} {b}",
                "{rel} {b} there {be} {a}",
                "{rel} {b} {be} {a}",
            ),
        )
        return template.format(
            a=_noun_phrase(subject, rng),
            b=_noun_phrase(landmark, rng),
            rel=choose(rng, _RELATIONS[relation]),
            be=_be(subject),
            where=choose(rng, _WHERE),
        )

    def listed(self, mentions: Sequence[Mention], rng: np.random.Generator) -> str:
        phrases = [_noun_phrase(mention, rng) for mention in mentions]
        items = ", ".join(phrases[:-1]) + " and " + phrases[-1]
        template = choose(
            rng, ("{items}", "there {be} {items}", "the picture shows {items}", "{items} {where}")
        )
        return template.format(items=items, be=_be(mentions[0]), where=choose(rng, _WHERE))

    def compose_sentence(self, rng: np.random.Generator) -> str:
        maker = choose(
            rng, (_statement,) * 4 + (_question,) * 2 + (_with_number, _weather, _description, _imperative)
        )
        return capitalize_first(maker(rng))
