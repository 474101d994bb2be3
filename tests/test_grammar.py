import re
from pathlib import Path

import espeakng_loader
import numpy as np
import pytest
import yaml

from vgssl.corpus.espeak import text_to_phonemes
from vgssl.corpus.grammar import (
    GRAMMARS,
    CaptionParseError,
    Grammar,
    UnknownLanguageError,
    en,
    es,
    fr,
    get_grammar,
)
from vgssl.corpus.grammar.sentences import MAX_WORDS, MIN_WORDS, word_count
from vgssl.corpus.grammar.words import WordsFileError, _check_words, load_words
from vgssl.corpus.scenes import Mention, ObjectGroup, Scene, SceneDescription, sample_scene
from vgssl.errors import VgsslError

LANGUAGES = sorted(GRAMMARS)
# Letters each language writes, besides ASCII letters; plus the punctuation espeak reads as prosody.
EXTRA_LETTERS = {"en": "", "fr": "àâçéèêëîïôûùüÿœæÀÂÇÉÈÊÎÔÛŒ", "es": "áéíóúüñÁÉÍÓÚÑ¿"}
PUNCTUATION = " ',.?-"


def one_group(count: int, size: str, colour: str, shape: str) -> Scene:
    positions = tuple((0.2 + 0.3 * i, 0.5) for i in range(count))
    return Scene((ObjectGroup(shape, colour, size, positions),), None, 140)


def related(relation: str) -> Scene:
    subject = ObjectGroup("circle", "red", "small", ((0.5, 0.2),))
    landmark = ObjectGroup("square", "blue", "big", ((0.5, 0.75),))
    return Scene((subject, landmark), relation, 140)


def captions_of(grammar: Grammar, scene: Scene, draws: int = 200) -> set[str]:
    rng = np.random.default_rng(0)
    return {grammar.caption(scene, rng) for _ in range(draws)}


@pytest.mark.parametrize("code", LANGUAGES)
def test_every_caption_mentions_exactly_its_scene(code: str) -> None:
    grammar = get_grammar(code)
    rng = np.random.default_rng(11)
    for _ in range(3000):
        scene = sample_scene(rng)
        caption = grammar.caption(scene, rng)
        assert grammar.parse_caption(caption) == scene.description(), caption


@pytest.mark.parametrize("code", LANGUAGES)
def test_captions_vary_in_words_and_in_word_order(code: str) -> None:
    grammar = get_grammar(code)
    captions = captions_of(grammar, related("above"))
    assert len(captions) >= 50
    # Sometimes the circle (the subject) is named first, sometimes the square: "A above B" / "B below A".
    shape_words = grammar.caption_lexicon.shapes
    first_named = {
        next(shape_words[w] for w in re.findall(r"\w+", c.lower()) if w in shape_words) for c in captions
    }
    assert first_named == {"circle", "square"}


@pytest.mark.parametrize(
    ("code", "scene", "expected"),
    [
        ("en", one_group(2, "big", "red", "circle"), {"two big red circles", "two large red circles"}),
        (
            "en",
            one_group(1, "small", "orange", "hexagon"),
            {f"{article} {size} orange hexagon" for article in ("a", "one") for size in ("small", "little")},
        ),
        ("fr", one_group(2, "small", "red", "star"), {"deux petites étoiles rouges"}),
        (
            "fr",
            one_group(1, "big", "white", "cross"),
            {"une grande croix blanche", "une grosse croix blanche"},
        ),
        ("fr", one_group(3, "small", "orange", "heart"), {"trois petits cœurs orange"}),
        ("fr", one_group(1, "small", "green", "hexagon"), {"un petit hexagone vert"}),
        ("es", one_group(1, "big", "red", "circle"), {"un gran círculo rojo", "un círculo rojo grande"}),
        (
            "es",
            one_group(2, "small", "white", "star"),
            {"dos pequeñas estrellas blancas", "dos estrellas blancas pequeñas"},
        ),
        (
            "es",
            one_group(3, "big", "blue", "cross"),
            {"tres grandes cruces azules", "tres cruces azules grandes"},
        ),
    ],
)
def test_noun_phrases_agree(code: str, scene: Scene, expected: set[str]) -> None:
    found = set()
    for caption in captions_of(get_grammar(code), scene):
        matches = [phrase for phrase in expected if phrase in caption.lower()]
        assert matches, caption
        found.update(matches)
    assert found == expected


