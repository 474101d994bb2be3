"""French: captions of scenes and everyday sentences (France voice of espeak-ng).

Agreement follows the noun's gender and number: size adjectives go before the noun and colours after it
("deux petites étoiles rouges"); "orange" is invariable. Sentences are assembled word by word and then pass
through `finish`, which applies elision ("je aime" → "j'aime", "de une" → "d'une") and the contractions of
"à" and "de" with the definite article ("à le marché" → "au marché").
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
    """Adjectives written "m/f/mp/fp", or one word for an invariable or regular-in-e adjective."""
    result = []
    for entry in table.split():
        parts = entry.replace("_", " ").split("/")
        if len(parts) == 1:
            word = parts[0]
            plural = word if word.endswith(("s", "x")) or " " in word else word + "s"
            parts = [word, word, plural, plural]
        result.append((parts[0], parts[1], parts[2], parts[3]))
    return tuple(result)


# ---------------------------------------------------------------------------------------------- captions

_SHAPES: dict[Shape, tuple[str, str, Gender]] = {
    "circle": ("cercle", "cercles", "m"),
    "square": ("carré", "carrés", "m"),
    "triangle": ("triangle", "triangles", "m"),
    "star": ("étoile", "étoiles", "f"),
    "heart": ("cœur", "cœurs", "m"),
    "cross": ("croix", "croix", "f"),
    "diamond": ("losange", "losanges", "m"),
    "hexagon": ("hexagone", "hexagones", "m"),
}
_INVARIABLE_ORANGE: Forms = ("orange", "orange", "orange", "orange")
_COLOURS: dict[Colour, tuple[Forms, ...]] = {
    "red": _forms("rouge"),
    "green": _forms("vert/verte/verts/vertes"),
    "blue": _forms("bleu/bleue/bleus/bleues"),
    "yellow": _forms("jaune"),
    "black": _forms("noir/noire/noirs/noires"),
    "white": _forms("blanc/blanche/blancs/blanches"),
    "purple": _forms("violet/violette/violets/violettes mauve"),
    "orange": (_INVARIABLE_ORANGE,),
}
_SIZES: dict[Size, tuple[Forms, ...]] = {
    "small": _forms("petit/petite/petits/petites"),
    "big": _forms("grand/grande/grands/grandes gros/grosse/gros/grosses"),
}
_NUMBERS = {2: "deux", 3: "trois"}
_RELATIONS: dict[Relation, tuple[str, ...]] = {
    "above": ("au-dessus de",),
    "below": ("au-dessous de", "en dessous de", "sous"),
    "left_of": ("à gauche de",),
    "right_of": ("à droite de",),
    "next_to": ("à côté de", "juste à côté de"),
}
_WHERE = ("sur l'image", "dans l'image")


def _noun_phrase(mention: Mention, rng: np.random.Generator) -> str:
    singular, plural_noun, gender = _SHAPES[mention.shape]
    plural = mention.count > 1
    count = _NUMBERS[mention.count] if plural else ("une" if gender == "f" else "un")
    size = _agree(choose(rng, _SIZES[mention.size]), gender, plural)
    colour = _agree(choose(rng, _COLOURS[mention.colour]), gender, plural)
    return f"{count} {size} {plural_noun if plural else singular} {colour}"


def _verb_agreeing(mention: Mention, singular: str, plural: str) -> str:
    return singular if mention.count == 1 else plural


# ---------------------------------------------------------------------------------------------- sentences

Person = Literal["1s", "2s", "3s", "1p", "2p", "3p"]
_PERSON_INDEX: dict[Person, int] = {"1s": 0, "2s": 1, "3s": 2, "1p": 3, "2p": 4, "3p": 5}


@dataclass(frozen=True)
class _Verb:
    infinitive: str
    present: tuple[str, ...]  # je, tu, il, nous, vous, ils
    participle: str  # all verbs here take "avoir" in the passé composé
    objects: str  # key of _OBJECTS, "person", "game", or "" for an intransitive verb


def _verbs(table: str) -> tuple[_Verb, ...]:
    verbs = []
    for line in table.strip().splitlines():
        infinitive, *present, participle, objects = line.split()
        verbs.append(_Verb(infinitive, tuple(present), participle, "" if objects == "-" else objects))
    return tuple(verbs)


_TRANSITIVE = _verbs("""
manger mange manges mange mangeons mangez mangent mangé food
acheter achète achètes achète achetons achetez achètent acheté food
préparer prépare prépares prépare préparons préparez préparent préparé food
couper coupe coupes coupe coupons coupez coupent coupé food
goûter goûte goûtes goûte goûtons goûtez goûtent goûté food
partager partage partages partage partageons partagez partagent partagé food
commander commande commandes commande commandons commandez commandent commandé food
boire bois bois boit buvons buvez boivent bu drink
verser verse verses verse versons versez versent versé drink
lire lis lis lit lisons lisez lisent lu text
écrire écris écris écrit écrivons écrivez écrivent écrit text
envoyer envoie envoies envoie envoyons envoyez envoient envoyé text
imprimer imprime imprimes imprime imprimons imprimez impriment imprimé text
signer signe signes signe signons signez signent signé text
trouver trouve trouves trouve trouvons trouvez trouvent trouvé thing
perdre perds perds perd perdons perdez perdent perdu thing
porter porte portes porte portons portez portent porté thing
laver lave laves lave lavons lavez lavent lavé thing
réparer répare répares répare réparons réparez réparent réparé thing
nettoyer nettoie nettoies nettoie nettoyons nettoyez nettoient nettoyé thing
vendre vends vends vend vendons vendez vendent vendu thing
emprunter emprunte empruntes emprunte empruntons empruntez empruntent emprunté thing
peindre peins peins peint peignons peignez peignent peint thing
choisir choisis choisis choisit choisissons choisissez choisissent choisi thing
cacher cache caches cache cachons cachez cachent caché thing
ouvrir ouvre ouvres ouvre ouvrons ouvrez ouvrent ouvert container
fermer ferme fermes ferme fermons fermez ferment fermé container
vider vide vides vide vidons videz vident vidé container
regarder regarde regardes regarde regardons regardez regardent regardé show
appeler appelle appelles appelle appelons appelez appellent appelé person
aider aide aides aide aidons aidez aident aidé person
rencontrer rencontre rencontres rencontre rencontrons rencontrez rencontrent rencontré person
inviter invite invites invite invitons invitez invitent invité person
remercier remercie remercies remercie remercions remerciez remercient remercié person
attendre attends attends attend attendons attendez attendent attendu person
suivre suis suis suit suivons suivez suivent suivi person
écouter écoute écoutes écoute écoutons écoutez écoutent écouté person
reconnaître reconnais reconnais reconnaît reconnaissons reconnaissez reconnaissent reconnu person
jouer joue joues joue jouons jouez jouent joué game
""")
_INTRANSITIVE = _verbs("""
dormir dors dors dort dormons dormez dorment dormi -
chanter chante chantes chante chantons chantez chantent chanté -
danser danse danses danse dansons dansez dansent dansé -
nager nage nages nage nageons nagez nagent nagé -
courir cours cours court courons courez courent couru -
marcher marche marches marche marchons marchez marchent marché -
travailler travaille travailles travaille travaillons travaillez travaillent travaillé -
rire ris ris rit rions riez rient ri -
pleurer pleure pleures pleure pleurons pleurez pleurent pleuré -
voyager voyage voyages voyage voyageons voyagez voyagent voyagé -
crier crie cries crie crions criez crient crié -
sourire souris souris sourit sourions souriez sourient souri -
réfléchir réfléchis réfléchis réfléchit réfléchissons réfléchissez réfléchissent réfléchi -
jardiner jardine jardines jardine jardinons jardinez jardinent jardiné -
étudier étudie étudies étudie étudions étudiez étudient étudié -
""")
_DITRANSITIVE = _verbs("""
donner donne donnes donne donnons donnez donnent donné thing
montrer montre montres montre montrons montrez montrent montré thing
prêter prête prêtes prête prêtons prêtez prêtent prêté thing
offrir offre offres offre offrons offrez offrent offert thing
""")
_AVOIR = ("ai", "as", "a", "avons", "avez", "ont")
_ALLER = ("vais", "vas", "va", "allons", "allez", "vont")
_MODALS = (
    ("peux", "peux", "peut", "pouvons", "pouvez", "peuvent"),
    ("veux", "veux", "veut", "voulons", "voulez", "veulent"),
    ("dois", "dois", "doit", "devons", "devez", "doivent"),
)
# Adverbs that read well after an infinitive or a participle ("n'a pas chanté longtemps").
_ADVERBS = (
    "doucement",
    "lentement",
    "vite",
    "ensemble",
    "longtemps",
    "en silence",
    "avec plaisir",
    "toute la journée",
)


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


_OBJECTS: dict[str, tuple[tuple[_Noun, ...], tuple[Forms, ...]]] = {
    "food": (
        _nouns("""pomme/pommes/f orange/oranges/f gâteau/gâteaux/m tomate/tomates/f œuf/œufs/m
            sandwich/sandwichs/m poire/poires/f citron/citrons/m carotte/carottes/f fraise/fraises/f
            croissant/croissants/m biscuit/biscuits/m oignon/oignons/m champignon/champignons/m
            pêche/pêches/f pain/m fromage/m soupe/f riz/m chocolat/m confiture/f salade/f beurre/m
            viande/f poisson/m"""),
        _forms("""frais/fraîche/frais/fraîches délicieux/délicieuse/délicieux/délicieuses
            chaud/chaude/chauds/chaudes sucré/sucrée/sucrés/sucrées froid/froide/froids/froides énorme
            bizarre juteux/juteuse/juteux/juteuses"""),
    ),
    "drink": (
        _nouns("café/m thé/m lait/m eau/f jus_d'orange/m limonade/f cidre/m sirop/m"),
        _forms("""chaud/chaude/chauds/chaudes froid/froide/froids/froides frais/fraîche/frais/fraîches
            sucré/sucrée/sucrés/sucrées amer/amère/amers/amères fort/forte/forts/fortes"""),
    ),
    "text": (
        _nouns("""livre/livres/m lettre/lettres/f journal/journaux/m message/messages/m
            histoire/histoires/f poème/poèmes/m rapport/rapports/m magazine/magazines/m
            recette/recettes/f invitation/invitations/f"""),
        _forms("""long/longue/longs/longues court/courte/courts/courtes étrange drôle
            ennuyeux/ennuyeuse/ennuyeux/ennuyeuses ancien/ancienne/anciens/anciennes magnifique"""),
    ),
    "thing": (
        _nouns("""sac/sacs/m parapluie/parapluies/m vélo/vélos/m chaise/chaises/f lampe/lampes/f
            clé/clés/f veste/vestes/f chaussure/chaussures/f montre/montres/f guitare/guitares/f
            boîte/boîtes/f télévision/télévisions/f ordinateur/ordinateurs/m miroir/miroirs/m
            jouet/jouets/m crayon/crayons/m panier/paniers/m valise/valises/f vase/vases/m"""),
        _forms("""neuf/neuve/neufs/neuves lourd/lourde/lourds/lourdes cassé/cassée/cassés/cassées jaune
            vert/verte/verts/vertes cher/chère/chers/chères en_bois rouge beige"""),
    ),
    "container": (
        _nouns("""porte/portes/f fenêtre/fenêtres/f boîte/boîtes/f tiroir/tiroirs/m sac/sacs/m
            valise/valises/f bouteille/bouteilles/f enveloppe/enveloppes/f bocal/bocaux/m
            armoire/armoires/f"""),
        _forms("""lourd/lourde/lourds/lourdes en_bois bleu/bleue/bleus/bleues
            poussiéreux/poussiéreuse/poussiéreux/poussiéreuses neuf/neuve/neufs/neuves"""),
    ),
    "show": (
        _nouns("""film/films/m match/matchs/m dessin_animé/dessins_animés/m concert/concerts/m
            spectacle/spectacles/m émission/émissions/f"""),
        _forms("""long/longue/longs/longues drôle passionnant/passionnante/passionnants/passionnantes
            ennuyeux/ennuyeuse/ennuyeux/ennuyeuses célèbre"""),
    ),
}
# Sports and games by their French names: espeak reads "football" or "week-end" with its English voice.
_GAMES = ("aux échecs", "aux cartes", "au tennis", "au rugby", "au volley", "aux dames", "à la pétanque")
_CONTAINERS = ("une tasse de", "un verre de", "une bouteille de", "une carafe de")

_PEOPLE = _nouns("""frère/frères/m sœur/sœurs/f voisin/voisins/m voisine/voisines/f ami/amis/m amie/amies/f
    professeur/professeurs/m médecin/médecins/m boulanger/boulangers/m boulangère/boulangères/f
    infirmière/infirmières/f infirmier/infirmiers/m enfant/enfants/m garçon/garçons/m fille/filles/f
    cousin/cousins/m cousine/cousines/f oncle/oncles/m tante/tantes/f facteur/facteurs/m
    chanteuse/chanteuses/f pêcheur/pêcheurs/m jardinier/jardiniers/m musicien/musiciens/m
    musicienne/musiciennes/f journaliste/journalistes/m étudiant/étudiants/m étudiante/étudiantes/f
    grand-mère/grands-mères/f grand-père/grands-pères/m""")
_PEOPLE_BEFORE = _forms(
    "petit/petite/petits/petites jeune grand/grande/grands/grandes gentil/gentille/gentils/gentilles"
)
_PEOPLE_AFTER = _forms("""fatigué/fatiguée/fatigués/fatiguées content/contente/contents/contentes timide
    curieux/curieuse/curieux/curieuses sympathique occupé/occupée/occupés/occupées
    bavard/bavarde/bavards/bavardes""")
_NAMES = (
    "Marie",
    "Julien",
    "Chloé",
    "Pierre",
    "Léa",
    "Nicolas",
    "Camille",
    "Louis",
    "Manon",
    "Gabriel",
    "Zoé",
    "Antoine",
    "Inès",
    "Mathieu",
    "Juliette",
    "Yves",
    "Agnès",
    "Benoît",
    "Françoise",
    "Rémi",
)
_PRONOUNS: tuple[tuple[str, Person], ...] = (
    ("je", "1s"),
    ("tu", "2s"),
    ("il", "3s"),
    ("elle", "3s"),
    ("on", "3s"),
    ("nous", "1p"),
    ("vous", "2p"),
    ("ils", "3p"),
    ("elles", "3p"),
)
Determiner = Literal["definite", "indefinite", "partitive", "possessive", "demonstrative"]
_POSSESSIVES = (
    ("mon", "ma", "mes"),
    ("ton", "ta", "tes"),
    ("son", "sa", "ses"),
    ("notre", "notre", "nos"),
    ("votre", "votre", "vos"),
    ("leur", "leur", "leurs"),
)

_PLACES = (
    "à la maison",
    "au marché",
    "dans la cuisine",
    "au bureau",
    "à l'école",
    "dans le jardin",
    "près de la rivière",
    "à la gare",
    "chez mes parents",
    "sur la plage",
    "en ville",
    "à la bibliothèque",
    "au musée",
    "dans la forêt",
    "sur le pont",
    "au bord du lac",
    "à l'aéroport",
    "dans le village",
    "à la boulangerie",
    "à la montagne",
    "à l'hôpital",
    "dans le train",
    "sous le vieux chêne",
    "derrière la maison",
    "au zoo",
    "sur le bateau",
    "à l'hôtel",
    "au centre-ville",
    "dans le garage",
)
Tense = Literal["present", "past", "near_future", "modal"]
_TIMES: dict[Tense, tuple[str, ...]] = {
    "present": (
        "tous les jours",
        "chaque matin",
        "le soir",
        "le samedi soir",
        "deux fois par semaine",
        "le dimanche",
        "après le déjeuner",
        "chaque été",
        "la nuit",
    ),
    "past": (
        "hier",
        "hier soir",
        "la semaine dernière",
        "ce matin",
        "lundi",
        "l'été dernier",
        "après le dîner",
        "il y a longtemps",
        "jeudi dernier",
    ),
    "near_future": (
        "demain",
        "ce soir",
        "la semaine prochaine",
        "plus tard",
        "vendredi",
        "bientôt",
        "l'année prochaine",
        "cet après-midi",
    ),
    "modal": ("aujourd'hui", "demain", "maintenant", "cette semaine", "mercredi", "ce soir"),
}
_CITIES = (
    "Paris",
    "Lyon",
    "Marseille",
    "Bordeaux",
    "Genève",
    "Bruxelles",
    "Lille",
    "Nantes",
    "Rouen",
    "Dijon",
)
_OUTDOORS = (
    "ici",
    "dehors",
    "dans le nord",
    "à la montagne",
    "sur la côte",
    "dans la vallée",
    "à la plage",
    *(f"à {city}" for city in _CITIES),
)
# Openings of a weather report; the empty one leaves the report bare.
_HEARSAY = ("", "je pense que", "on dit que", "selon la météo,", "heureusement,", "hélas,", "apparemment,")
_DEGREES = ("très", "assez", "vraiment", "trop", "plutôt", "un peu", "extrêmement")

_UNITS = [
    "zéro",
    "un",
    "deux",
    "trois",
    "quatre",
    "cinq",
    "six",
    "sept",
    "huit",
    "neuf",
    "dix",
    "onze",
    "douze",
    "treize",
    "quatorze",
    "quinze",
    "seize",
    "dix-sept",
    "dix-huit",
    "dix-neuf",
]
_TENS = {2: "vingt", 3: "trente", 4: "quarante", 5: "cinquante", 6: "soixante"}


def number_words(n: int, gender: Gender = "m") -> str:
    """French words for 0 ≤ n < 100, agreeing "un"/"une" with the counted noun ("vingt et une pommes")."""
    if n >= 80:
        rest = n - 80
        return "quatre-vingts" if rest == 0 else f"quatre-vingt-{number_words(rest, gender)}"
    if n >= 60:
        rest = n - 60
        if rest == 0:
            return "soixante"
        joiner = " et " if rest in (1, 11) else "-"
        return f"soixante{joiner}{number_words(rest, gender)}"
    if n >= 20:
        tens, unit = divmod(n, 10)
        if unit == 0:
            return _TENS[tens]
        return f"{_TENS[tens]}{' et ' if unit == 1 else '-'}{number_words(unit, gender)}"
    return "une" if n == 1 and gender == "f" else _UNITS[n]


# Words that drop their vowel before a vowel or a mute h, and the words that do not allow it.
_ELIDING = re.compile(r"\b(je|me|te|se|le|la|ne|de|que) (?=([aeiouyàâéèêëîïôœh]\S*))", re.IGNORECASE)
_NO_ELISION_BEFORE = frozenset({"huit", "onze", "yaourt", "héros", "haricot", "hibou"})
_CONTRACTIONS = (
    (re.compile(r"\bà le\b"), "au"),
    (re.compile(r"\bà les\b"), "aux"),
    (re.compile(r"\bde le\b"), "du"),
    (re.compile(r"\bde les\b"), "des"),
)


def finish(text: str) -> str:
    """Apply elision, then the contractions of "à"/"de" with "le"/"les"."""

    def elide(match: re.Match[str]) -> str:
        if match.group(2).lower() in _NO_ELISION_BEFORE:
            return match.group(0)
        return match.group(1)[:-1] + "'"

    text = _ELIDING.sub(elide, text)
    for pattern, contraction in _CONTRACTIONS:
        text = pattern.sub(contraction, text)
    return text


def _starts_with_vowel(word: str) -> bool:
    return word[0].lower() in "aeiouyàâéèêëîïôœh" and word.lower() not in _NO_ELISION_BEFORE


def _determiner(
    kind: Determiner, gender: Gender, plural: bool, following: str, rng: np.random.Generator
) -> str:
    """The determiner before `following` (elision of le/la is left to `finish`)."""
    if kind == "definite":
        return "les" if plural else ("la" if gender == "f" else "le")
    if kind == "indefinite":
        return "des" if plural else ("une" if gender == "f" else "un")
    if kind == "partitive":
        return "de les" if plural else ("de la" if gender == "f" else "de le")
    if kind == "demonstrative":
        if plural:
            return "ces"
        if gender == "f":
            return "cette"
        return "cet" if _starts_with_vowel(following) else "ce"
    masculine, feminine, plural_form = choose(rng, _POSSESSIVES)
    if plural:
        return plural_form
    # "ma amie" is "mon amie": the masculine form stands before a vowel.
    return feminine if gender == "f" and not _starts_with_vowel(following) else masculine


@dataclass(frozen=True)
class _Subject:
    text: str
    person: Person


def _subject(rng: np.random.Generator) -> _Subject:
    kind = rng.random()
    if kind < 0.35:
        text, person = choose(rng, _PRONOUNS)
        return _Subject(text, person)
    if kind < 0.5:
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
    return f"{_determiner(kind, noun.gender, plural, words, rng)} {words}"


def _object_phrase(rng: np.random.Generator, kind: str, *, negative: bool = False) -> str:
    """An object of `kind`; after a negation, indefinite and partitive articles become "de"."""
    if kind == "person":
        if rng.random() < 0.3:
            return choose(rng, _NAMES)
        return _person_phrase(rng, choose(rng, _PEOPLE), rng.random() < 0.3)
    if kind == "game":
        return choose(rng, _GAMES)
    nouns, adjectives = _OBJECTS[kind]
    noun = choose(rng, nouns)
    countable = bool(noun.plural)
    if countable and rng.random() < 0.3 and not negative:
        count = int(rng.integers(2, 100))
        return _with_adjective(
            rng, f"{number_words(count, noun.gender)} {noun.plural}", noun, True, adjectives
        )
    if kind == "drink" and rng.random() < 0.4:
        return f"{choose(rng, _CONTAINERS)} {_with_adjective(rng, noun.singular, noun, False, adjectives)}"
    plural = countable and rng.random() < 0.35
    kinds: tuple[Determiner, ...] = (
        ("definite", "indefinite", "possessive", "demonstrative") if countable else ("definite", "partitive")
    )
    determiner_kind = choose(rng, kinds)
    words = _with_adjective(rng, noun.plural if plural else noun.singular, noun, plural, adjectives)
    if negative and determiner_kind in ("indefinite", "partitive"):
        return f"de {noun.plural if countable else noun.singular}"
    return f"{_determiner(determiner_kind, noun.gender, plural, words, rng)} {words}"


def _with_adjective(
    rng: np.random.Generator, words: str, noun: _Noun, plural: bool, adjectives: Sequence[Forms]
) -> str:
    if rng.random() < 0.35:
        return f"{words} {_agree(choose(rng, adjectives), noun.gender, plural)}"
    return words


def _verb_group(verb: _Verb, person: Person, tense: Tense, rng: np.random.Generator) -> tuple[str, str]:
    """(the conjugated word that "ne ... pas" surrounds, the rest of the verb group)."""
    index = _PERSON_INDEX[person]
    if tense == "present":
        return verb.present[index], ""
    if tense == "past":
        return _AVOIR[index], verb.participle
    if tense == "near_future":
        return _ALLER[index], verb.infinitive
    return choose(rng, _MODALS)[index], verb.infinitive


def _predicate(rng: np.random.Generator, *, negative: bool) -> tuple[_Verb, str]:
    kind = rng.random()
    if kind < 0.6:
        verb = choose(rng, _TRANSITIVE)
        return verb, _object_phrase(rng, verb.objects, negative=negative)
    if kind < 0.75:
        verb = choose(rng, _DITRANSITIVE)
        return verb, f"{_object_phrase(rng, 'thing', negative=negative)} à {_object_phrase(rng, 'person')}"
    verb = choose(rng, _INTRANSITIVE)
    return verb, choose(rng, _ADVERBS) if rng.random() < 0.5 else ""


def _clause(rng: np.random.Generator, subject: _Subject, tense: Tense, *, negative: bool) -> str:
    verb, rest = _predicate(rng, negative=negative)
    head, tail = _verb_group(verb, subject.person, tense, rng)
    if negative:
        head = f"ne {head} pas"
    return _join(subject.text, head, tail, rest)


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _statement(rng: np.random.Generator) -> str:
    tense: Tense = choose(rng, ("present", "past", "near_future", "modal"))
    core = _clause(rng, _subject(rng), tense, negative=rng.random() < 0.25)
    return with_adjuncts(rng, core, (_PLACES, _TIMES[tense]), end=".")


def _question(rng: np.random.Generator) -> str:
    subject = _subject(rng)
    tense: Tense = choose(rng, ("present", "past", "near_future", "modal"))
    kind = rng.random()
    if kind < 0.2:
        # The passé composé would make the participle agree with the fronted object: keep other tenses.
        tense = choose(rng, ("present", "near_future", "modal"))
        verb = choose(rng, [v for v in _TRANSITIVE if v.objects in ("food", "text", "thing", "container")])
        nouns, _ = _OBJECTS[verb.objects]
        noun = choose(rng, [n for n in nouns if n.plural])
        core = _join(
            f"combien de {noun.plural} est-ce que {subject.text}",
            *_verb_group(verb, subject.person, tense, rng),
        )
    elif kind < 0.35:
        verb = choose(rng, [v for v in _TRANSITIVE if v.objects != "game"])
        asked = "qui est-ce que" if verb.objects == "person" else "qu'est-ce que"
        core = _join(f"{asked} {subject.text}", *_verb_group(verb, subject.person, tense, rng))
    elif kind < 0.55:
        core = f"est-ce que {_clause(rng, subject, tense, negative=False)}"
    elif kind < 0.7:
        core = _clause(rng, subject, tense, negative=rng.random() < 0.3)
    else:
        opening = choose(rng, ("où", "quand", "pourquoi", "comment"))
        core = f"{opening} est-ce que {_clause(rng, subject, tense, negative=False)}"
    return with_adjuncts(rng, core, (_PLACES, _TIMES[tense]), end="?")


def _with_number(rng: np.random.Generator) -> str:
    kind = rng.random()
    if kind < 0.3:
        subject = _subject(rng)
        age = number_words(int(rng.integers(2, 100)))
        return f"{subject.text} {_AVOIR[_PERSON_INDEX[subject.person]]} {age} ans."
    if kind < 0.6:
        vehicle = choose(rng, ("le train", "le bus", "le bateau", "l'avion", "le dernier métro", "le car"))
        hour = int(rng.integers(1, 13))
        clock = f"{number_words(hour, 'f')} {'heure' if hour == 1 else 'heures'}"
        clock = choose(
            rng, (clock, f"{clock} et quart", f"{clock} et demie", f"{clock} moins le quart", "midi")
        )
        verb = choose(rng, ("part", "arrive", "est parti", "est arrivé", "va partir", "s'arrête ici"))
        destination = f" pour {choose(rng, _CITIES)}" if rng.random() < 0.9 else ""
        return f"{vehicle}{destination} {verb} à {clock}."
    nouns, _ = _OBJECTS[choose(rng, ("food", "text", "thing"))]
    noun = choose(rng, [n for n in nouns if n.plural])
    count = number_words(int(rng.integers(2, 100)), noun.gender)
    return f"il {choose(rng, ('y a', 'y avait'))} {count} {noun.plural} {choose(rng, _PLACES)}."


def _weather(rng: np.random.Generator) -> str:
    tense: Tense = choose(rng, ("present", "past", "near_future"))
    adjective = choose(rng, ("beau", "chaud", "froid", "frais", "doux", "mauvais", "humide", "sec"))
    degree = f"{choose(rng, ('très', 'assez', 'vraiment'))} " if rng.random() < 0.4 else ""
    phrases = {
        "present": (
            f"il fait {degree}{adjective}",
            "il pleut",
            "il neige",
            "il y a du vent",
            "il y a du soleil",
        ),
        "past": (f"il a fait {degree}{adjective}", "il a plu", "il a neigé", "il y a eu du brouillard"),
        "near_future": (
            f"il va faire {degree}{adjective}",
            "il va pleuvoir",
            "il va neiger",
            "il va y avoir du vent",
        ),
    }
    first, second = (phrases[tense][i] for i in rng.choice(len(phrases[tense]), 2, replace=False))
    core = _join(choose(rng, _HEARSAY), first)
    if rng.random() < 0.3:
        core = f"{core} {choose(rng, ('et', 'mais'))} {second}"
    return with_adjuncts(rng, core, (_OUTDOORS, _TIMES[tense]), end=".", probability=0.9)


def _description(rng: np.random.Generator) -> str:
    nouns, adjectives = _OBJECTS[choose(rng, ("food", "text", "thing", "show"))]
    noun = choose(rng, [n for n in nouns if n.plural])
    plural = rng.random() < 0.3
    words = noun.plural if plural else noun.singular
    determiner = _determiner(
        choose(rng, ("definite", "possessive", "demonstrative")), noun.gender, plural, words, rng
    )
    be = choose(rng, ("sont", "étaient") if plural else ("est", "était"))
    # Only one-word adjectives take a degree ("très lourd", not "très en bois").
    adjective = _agree(choose(rng, [a for a in adjectives if " " not in a[0]]), noun.gender, plural)
    return f"{determiner} {words} {be} {choose(rng, _DEGREES)} {adjective}."


def _imperative(rng: np.random.Generator) -> str:
    verb = choose(
        rng, [v for v in _TRANSITIVE if v.objects in ("food", "drink", "text", "thing", "container")]
    )
    polite = choose(rng, ("", ", s'il vous plaît"))
    negative = rng.random() < 0.3
    command = f"ne {verb.present[4]} pas" if negative else verb.present[4]
    return f"{command} {_object_phrase(rng, verb.objects, negative=negative)} {choose(rng, _PLACES)}{polite}."


class FrenchGrammar(Grammar):
    code = "fr"
    # espeak-ng's French (France) voice file is "fr"; its language code "fr-fr" is not a voice name.
    espeak_language = "fr"
    caption_lexicon = CaptionLexicon(
        counts={"un": 1, "une": 1, "deux": 2, "trois": 3},
        sizes={word: size for size, table in _SIZES.items() for forms in table for word in forms},
        colours={word: colour for colour, table in _COLOURS.items() for forms in table for word in forms},
        shapes={
            form: shape for shape, (singular, plural, _) in _SHAPES.items() for form in (singular, plural)
        },
        relations={
            phrase.removesuffix("de") + suffix: relation
            for relation, phrases in _RELATIONS.items()
            for phrase in phrases
            for suffix in (("de", "d'") if phrase.endswith(" de") else ("",))
        },
        fillers=frozenset(
            {
                "il y a",
                "on voit",
                "l'image montre",
                "une image de",
                "une image d'",
                "est",
                "sont",
                "se trouve",
                "se trouvent",
                "et",
                *_WHERE,
            }
        ),
    )

    def single(self, mention: Mention, rng: np.random.Generator) -> str:
        template = choose(
            rng,
            (
                "{np}",
                "il y a {np}",
                "{np} {where}",
                "il y a {np} {where}",
                "on voit {np}",
                "l'image montre {np}",
                "une image de {np}",
            ),
        )
        return finish(template.format(np=_noun_phrase(mention, rng), where=choose(rng, _WHERE)))

    def related(
        self, subject: Mention, relation: Relation, landmark: Mention, rng: np.random.Generator
    ) -> str:
        template = choose(
            rng,
            (
                "{a} {rel} {b}",
                "{a} {rel} {b} {where}",
                "il y a {a} {rel} {b}",
                "{a} {est} {rel} {b}",
                "{a} {se_trouve} {rel} {b}",
                "{rel} {b}, il y a {a}",
                "{rel} {b} {se_trouve} {a}",
                "{rel} {b}, on voit {a}",
            ),
        )
        return finish(
            template.format(
                a=_noun_phrase(subject, rng),
                b=_noun_phrase(landmark, rng),
                rel=choose(rng, _RELATIONS[relation]),
                est=_verb_agreeing(subject, "est", "sont"),
                se_trouve=_verb_agreeing(subject, "se trouve", "se trouvent"),
                where=choose(rng, _WHERE),
            )
        )

    def listed(self, mentions: Sequence[Mention], rng: np.random.Generator) -> str:
        phrases = [_noun_phrase(mention, rng) for mention in mentions]
        items = ", ".join(phrases[:-1]) + " et " + phrases[-1]
        template = choose(
            rng, ("{items}", "il y a {items}", "on voit {items}", "l'image montre {items}", "{items} {where}")
        )
        return finish(template.format(items=items, where=choose(rng, _WHERE)))

    def compose_sentence(self, rng: np.random.Generator) -> str:
        maker = choose(
            rng, (_statement,) * 4 + (_question,) * 2 + (_with_number, _weather, _description, _imperative)
        )
        return capitalize_first(finish(maker(rng)))
