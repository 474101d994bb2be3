"""The languages that have a grammar. A new language is a data file data/<code>.yaml with its words and one
module with a `Grammar` subclass holding its rules, listed here."""

from __future__ import annotations

from vgssl.corpus.grammar.base import Grammar
from vgssl.corpus.grammar.en import EnglishGrammar
from vgssl.corpus.grammar.es import SpanishGrammar
from vgssl.corpus.grammar.fr import FrenchGrammar
from vgssl.errors import VgsslError

GRAMMARS: dict[str, type[Grammar]] = {
    grammar.code: grammar for grammar in (EnglishGrammar, FrenchGrammar, SpanishGrammar)
}


class UnknownLanguageError(VgsslError):
    """No grammar exists for the requested language code."""


def get_grammar(code: str) -> Grammar:
    """The grammar of language `code` ("en", "fr", ...)."""
    try:
        return GRAMMARS[code]()
    except KeyError:
        raise UnknownLanguageError(
            f"no grammar for language {code!r}; languages with a grammar: {', '.join(sorted(GRAMMARS))}. "
            "To add one, write src/vgssl/corpus/grammar/data/<code>.yaml and <code>.py and register it in "
            "grammar/registry.py"
        ) from None
