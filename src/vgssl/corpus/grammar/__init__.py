"""Per-language grammars of the synthetic corpus: scene captions and everyday sentences."""

from vgssl.corpus.grammar.base import Grammar
from vgssl.corpus.grammar.captions import CaptionParseError
from vgssl.corpus.grammar.registry import GRAMMARS, UnknownLanguageError, get_grammar

__all__ = ["GRAMMARS", "CaptionParseError", "Grammar", "UnknownLanguageError", "get_grammar"]
