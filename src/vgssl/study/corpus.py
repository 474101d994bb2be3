"""The study's one shared corpus: found, checked against the config's languages, built when missing.

A corpus is a directory in the built-in layout (README, `vgssl synth`): `manifests/{lang}_{split}.tsv`,
`items/{lang}_test_triphone.item`, `items/test_language.item`, `captions_{split}.json`. A built-in corpus has
a card (`corpus.json`) that lists its languages; real data written by `vgssl prepare` has a prepared card
(`vgssl.prepare.card`), and data arranged by hand has none: the languages of both are those with a training
manifest.

Layers are chosen on valid items, never on the test items: per language, the study config's
`corpus.valid_items` file if it names one (real data: e.g. a ZeroSpeech dev item file), else the corpus's
`items/{lang}_valid_triphone.item`. Their `#file` keys are audio of `manifests/{lang}_valid.tsv`. A language
with neither has its layers chosen on the test items, and the report says so.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vgssl.audio.frames import SAMPLE_RATE
from vgssl.corpus.card import CARD_NAME, read_card
from vgssl.corpus.spec import CorpusSpec, make_spec
from vgssl.data.items import LANGUAGE_ITEM_FILE, has_items, item_keys, phone_item_file
from vgssl.prepare.card import PREPARED_FORMAT, read_prepared_card
from vgssl.study.config import StudyFile


@dataclass(frozen=True)
class StudyCorpus:
    path: Path
    languages: tuple[str, ...]  # what the corpus has, or will have once built
    card: dict[str, Any] | None  # None for real data without a card, or before the build
    build_spec: CorpusSpec | None = None  # set while the study still has to build it
    valid_items: Mapping[str, Path] = field(default_factory=dict)  # the config's corpus.valid_items

    def manifest(self, language: str, split: str) -> Path:
        return self.path / "manifests" / f"{language}_{split}.tsv"

    def phone_items(self, language: str) -> Path:
        return self.path / "items" / phone_item_file(language, "test", "triphone")

    def valid_phone_items(self, language: str) -> Path:
        """Where the items that choose the layers of `language` are (the file may not exist)."""
        return self.valid_items.get(language) or self.path / "items" / phone_item_file(
            language, "valid", "triphone"
        )

    def layer_choice_items(self, language: str) -> Path | None:
        """The valid item file of `language` if it exists and holds items; None: layers chosen on test."""
        path = self.valid_phone_items(language)
        return path if has_items(path) else None

    @property
    def language_items(self) -> Path:
        return self.path / "items" / LANGUAGE_ITEM_FILE

    @property
    def image_features(self) -> Path:
        """Features of every image from the frozen pretrained image encoder (`vgssl synth` writes them)."""
        return self.path / "image_features"

    def captions(self, split: str) -> Path:
        return self.path / f"captions_{split}.json"


def configured_valid_items(study: StudyFile) -> dict[str, Path]:
    """The config's `corpus.valid_items` (language -> item file), relative paths against the config's folder.

    Without it, layers are chosen on the corpus's own valid items.
    """
    configured = study.config.corpus.valid_items
    base = study.path.parent
    return {
        str(language): Path(item) if Path(item).is_absolute() else (base / item).absolute()
        for language, item in configured.items()
    }


def locate_corpus(study: StudyFile, out: Path) -> StudyCorpus:
    """Where the corpus is and which languages it has; nothing is built or written."""
    section = study.config.corpus
    path = section.path or (out / "corpus").absolute()
    valid_items = configured_valid_items(study)
    prepared = read_prepared_card(path) if _has_prepared_card(path) else None
    if prepared is not None:  # real data written by `vgssl prepare`: its languages are its train manifests
        return StudyCorpus(path, tuple(prepared["languages"]), None, valid_items=valid_items)
    if (path / CARD_NAME).is_file():
        card = read_card(path)
        return StudyCorpus(path, tuple(card["languages"]), card, valid_items=valid_items)
    if section.synth is not None:
        if path.is_dir() and any(path.iterdir()):
            message = (
                f"{path} exists but has no {CARD_NAME}, so it is not a finished built-in corpus; delete it "
                "to let the study build one there, or set corpus.synth: null to use it as data arranged in "
                "the built-in layout"
            )
            raise study.fail([study.problem(("corpus", "path"), message)])
        spec = make_spec(**section.synth)
        return StudyCorpus(path, spec.languages, None, build_spec=spec, valid_items=valid_items)
    if not path.is_dir():
        message = f"{path} does not exist, and corpus.synth is null (never build)"
        raise study.fail([study.problem(("corpus", "path"), message)])
    languages = sorted(p.name.removesuffix("_train.tsv") for p in (path / "manifests").glob("*_train.tsv"))
    return StudyCorpus(path, tuple(languages), None, valid_items=valid_items)


def _has_prepared_card(path: Path) -> bool:
    try:
        return json.loads((path / CARD_NAME).read_text(encoding="utf-8")).get("format") == PREPARED_FORMAT
    except (OSError, ValueError):
        return False


def study_languages(study: StudyFile, corpus: StudyCorpus) -> tuple[str, ...]:
    """The config's languages (default: the corpus's), each checked to be in the corpus with its files."""
    languages = tuple(study.config.languages or corpus.languages)
    problems = [
        study.problem(("languages", index), _not_in_corpus(language, corpus))
        for index, language in enumerate(study.config.languages or [])
        if language not in corpus.languages
    ]
    if not languages:
        problems.append(study.problem(("corpus", "path"), f"{corpus.path} has no manifests/<lang>_train.tsv"))
    if corpus.build_spec is None:  # an existing corpus: are the files of each language there?
        for language in [language for language in languages if language in corpus.languages]:
            needed = [corpus.manifest(language, "train"), corpus.manifest(language, "test")]
            problems += [
                study.problem(("corpus", "path"), f"{language}: {path} is missing")
                for path in [*needed, corpus.phone_items(language)]
                if not path.is_file()
            ]
    problems += _valid_items_problems(study, corpus, languages)
    if problems:
        raise study.fail(problems)
    return languages


def _valid_items_problems(study: StudyFile, corpus: StudyCorpus, languages: tuple[str, ...]) -> list[str]:
    """The config's valid item files: of study languages, existing, with items on the valid audio."""
    from vgssl.data.manifest import read_manifest

    problems = []
    for language, item in corpus.valid_items.items():
        where = ("corpus", "valid_items", language)
        if language not in languages:
            problems.append(study.problem(where, f"{language} is not a language of the study"))
        elif not has_items(item):
            problems.append(study.problem(where, f"{item} does not exist or holds no item"))
        elif corpus.build_spec is None:
            manifest = corpus.manifest(language, "valid")
            if not manifest.is_file():
                message = f"{manifest} is missing: the valid items' audio must be in that manifest"
                problems.append(study.problem(where, message))
                continue
            keys = {entry.key for entry in read_manifest(manifest).entries}
            unknown = sorted(item_keys(item) - keys)
            if unknown:
                message = (
                    f"{len(unknown)} file(s) of {item} are not in {manifest}, e.g. {', '.join(unknown[:3])}; "
                    "#file must be the audio path relative to the manifest's root, without extension"
                )
                problems.append(study.problem(where, message))
    return problems