def test_french_elides_de_before_a_vowel() -> None:
    captions = captions_of(get_grammar("fr"), related("below"), draws=300)
    assert any("d'un " in caption for caption in captions)
    assert not any(re.search(r"\bde une?\b", caption) for caption in captions)


@pytest.mark.parametrize(
    ("code", "caption", "other"),
    [
        (
            "en",
            "A small red circle below a big blue square.",
            "Above a small red circle is a large blue square.",
        ),
        (
            "fr",
            "Un petit cercle rouge à gauche d'un grand carré bleu.",
            "À droite d'un petit cercle rouge, il y a un gros carré bleu.",
        ),
        (
            "es",
            "Un círculo rojo pequeño junto a un gran cuadrado azul.",
            "Hay un cuadrado azul grande al lado de un pequeño círculo rojo.",
        ),
    ],
)
def test_symmetric_paraphrases_parse_equal(code: str, caption: str, other: str) -> None:
    grammar = get_grammar(code)
    assert grammar.parse_caption(caption) == grammar.parse_caption(other)


def test_parse_reads_counts_sizes_and_direction() -> None:
    parsed = get_grammar("en").parse_caption(
        "There are two little violet stars to the left of a large black cross."
    )
    assert parsed == SceneDescription.from_parts(
        [Mention(2, "small", "purple", "star"), Mention(1, "big", "black", "cross")], "left_of"
    )


@pytest.mark.parametrize(
    ("caption", "problem"),
    [
        ("A small red circle above.", "followed by ''"),
        ("A small red circle and a big blue dog.", "'dog' is not in the lexicon"),
        ("A red circle.", "lacks a size"),
        ("A small red circle above a big blue square below a small green star.", "a second relation"),
        ("A small red circle, a big blue square.", "two noun phrases without a relation"),
        ("A small red big circle.", "two size words"),
        ("3 small red circles.", "'3'"),
    ],
)
def test_parse_rejects_captions_that_do_not_describe_a_scene(caption: str, problem: str) -> None:
    with pytest.raises(CaptionParseError, match=re.escape(problem)):
        get_grammar("en").parse_caption(caption)


@pytest.fixture(scope="module", params=LANGUAGES)
def sentences(request: pytest.FixtureRequest) -> tuple[str, list[str]]:
    rng = np.random.default_rng(5)
    grammar = get_grammar(request.param)
    return request.param, [grammar.sentence(rng) for _ in range(4000)]


def test_sentences_are_plain_text_espeak_reads(sentences: tuple[str, list[str]]) -> None:
    code, texts = sentences
    allowed = re.compile(f"[A-Za-z{EXTRA_LETTERS[code]}{re.escape(PUNCTUATION)}]+")
    for text in texts:
        assert allowed.fullmatch(text), text
        assert MIN_WORDS <= word_count(text) <= MAX_WORDS, text
        assert text[-1] in ".?" and text.lstrip("¿")[0].isupper(), text


def test_sentence_space_is_large(sentences: tuple[str, list[str]]) -> None:
    _, texts = sentences
    # Drawing n sentences uniformly from N gives about n²/2N repeats: at most 40 repeats in 4000 draws
    # means N ≳ 2·10⁵, and more since the draws are far from uniform (short templates repeat first).
    assert len(texts) - len(set(texts)) <= 40
    assert len({word.strip(",.?¿").lower() for text in texts for word in text.split()}) >= 600


