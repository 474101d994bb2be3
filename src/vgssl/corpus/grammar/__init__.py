"""Per-language grammars of the synthetic corpus: scene captions and everyday sentences."""

from vgssl.corpus.grammar.base import CaptionParseError, Grammar
from vgssl.corpus.grammar.registry import GRAMMARS, UnknownLanguageError, get_grammar

__all__ = ["GRAMMARS", "CaptionParseError", "Grammar", "UnknownLanguageError", "get_grammar"]