def _not_in_corpus(language: str, corpus: StudyCorpus) -> str:
    has = ", ".join(corpus.languages) or "no language"
    where = f"language {language!r} is not in the corpus {corpus.path}"
    if corpus.build_spec is not None:
        return f"{where} (it will have {has}); add it to corpus.synth.languages"
    return f"{where} (it has {has}); use another corpus or remove the language"


def build_if_missing(corpus: StudyCorpus, *, workers: int, progress: bool) -> StudyCorpus:
    """Build the corpus when the study must; return it with its card."""
    if corpus.build_spec is None:
        return corpus
    from vgssl.corpus.build import build_corpus

    card = build_corpus(
        corpus.build_spec,
        corpus.path,
        workers=workers,
        command=f"vgssl study (corpus.synth: {corpus.build_spec.model_dump(exclude_defaults=True)})",
        progress=progress,
        log=lambda message: print(message, file=sys.stderr),
    )
    return replace(corpus, languages=tuple(card["languages"]), card=card, build_spec=None)


def train_hours(corpus: StudyCorpus, languages: tuple[str, ...], *, min_seconds: float) -> dict[str, float]:
    """Training speech per language in hours, counting only what the trainer keeps (≥ `min_seconds`)."""
    from vgssl.train.config import ManifestSource
    from vgssl.train.data import load_split

    split = load_split(
        [ManifestSource(manifest=corpus.manifest(language, "train")) for language in languages],
        min_seconds=min_seconds,
        sample_rate=SAMPLE_RATE,
        split="train",
    )
    return {
        language: sum(u.num_samples for u in split.pool.get(language, [])) / SAMPLE_RATE / 3600
        for language in languages
    }