def test_espeak_reads_every_word_in_the_language_and_sentences_cover_the_captions_phones(
    sentences: tuple[str, list[str]],
) -> None:
    code, texts = sentences
    grammar = get_grammar(code)
    rng = np.random.default_rng(0)
    captions = [grammar.caption(sample_scene(rng), rng) for _ in range(500)]

    def words_of(lines: list[str]) -> list[str]:
        return sorted({word.strip(",.?¿").lower() for line in lines for word in line.split()})

    def phones_of(words: list[str]) -> list[str]:
        return text_to_phonemes(". ".join(words), language=grammar.espeak_language)

    # espeak marks a switch to another language's voice (English for "football" in French) with "(en)".
    sentence_phones = phones_of(words_of(texts))
    if any(phone.startswith("(") for phone in sentence_phones):
        switched = [word for word in words_of(texts) if any(p.startswith("(") for p in phones_of([word]))]
        pytest.fail(f"espeak reads these {code} words with another language's voice: {switched}")
    caption_phones = set(phones_of(words_of(captions)))
    assert caption_phones <= set(sentence_phones)
    assert len(set(sentence_phones)) >= len(caption_phones) + 4


def test_sentences_are_deterministic_for_an_rng_state() -> None:
    for code in LANGUAGES:
        grammar = get_grammar(code)
        first = [grammar.sentence(np.random.default_rng(9)) for _ in range(3)]
        assert first == [grammar.sentence(np.random.default_rng(9)) for _ in range(3)]


@pytest.mark.parametrize(
    ("words", "n", "expected"),
    [
        (en.number_words, 42, "forty-two"),
        (en.number_words, 17, "seventeen"),
        (lambda n: fr.number_words(n, "f"), 21, "vingt et une"),
        (fr.number_words, 71, "soixante et onze"),
        (fr.number_words, 80, "quatre-vingts"),
        (lambda n: fr.number_words(n, "f"), 81, "quatre-vingt-une"),
        (fr.number_words, 97, "quatre-vingt-dix-sept"),
        (es.number_words, 21, "veintiún"),
        (lambda n: es.number_words(n, "f"), 31, "treinta y una"),
        (es.number_words, 16, "dieciséis"),
        (es.number_words, 48, "cuarenta y ocho"),
    ],
)
def test_numbers_are_written_as_words(words, n: int, expected: str) -> None:
    assert words(n) == expected


def test_french_elision_and_contractions() -> None:
    assert fr.finish("je aime le ami de le boulanger à le marché") == "j'aime l'ami du boulanger au marché"
    assert fr.finish("à les enfants de la eau et de huit pommes") == "aux enfants de l'eau et de huit pommes"
    assert fr.finish("est-ce que il ne a pas") == "est-ce qu'il n'a pas"


def test_spanish_contractions() -> None:
    assert es.finish("a el vecino de el pueblo y de él") == "al vecino del pueblo y de él"


def test_espeak_has_a_voice_for_every_grammar() -> None:
    voices = {path.name.lower() for path in (Path(espeakng_loader.get_data_path()) / "lang").rglob("*")}
    for grammar_class in GRAMMARS.values():
        assert grammar_class.espeak_language in voices, grammar_class.code


def test_registry_lists_the_languages_with_a_grammar() -> None:
    assert {"en", "fr", "es"} <= set(GRAMMARS)
    assert get_grammar("fr").code == "fr"
    with pytest.raises(UnknownLanguageError, match=r"'xx'.*en, es, fr") as error:
        get_grammar("xx")
    assert isinstance(error.value, VgsslError)


def test_every_grammar_reads_its_words_from_its_data_file() -> None:
    for code in LANGUAGES:
        words = load_words(code)
        assert get_grammar(code).words is words
        assert {"captions", "sentences"} <= set(words)


@pytest.mark.parametrize("text", ["pronouns: [on, je]", "names: [Anna, null]", "weather: {no: 1.5}"])
def test_a_data_file_word_that_yaml_reads_as_something_else_is_refused(text: str) -> None:
    with pytest.raises(WordsFileError, match="quote it"):
        _check_words(yaml.safe_load(text), "data/xx.yaml")
