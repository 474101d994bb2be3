"""Spanish: captions of scenes and everyday sentences (Spain voice of espeak-ng).

Adjectives agree with the noun's gender and number and follow it ("dos estrellas rojas pequeñas"); a size
may also stand before the noun, where "grande" shortens to "gran" in the singular ("un gran círculo rojo").
Sentences pass through `finish`, which contracts "a el" and "de el" into "al" and "del".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vgssl.corpus.grammar.base import CaptionLexicon, Grammar, capitalize_first, choose, with_adjuncts
from vgssl.corpus.scenes import Colour, Mention, Relation, Shape, Size

Gender = Literal["m", "f"]
Forms = tuple[str, str, str, str]  # masculine singular, feminine singular, masculine plural, feminine plural


def _agree(forms: Forms, gender: Gender, plural: bool) -> str:
    return forms[(gender == "f") + 2 * plural]


def _forms(table: str) -> tuple[Forms, ...]:
    """Adjectives ending in -o written by their masculine singular ("rojo"), others as "m/f/mp/fp" or, when
    invariable in gender, as "singular/plural"; "_" stands for a space."""
    result = []
    for entry in table.split():
        parts = entry.replace("_", " ").split("/")
        if len(parts) == 1 and parts[0].endswith("o"):
            stem = parts[0][:-1]
            parts = [stem + "o", stem + "a", stem + "os", stem + "as"]
        elif len(parts) == 1:
            parts = parts * 4
        elif len(parts) == 2:
            parts = [parts[0], parts[0], parts[1], parts[1]]
        result.append((parts[0], parts[1], parts[2], parts[3]))
    return tuple(result)


# ---------------------------------------------------------------------------------------------- captions

_SHAPES: dict[Shape, tuple[str, str, Gender]] = {
    "circle": ("círculo", "círculos", "m"),
    "square": ("cuadrado", "cuadrados", "m"),
    "triangle": ("triángulo", "triángulos", "m"),
    "star": ("estrella", "estrellas", "f"),
    "heart": ("corazón", "corazones", "m"),
    "cross": ("cruz", "cruces", "f"),
    "diamond": ("rombo", "rombos", "m"),
    "hexagon": ("hexágono", "hexágonos", "m"),
}
_COLOURS: dict[Colour, tuple[Forms, ...]] = {
    "red": _forms("rojo"),
    "green": _forms("verde/verdes"),
    "blue": _forms("azul/azules"),
    "yellow": _forms("amarillo"),
    "black": _forms("negro"),
    "white": _forms("blanco"),
    "purple": _forms("morado violeta/violetas"),
    "orange": _forms("naranja/naranjas"),
}
_SIZES_AFTER: dict[Size, Forms] = {"small": _forms("pequeño")[0], "big": _forms("grande/grandes")[0]}
_SIZES_BEFORE: dict[Size, Forms] = {"small": _forms("pequeño")[0], "big": _forms("gran/grandes")[0]}
_NUMBERS = {2: "dos", 3: "tres"}
_RELATIONS: dict[Relation, tuple[str, ...]] = {
    "above": ("encima de", "sobre", "arriba de"),
    "below": ("debajo de", "bajo"),
    "left_of": ("a la izquierda de",),
    "right_of": ("a la derecha de",),
    "next_to": ("al lado de", "junto a"),
}
_WHERE = ("en la imagen", "en la foto")


def _noun_phrase(mention: Mention, rng: np.random.Generator) -> str:
    singular, plural_noun, gender = _SHAPES[mention.shape]
    plural = mention.count > 1
    count = _NUMBERS[mention.count] if plural else ("una" if gender == "f" else "un")
    noun = plural_noun if plural else singular
    colour = _agree(choose(rng, _COLOURS[mention.colour]), gender, plural)
    if rng.random() < 0.5:
        return f"{count} {_agree(_SIZES_BEFORE[mention.size], gender, plural)} {noun} {colour}"
    return f"{count} {noun} {colour} {_agree(_SIZES_AFTER[mention.size], gender, plural)}"


def _verb_agreeing(mention: Mention, singular: str, plural: str) -> str:
    return singular if mention.count == 1 else plural


# ---------------------------------------------------------------------------------------------- sentences

Person = Literal["1s", "2s", "3s", "1p", "2p", "3p"]
_PERSON_INDEX: dict[Person, int] = {"1s": 0, "2s": 1, "3s": 2, "1p": 3, "2p": 4, "3p": 5}
_PRESENT_ENDINGS = {
    "ar": ("o", "as", "a", "amos", "áis", "an"),
    "er": ("o", "es", "e", "emos", "éis", "en"),
    "ir": ("o", "es", "e", "imos", "ís", "en"),
}
_PRETERITE_ENDINGS = {
    "ar": ("é", "aste", "ó", "amos", "asteis", "aron"),
    "er": ("í", "iste", "ió", "imos", "isteis", "ieron"),
    "ir": ("í", "iste", "ió", "imos", "isteis", "ieron"),
}
# Spelling keeps the consonant's sound before the -é of the preterite: busqué, jugué, abracé.
_PRETERITE_SPELLING = {"c": "qu", "g": "gu", "z": "c"}


@dataclass(frozen=True)
class _Verb:
    infinitive: str
    present: tuple[str, ...]  # yo, tú, él, nosotros, vosotros, ellos
    preterite: tuple[str, ...]
    objects: str  # key of _OBJECTS, "person", "game", or "" for an intransitive verb


def _verbs(table: str) -> tuple[_Verb, ...]:
    """Lines "infinitive objects [| present forms [| preterite forms]]"; missing forms are regular."""
    verbs = []
    for line in table.strip().splitlines():
        head, *irregular = (part.split() for part in line.split("|"))
        infinitive, objects = head
        stem, ending = infinitive[:-2], infinitive[-2:].replace("í", "i")  # reír conjugates like an -ir verb
        present = tuple(stem + e for e in _PRESENT_ENDINGS[ending])
        preterite = [stem + e for e in _PRETERITE_ENDINGS[ending]]
        if ending == "ar" and stem[-1] in _PRETERITE_SPELLING:
            preterite[0] = stem[:-1] + _PRETERITE_SPELLING[stem[-1]] + "é"
        if irregular and irregular[0]:
            present = tuple(irregular[0])
        if len(irregular) == 2:
            preterite = irregular[1]
        verbs.append(_Verb(infinitive, present, tuple(preterite), "" if objects == "-" else objects))
    return tuple(verbs)


_TRANSITIVE = _verbs("""
comer food
comprar food
preparar food
cortar food
probar food | pruebo pruebas prueba probamos probáis prueban
compartir food
pedir food | pido pides pide pedimos pedís piden | pedí pediste pidió pedimos pedisteis pidieron
cocinar food
beber drink
tomar drink
servir drink | sirvo sirves sirve servimos servís sirven | serví serviste sirvió servimos servisteis sirvieron
leer text | | leí leíste leyó leímos leísteis leyeron
escribir text
enviar text | envío envías envía enviamos enviáis envían
imprimir text
firmar text
encontrar thing | encuentro encuentras encuentra encontramos encontráis encuentran
perder thing | pierdo pierdes pierde perdemos perdéis pierden
llevar thing
lavar thing
arreglar thing
limpiar thing
vender thing
pintar thing
elegir thing | elijo eliges elige elegimos elegís eligen | elegí elegiste eligió elegimos elegisteis eligieron
esconder thing
buscar thing
abrir container
cerrar container | cierro cierras cierra cerramos cerráis cierran
vaciar container | vacío vacías vacía vaciamos vaciáis vacían
mirar show
ver show | veo ves ve vemos veis ven | vi viste vio vimos visteis vieron
llamar person
ayudar person
visitar person
invitar person
esperar person
seguir person | sigo sigues sigue seguimos seguís siguen | seguí seguiste siguió seguimos seguisteis siguieron
conocer person | conozco conoces conoce conocemos conocéis conocen
saludar person
abrazar person
jugar game | juego juegas juega jugamos jugáis juegan
""")
_INTRANSITIVE = _verbs("""
dormir - | duermo duermes duerme dormimos dormís duermen | dormí dormiste durmió dormimos dormisteis durmieron
cantar -
bailar -
nadar -
correr -
caminar -
trabajar -
reír - | río ríes ríe reímos reís ríen | reí reíste rio reímos reísteis rieron
llorar -
viajar -
gritar -
saltar -
descansar -
estudiar -
esquiar - | esquío esquías esquía esquiamos esquiáis esquían
""")
_DITRANSITIVE = _verbs("""
dar thing | doy das da damos dais dan | di diste dio dimos disteis dieron
mostrar thing | muestro muestras muestra mostramos mostráis muestran
prestar thing
regalar thing
traer thing | traigo traes trae traemos traéis traen | traje trajiste trajo trajimos trajisteis trajeron
""")
_IR = ("voy", "vas", "va", "vamos", "vais", "van")
_TENER = ("tengo", "tienes", "tiene", "tenemos", "tenéis", "tienen")
_MODALS = (
    ("puedo", "puedes", "puede", "podemos", "podéis", "pueden"),
    ("quiero", "quieres", "quiere", "queremos", "queréis", "quieren"),
    ("debo", "debes", "debe", "debemos", "debéis", "deben"),
    tuple(f"{form} que" for form in _TENER),
)
_ADVERBS = ("despacio", "rápido", "mucho", "bien", "otra vez", "juntos", "a menudo", "tranquilamente")


@dataclass(frozen=True)
class _Noun:
    singular: str
    plural: str  # "" for a mass noun
    gender: Gender


def _nouns(table: str) -> tuple[_Noun, ...]:
    """Entries "singular/plural/gender", or "word/gender" for a mass noun; "_" stands for a space."""
    nouns = []
    for entry in table.split():
        *words, gender = entry.replace("_", " ").split("/")
        nouns.append(_Noun(words[0], words[1] if len(words) == 2 else "", "f" if gender == "f" else "m"))
    return tuple(nouns)


@dataclass(frozen=True)
class _Kind:
    nouns: tuple[_Noun, ...]
    adjectives: tuple[Forms, ...]
    copula: tuple[str, str, str, str]  # is, was, are, were: "estar" for states, "ser" for qualities


_SER = ("es", "era", "son", "eran")
_ESTAR = ("está", "estaba", "están", "estaban")
_OBJECTS: dict[str, _Kind] = {
    "food": _Kind(
        _nouns("""manzana/manzanas/f naranja/naranjas/f pastel/pasteles/m tomate/tomates/m huevo/huevos/m
            bocadillo/bocadillos/m pera/peras/f limón/limones/m zanahoria/zanahorias/f fresa/fresas/f
            galleta/galletas/f cebolla/cebollas/f champiñón/champiñones/m melocotón/melocotones/m
            plátano/plátanos/m pan/m queso/m sopa/f arroz/m chocolate/m mermelada/f ensalada/f
            mantequilla/f carne/f pescado/m"""),
        _forms("fresco delicioso caliente/calientes dulce/dulces frío/fría/fríos/frías rico"),
        _ESTAR,
    ),
    "drink": _Kind(
        _nouns("café/m té/m leche/f zumo_de_naranja/m limonada/f sidra/f horchata/f"),
        _forms("caliente/calientes frío/fría/fríos/frías fresco dulce/dulces amargo fuerte/fuertes"),
        _ESTAR,
    ),
    "text": _Kind(
        _nouns("""libro/libros/m carta/cartas/f periódico/periódicos/m mensaje/mensajes/m
            historia/historias/f poema/poemas/m informe/informes/m revista/revistas/f receta/recetas/f
            invitación/invitaciones/f"""),
        _forms("largo corto extraño divertido aburrido antiguo precioso"),
        _SER,
    ),
    "thing": _Kind(
        _nouns("""bolso/bolsos/m paraguas/paraguas/m bicicleta/bicicletas/f silla/sillas/f
            lámpara/lámparas/f llave/llaves/f chaqueta/chaquetas/f zapato/zapatos/m reloj/relojes/m
            guitarra/guitarras/f caja/cajas/f televisión/televisiones/f ordenador/ordenadores/m
            espejo/espejos/m juguete/juguetes/m lápiz/lápices/m cesta/cestas/f maleta/maletas/f
            jarrón/jarrones/m"""),
        _forms("nuevo pesado caro barato antiguo bonito amarillo verde/verdes"),
        _SER,
    ),
    "container": _Kind(
        _nouns("""puerta/puertas/f ventana/ventanas/f caja/cajas/f cajón/cajones/m bolso/bolsos/m
            maleta/maletas/f botella/botellas/f sobre/sobres/m tarro/tarros/m armario/armarios/m"""),
        _forms("pesado azul/azules viejo nuevo enorme/enormes"),
        _SER,
    ),
    "show": _Kind(
        _nouns("""película/películas/f partido/partidos/m dibujo_animado/dibujos_animados/m
            concierto/conciertos/m espectáculo/espectáculos/m programa/programas/m"""),
        _forms("largo divertido aburrido emocionante/emocionantes famoso"),
        _SER,
    ),
}
_GAMES = ("al ajedrez", "a las cartas", "al tenis", "al fútbol", "al voleibol", "a las damas", "al dominó")
_CONTAINERS = ("una taza de", "un vaso de", "una botella de", "una jarra de")

_PEOPLE = _nouns("""hermano/hermanos/m hermana/hermanas/f vecino/vecinos/m vecina/vecinas/f amigo/amigos/m
    amiga/amigas/f profesor/profesores/m profesora/profesoras/f médico/médicos/m médica/médicas/f
    panadero/panaderos/m enfermera/enfermeras/f enfermero/enfermeros/m niño/niños/m niña/niñas/f
    chico/chicos/m chica/chicas/f primo/primos/m prima/primas/f tío/tíos/m tía/tías/f cartero/carteros/m
    pescador/pescadores/m jardinero/jardineros/m músico/músicos/m periodista/periodistas/m
    estudiante/estudiantes/m abuela/abuelas/f abuelo/abuelos/m""")
_PEOPLE_BEFORE = _forms("viejo joven/jóvenes buen/buena/buenos/buenas")
_PEOPLE_AFTER = _forms(
    "cansado contento tímido simpático curioso ocupado alto hablador/habladora/habladores/habladoras"
)
_NAMES = (
    "Marta",
    "Pablo",
    "Lucía",
    "Javier",
    "Carmen",
    "Diego",
    "Sofía",
    "Andrés",
    "Elena",
    "Jorge",
    "Nuria",
    "Raúl",
    "Begoña",
    "Íñigo",
    "Pilar",
    "Gonzalo",
    "Rocío",
    "Ángel",
    "Maite",
    "Joaquín",
)
# Subject pronouns; Spanish drops them freely, most of all in the first and second persons.
_PRONOUNS: tuple[tuple[str, Person], ...] = (
    ("yo", "1s"),
    ("tú", "2s"),
    ("él", "3s"),
    ("ella", "3s"),
    ("usted", "3s"),
    ("nosotros", "1p"),
    ("nosotras", "1p"),
    ("vosotros", "2p"),
    ("ellos", "3p"),
    ("ellas", "3p"),
    ("ustedes", "3p"),
)
Determiner = Literal["definite", "indefinite", "possessive", "demonstrative"]

_PLACES = (
    "en casa",
    "en la cocina",
    "en el jardín",
    "en la escuela",
    "en la estación",
    "en el mercado",
    "en la biblioteca",
    "en la playa",
    "cerca del río",
    "en el parque",
    "en la oficina",
    "en el pueblo",
    "junto al lago",
    "en el aeropuerto",
    "en el bosque",
    "sobre el puente",
    "en el museo",
    "en la tienda",
    "bajo el viejo roble",
    "detrás de la casa",
    "en el garaje",
    "en el zoológico",
    "en el barco",
    "en el hotel",
    "en la panadería",
    "en la montaña",
    "en el centro",
    "en el hospital",
    "en el tren",
)
Tense = Literal["present", "past", "near_future", "modal"]
_TIMES: dict[Tense, tuple[str, ...]] = {
    "present": (
        "todos los días",
        "cada mañana",
        "por la tarde",
        "los fines de semana",
        "dos veces por semana",
        "los domingos",
        "después del almuerzo",
        "cada verano",
        "por la noche",
    ),
    "past": (
        "ayer",
        "anoche",
        "la semana pasada",
        "esta mañana",
        "el lunes",
        "el verano pasado",
        "después de la cena",
        "hace mucho tiempo",
        "el jueves pasado",
    ),
    "near_future": (
        "mañana",
        "esta noche",
        "la semana que viene",
        "más tarde",
        "el viernes",
        "pronto",
        "el año próximo",
        "esta tarde",
    ),
    "modal": ("hoy", "mañana", "ahora", "este fin de semana", "el miércoles", "esta noche"),
}
_CITIES = (
    "Madrid",
    "Sevilla",
    "Valencia",
    "Bilbao",
    "Granada",
    "Toledo",
    "Zaragoza",
    "Málaga",
    "Salamanca",
    "Cádiz",
)
_OUTDOORS = (
    "aquí",
    "fuera",
    "en el norte",
    "en la montaña",
    "en la costa",
    "en el valle",
    "en la playa",
    *(f"en {city}" for city in _CITIES),
)
# Openings of a weather report; the empty one leaves the report bare.
_HEARSAY = ("", "creo que", "dicen que", "según la radio,", "por suerte,", "por desgracia,", "al parecer,")
_DEGREES = ("muy", "bastante", "realmente", "demasiado", "un poco", "algo", "extremadamente")

_UNITS = [
    "cero",
    "uno",
    "dos",
    "tres",
    "cuatro",
    "cinco",
    "seis",
    "siete",
    "ocho",
    "nueve",
    "diez",
    "once",
    "doce",
    "trece",
    "catorce",
    "quince",
    "dieciséis",
    "diecisiete",
    "dieciocho",
    "diecinueve",
    "veinte",
    "veintiuno",
    "veintidós",
    "veintitrés",
    "veinticuatro",
    "veinticinco",
    "veintiséis",
    "veintisiete",
    "veintiocho",
    "veintinueve",
]
_TENS = {3: "treinta", 4: "cuarenta", 5: "cincuenta", 6: "sesenta", 7: "setenta", 8: "ochenta", 9: "noventa"}


def number_words(n: int, gender: Gender = "m") -> str:
    """Spanish words for 0 ≤ n < 100 before a noun of `gender`: "uno" agrees and shortens ("veintiún
    libros", "treinta y una cartas")."""
    if n < 30:
        word = _UNITS[n]
    else:
        tens, unit = divmod(n, 10)
        word = _TENS[tens] + (f" y {_UNITS[unit]}" if unit else "")
    if word.endswith("uno"):
        word = word[:-1] if gender == "m" else word[:-1] + "a"
        if word == "veintiun":
            word = "veintiún"
    return word


_CONTRACTIONS = ((re.compile(r"\ba el\b"), "al"), (re.compile(r"\bde el\b"), "del"))


def finish(text: str) -> str:
    """Contract "a el" and "de el" (not "de él") into "al" and "del"."""
    for pattern, contraction in _CONTRACTIONS:
        text = pattern.sub(contraction, text)
    return text


def _determiner(kind: Determiner, gender: Gender, plural: bool, rng: np.random.Generator) -> str:
    if kind == "definite":
        return ("las" if plural else "la") if gender == "f" else ("los" if plural else "el")
    if kind == "indefinite":
        return ("unas" if plural else "una") if gender == "f" else ("unos" if plural else "un")
    if kind == "demonstrative":
        return _agree(choose(rng, _forms("este/esta/estos/estas ese/esa/esos/esas")), gender, plural)
    possessive = choose(rng, _forms("mi/mis tu/tus su/sus nuestro vuestro"))
    return _agree(possessive, gender, plural)


@dataclass(frozen=True)
class _Subject:
    text: str  # empty when the pronoun is dropped
    person: Person


def _subject(rng: np.random.Generator) -> _Subject:
    kind = rng.random()
    if kind < 0.4:
        text, person = choose(rng, _PRONOUNS)
        dropped = person in ("1s", "2s", "1p", "2p") and rng.random() < 0.6
        return _Subject("" if dropped else text, person)
    if kind < 0.55:
        return _Subject(choose(rng, _NAMES), "3s")
    plural = rng.random() < 0.3
    return _Subject(_person_phrase(rng, choose(rng, _PEOPLE), plural), "3p" if plural else "3s")


def _person_phrase(rng: np.random.Generator, noun: _Noun, plural: bool) -> str:
    words = noun.plural if plural else noun.singular
    modifier = rng.random()
    if modifier < 0.2:
        words = f"{_agree(choose(rng, _PEOPLE_BEFORE), noun.gender, plural)} {words}"
    elif modifier < 0.4:
        words = f"{words} {_agree(choose(rng, _PEOPLE_AFTER), noun.gender, plural)}"
    kind: Determiner = choose(rng, ("definite", "possessive", "possessive", "indefinite"))
    return f"{_determiner(kind, noun.gender, plural, rng)} {words}"


def _person_object(rng: np.random.Generator) -> tuple[str, bool]:
    """A person as an object, with the personal "a", and whether it is plural."""
    if rng.random() < 0.3:
        return f"a {choose(rng, _NAMES)}", False
    plural = rng.random() < 0.3
    return f"a {_person_phrase(rng, choose(rng, _PEOPLE), plural)}", plural


def _object_phrase(rng: np.random.Generator, kind: str) -> str:
    if kind == "person":
        return _person_object(rng)[0]
    if kind == "game":
        return choose(rng, _GAMES)
    category = _OBJECTS[kind]
    noun = choose(rng, category.nouns)
    countable = bool(noun.plural)
    if countable and rng.random() < 0.3:
        words = f"{number_words(int(rng.integers(2, 100)), noun.gender)} {noun.plural}"
        return _with_adjective(rng, words, noun, True, category.adjectives)
    if not countable:
        words = _with_adjective(rng, noun.singular, noun, False, category.adjectives)
        if kind == "drink" and rng.random() < 0.4:
            return f"{choose(rng, _CONTAINERS)} {words}"
        return words if rng.random() < 0.4 else f"{_determiner('definite', noun.gender, False, rng)} {words}"
    plural = rng.random() < 0.35
    words = _with_adjective(rng, noun.plural if plural else noun.singular, noun, plural, category.adjectives)
    kinds: tuple[Determiner, ...] = ("definite", "indefinite", "possessive", "demonstrative")
    return f"{_determiner(choose(rng, kinds), noun.gender, plural, rng)} {words}"


def _with_adjective(
    rng: np.random.Generator, words: str, noun: _Noun, plural: bool, adjectives: Sequence[Forms]
) -> str:
    if rng.random() < 0.35:
        return f"{words} {_agree(choose(rng, adjectives), noun.gender, plural)}"
    return words


def _verb_group(verb: _Verb, person: Person, tense: Tense, rng: np.random.Generator) -> str:
    index = _PERSON_INDEX[person]
    if tense == "present":
        return verb.present[index]
    if tense == "past":
        return verb.preterite[index]
    if tense == "near_future":
        return f"{_IR[index]} a {verb.infinitive}"
    return f"{choose(rng, _MODALS)[index]} {verb.infinitive}"


def _predicate(rng: np.random.Generator, person: Person, tense: Tense) -> tuple[str, str]:
    """(verb group, with an indirect-object pronoun when there is one; what follows it)."""
    kind = rng.random()
    if kind < 0.6:
        verb = choose(rng, _TRANSITIVE)
        return _verb_group(verb, person, tense, rng), _object_phrase(rng, verb.objects)
    if kind < 0.75:
        verb = choose(rng, _DITRANSITIVE)
        recipient, plural = _person_object(rng)
        # Spanish doubles the recipient with "le"/"les" before the verb group.
        pronoun = "les" if plural else "le"
        thing = _object_phrase(rng, "thing")
        return f"{pronoun} {_verb_group(verb, person, tense, rng)}", f"{thing} {recipient}"
    verb = choose(rng, _INTRANSITIVE)
    return _verb_group(verb, person, tense, rng), choose(rng, _ADVERBS) if rng.random() < 0.5 else ""


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _statement(rng: np.random.Generator) -> str:
    subject = _subject(rng)
    tense: Tense = choose(rng, ("present", "past", "near_future", "modal"))
    verb_group, rest = _predicate(rng, subject.person, tense)
    negation = "no" if rng.random() < 0.25 else ""
    core = _join(subject.text, negation, verb_group, rest)
    return with_adjuncts(rng, core, (_PLACES, _TIMES[tense]), end=".")


def _question(rng: np.random.Generator) -> str:
    subject = _subject(rng)
    tense: Tense = choose(rng, ("present", "past", "near_future", "modal"))
    kind = rng.random()
    if kind < 0.2:
        verb = choose(rng, [v for v in _TRANSITIVE if v.objects in ("food", "text", "thing", "container")])
        noun = choose(rng, [n for n in _OBJECTS[verb.objects].nouns if n.plural])
        how_many = "cuántas" if noun.gender == "f" else "cuántos"
        core = _join(
            f"¿{how_many} {noun.plural}", _verb_group(verb, subject.person, tense, rng), subject.text
        )
    elif kind < 0.35:
        verb = choose(rng, [v for v in _TRANSITIVE if v.objects != "game"])
        asked = "¿a quién" if verb.objects == "person" else "¿qué"
        core = _join(asked, _verb_group(verb, subject.person, tense, rng), subject.text)
    elif kind < 0.7:
        verb_group, rest = _predicate(rng, subject.person, tense)
        negation = "no" if rng.random() < 0.3 else ""
        core = "¿" + _join(subject.text, negation, verb_group, rest)
    else:
        # Questions with a question word put the subject after the verb.
        verb_group, rest = _predicate(rng, subject.person, tense)
        opening = choose(rng, ("dónde", "cuándo", "por qué", "cómo"))
        core = _join(f"¿{opening}", verb_group, subject.text, rest)
    return with_adjuncts(rng, core, (_PLACES, _TIMES[tense]), end="?")


def _with_number(rng: np.random.Generator) -> str:
    kind = rng.random()
    if kind < 0.3:
        subject = _subject(rng)
        count = number_words(int(rng.integers(2, 100)))
        return _join(subject.text, _TENER[_PERSON_INDEX[subject.person]], count, "años") + "."
    if kind < 0.6:
        vehicle = choose(
            rng, ("el tren", "el autobús", "el barco", "el avión", "el último metro", "el tranvía")
        )
        hour = int(rng.integers(1, 13))
        clock = "a la una" if hour == 1 else f"a las {number_words(hour, 'f')}"
        clock = choose(
            rng, (clock, f"{clock} y cuarto", f"{clock} y media", f"{clock} menos cuarto", "a mediodía")
        )
        verb = choose(rng, ("sale", "llega", "salió", "llegó", "va a salir", "para aquí"))
        destination = f" a {choose(rng, _CITIES)}" if rng.random() < 0.9 else ""
        return f"{vehicle}{destination} {verb} {clock}."
    kind_name = choose(rng, ("food", "text", "thing"))
    noun = choose(rng, [n for n in _OBJECTS[kind_name].nouns if n.plural])
    count = number_words(int(rng.integers(2, 100)), noun.gender)
    return f"{choose(rng, ('hay', 'había'))} {count} {noun.plural} {choose(rng, _PLACES)}."


def _weather(rng: np.random.Generator) -> str:
    tense: Tense = choose(rng, ("present", "past", "near_future"))
    amount = choose(rng, ("", "mucho ", "muchísimo ", "un poco de ", "bastante "))
    felt = f"{amount}{choose(rng, ('frío', 'calor', 'sol', 'viento'))}"
    phrases = {
        "present": (f"hace {felt}", "hace buen tiempo", "llueve", "nieva", "hay niebla", "está nublado"),
        "past": (f"hizo {felt}", "hizo mal tiempo", "llovió", "nevó", "hubo niebla", "estuvo nublado"),
        "near_future": (f"va a hacer {felt}", "va a llover", "va a nevar", "va a haber niebla"),
    }
    first, second = (phrases[tense][i] for i in rng.choice(len(phrases[tense]), 2, replace=False))
    core = _join(choose(rng, _HEARSAY), first)
    if rng.random() < 0.3:
        core = f"{core} {choose(rng, ('y', 'pero'))} {second}"
    return with_adjuncts(rng, core, (_OUTDOORS, _TIMES[tense]), end=".", probability=0.9)


def _description(rng: np.random.Generator) -> str:
    category = _OBJECTS[choose(rng, ("food", "text", "thing", "show"))]
    noun = choose(rng, [n for n in category.nouns if n.plural])
    plural = rng.random() < 0.3
    determiner = _determiner(
        choose(rng, ("definite", "possessive", "demonstrative")), noun.gender, plural, rng
    )
    copula = category.copula[2 * plural + (rng.random() < 0.5)]
    adjective = _agree(choose(rng, category.adjectives), noun.gender, plural)
    words = noun.plural if plural else noun.singular
    return f"{determiner} {words} {copula} {choose(rng, _DEGREES)} {adjective}."


def _imperative(rng: np.random.Generator) -> str:
    # The familiar affirmative imperative of these verbs equals their third person singular present.
    verb = choose(
        rng, [v for v in _TRANSITIVE if v.objects in ("food", "drink", "text", "thing", "container")]
    )
    polite = choose(rng, ("", ", por favor"))
    return f"{verb.present[2]} {_object_phrase(rng, verb.objects)} {choose(rng, _PLACES)}{polite}."


class SpanishGrammar(Grammar):
    code = "es"
    espeak_language = "es"
    caption_lexicon = CaptionLexicon(
        counts={"un": 1, "una": 1, "dos": 2, "tres": 3},
        sizes={
            word: size
            for table in (_SIZES_AFTER, _SIZES_BEFORE)
            for size, forms in table.items()
            for word in forms
        },
        colours={word: colour for colour, table in _COLOURS.items() for forms in table for word in forms},
        shapes={
            form: shape for shape, (singular, plural, _) in _SHAPES.items() for form in (singular, plural)
        },
        relations={phrase: relation for relation, phrases in _RELATIONS.items() for phrase in phrases},
        fillers=frozenset(
            {
                "hay",
                "se ve",
                "se ven",
                "la imagen muestra",
                "veo",
                "una imagen de",
                "está",
                "están",
                "se encuentra",
                "se encuentran",
                "y",
                *_WHERE,
            }
        ),
    )

    def single(self, mention: Mention, rng: np.random.Generator) -> str:
        template = choose(
            rng,
            (
                "{np}",
                "hay {np}",
                "{np} {where}",
                "hay {np} {where}",
                "{se_ve} {np}",
                "la imagen muestra {np}",
                "veo {np}",
                "una imagen de {np}",
            ),
        )
        return template.format(
            np=_noun_phrase(mention, rng),
            se_ve=_verb_agreeing(mention, "se ve", "se ven"),
            where=choose(rng, _WHERE),
        )

    def related(
        self, subject: Mention, relation: Relation, landmark: Mention, rng: np.random.Generator
    ) -> str:
        template = choose(
            rng,
            (
                "{a} {rel} {b}",
                "{a} {rel} {b} {where}",
                "hay {a} {rel} {b}",
                "{a} {esta} {rel} {b}",
                "{a} {se_encuentra} {rel} {b}",
                "{rel} {b} hay {a}",
                "{rel} {b} {se_ve} {a}",
                "{rel} {b} {esta} {a}",
            ),
        )
        return template.format(
            a=_noun_phrase(subject, rng),
            b=_noun_phrase(landmark, rng),
            rel=choose(rng, _RELATIONS[relation]),
            esta=_verb_agreeing(subject, "está", "están"),
            se_encuentra=_verb_agreeing(subject, "se encuentra", "se encuentran"),
            se_ve=_verb_agreeing(subject, "se ve", "se ven"),
            where=choose(rng, _WHERE),
        )

    def listed(self, mentions: Sequence[Mention], rng: np.random.Generator) -> str:
        phrases = [_noun_phrase(mention, rng) for mention in mentions]
        items = ", ".join(phrases[:-1]) + " y " + phrases[-1]
        template = choose(
            rng, ("{items}", "hay {items}", "se ven {items}", "la imagen muestra {items}", "{items} {where}")
        )
        return template.format(items=items, where=choose(rng, _WHERE))

    def compose_sentence(self, rng: np.random.Generator) -> str:
        maker = choose(
            rng, (_statement,) * 4 + (_question,) * 2 + (_with_number, _weather, _description, _imperative)
        )
        return capitalize_first(finish(maker(rng)))
