"""Evaluating one model of the study: features, phone ABX per language and layer, language ABX, retrieval.

A model is a trained run (its run directory: best checkpoint, else last) or a baseline (`mfcc`, `mfcc-raw`,
`fbank`, or `random-init`: the study's architecture with the initial weights of the first seed's runs).
Features cover the test set of every language the results need: the evaluated languages for phone ABX,
every language of the language-ABX item file for language ABX; and the valid set of every evaluated language
that has valid items, whose phone ABX chooses the layers the report gives test errors for. A valid set too
small for a condition (fastabx finds no triplet) leaves that condition out of the valid result, and the
report falls back to the test items for it. Each result file is written atomically and skipped when it
exists, so an interrupted evaluation resumes; features are deleted once the results are written unless
`evaluation.keep_features` is set.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgssl.atomic import atomic_torch_save, atomic_write_json
from vgssl.errors import BadOptionError
from vgssl.evaluate.results import AbxResult, ContextMode, RunTag, SpeakerMode, write_result
from vgssl.study.config import EvaluationSection
from vgssl.study.corpus import StudyCorpus
from vgssl.study.layout import ModelPaths

if TYPE_CHECKING:
    from vgssl.evaluate.features import FeatureModel

RANDOM_INIT_CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class ModelToEvaluate:
    spec: str  # what `load_feature_model` takes: a baseline name, a checkpoint or a run directory
    paths: ModelPaths
    eval_languages: tuple[str, ...]  # phone ABX languages, and the caption languages of retrieval
    tag: RunTag  # eval_language is filled per result
    image_features: Path | None = None  # precomputed image features of a VGS+ model that reads them

    def pending(self, corpus: StudyCorpus, settings: EvaluationSection) -> list[Path]:
        """Result files that do not exist yet (phone ABX per language on test, then on valid where the
        corpus has valid items, then language ABX)."""
        wanted = [self.paths.phone_abx(language) for language in self.eval_languages]
        wanted += [
            self.paths.valid_phone_abx(language)
            for language in self.eval_languages
            if corpus.layer_choice_items(language) is not None
        ]
        if settings.language_abx and corpus.language_items.is_file():
            wanted.append(self.paths.language_abx)
        return [path for path in wanted if not path.is_file()]


def write_random_init(model_config: dict[str, Any], *, seed: int, path: Path) -> None:
    """The study's architecture with the weights a run of `seed` starts from, as a vgssl checkpoint.

    The trainer seeds torch with the run's seed and then builds the model, so this is that very model
    before its first step (for SSL-A runs; VGS+ runs build their audio encoder first, from the same seed).
    """
    import torch

    from vgssl.model.config import ModelConfig
    from vgssl.model.pretrained import CHECKPOINT_FORMAT
    from vgssl.model.wav2vec2 import Wav2Vec2

    config = ModelConfig.model_validate(model_config)
    torch.manual_seed(seed)
    model = Wav2Vec2(config)
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "model_config": config.model_dump(mode="json"),
        "model": model.state_dict(),
    }
    atomic_torch_save(checkpoint, path)


def evaluate_model(
    model: ModelToEvaluate, corpus: StudyCorpus, settings: EvaluationSection, *, progress: bool
) -> list[Path]:
    """Write every pending result file of `model`; return the files written."""
    from vgssl.evaluate.abx import run_phone_abx
    from vgssl.evaluate.features import load_feature_model, resolve_device
    from vgssl.evaluate.language_abx import run_language_abx

    pending = model.pending(corpus, settings)
    if not pending:
        return []
    device = resolve_device(settings.device)
    features = model.paths.features
    phone_languages = [lang for lang in model.eval_languages if model.paths.phone_abx(lang) in pending]
    valid_languages = [lang for lang in model.eval_languages if model.paths.valid_phone_abx(lang) in pending]
    needs_language_abx = model.paths.language_abx in pending
    feature_model = load_feature_model(model.spec)
    layers = _layers(settings, feature_model.num_layers())
    # Language ABX compares segments of every corpus language, so it needs all their test sets.
    test_sets = [*phone_languages, *(corpus.languages if needs_language_abx else ())]
    sets = [(language, "test") for language in dict.fromkeys(test_sets)]
    sets += [(language, "valid") for language in valid_languages]
    _extract(feature_model, corpus, sets, features, layers, settings, progress)
    abx_options = {
        "layers": layers,
        "max_size_group": settings.max_size_group,
        "max_x_across": settings.max_x_across,
        "seed": settings.seed,
        "device": device,
        "progress": progress,
    }
    # Libri-Light's slicing (an item's last frame dropped) for phone ABX only: language ABX pools segments.
    phone_options = {**abx_options, "librilight_slicing": settings.slicing == "librilight"}
    for language in phone_languages:
        result = run_phone_abx(
            features,
            corpus.phone_items(language),
            speakers=settings.speakers,
            contexts=settings.contexts,
            language=language,
            run=model.tag.model_copy(update={"eval_language": language}),
            **phone_options,
        )
        write_result(result, model.paths.phone_abx(language))
    for language in valid_languages:
        item_file = corpus.layer_choice_items(language)
        assert item_file is not None  # pending() asks for a valid result only where there are valid items
        result = valid_phone_abx(
            features,
            item_file,
            speakers=settings.speakers,
            contexts=settings.contexts,
            language=language,
            run=model.tag.model_copy(update={"eval_language": language}),
            **phone_options,
        )
        write_result(result, model.paths.valid_phone_abx(language))
    if needs_language_abx:
        result = run_language_abx(features, corpus.language_items, run=model.tag, **abx_options)
        write_result(result, model.paths.language_abx)
    if not settings.keep_features:
        shutil.rmtree(features, ignore_errors=True)
    return pending


def _layers(settings: EvaluationSection, available: int) -> list[int]:
    if settings.layers == "all":
        return list(range(available))
    if available == 1:  # a baseline (MFCC) has only its own features, whatever layers the models are read at
        return [0]
    missing = [layer for layer in settings.layers if layer >= available]
    if missing:
        raise BadOptionError(
            f"evaluation.layers {settings.layers}: the model has hidden states 0 … {available - 1} only"
        )
    return sorted(settings.layers)


def valid_phone_abx(
    features: Path,
    item_file: Path,
    *,
    speakers: Sequence[SpeakerMode],
    contexts: Sequence[ContextMode],
    **options: Any,
) -> AbxResult:
    """Phone ABX on valid items, leaving out each condition in which the items have no ABX triplet.

    Valid sets are small (the built-in corpus's valid speech spreads a few minutes over all train speakers),
    and a within-context condition may find no A and B of one speaker in one context; the result then holds
    the other conditions, or no score at all, and the report chooses those layers on the test items.
    """
    from fastabx import EmptyScoreError, EmptyTaskError

    from vgssl.evaluate.abx import run_phone_abx

    empty = (EmptyTaskError, EmptyScoreError)
    try:
        return run_phone_abx(features, item_file, speakers=speakers, contexts=contexts, **options)
    except empty:
        pass
    results = []
    for speaker in speakers:
        for context in contexts:
            with contextlib.suppress(*empty):
                results.append(
                    run_phone_abx(features, item_file, speakers=[speaker], contexts=[context], **options)
                )
    if results:
        return results[0].model_copy(update={"scores": [s for result in results for s in result.scores]})
    return _scoreless_result(features, item_file, **options)


def _scoreless_result(
    features: Path,
    item_file: Path,
    *,
    max_size_group: int | None,
    max_x_across: int | None,
    seed: int,
    language: str | None = None,
    run: RunTag | None = None,
    librilight_slicing: bool | None = None,
    **_: Any,
) -> AbxResult:
    """A phone ABX result without scores: the items gave no triplet in any condition (kept, so a resumed
    evaluation does not compute it again)."""
    from vgssl.evaluate.abx import phone_abx_result

    return phone_abx_result(
        features, item_file, scores=[], language=language, run=run, max_size_group=max_size_group,
        max_x_across=max_x_across, seed=seed, collapse="none: no condition has an ABX triplet on these items",
        librilight_slicing=librilight_slicing,
    )  # fmt: skip


def _extract(
    feature_model: FeatureModel,
    corpus: StudyCorpus,
    sets: Sequence[tuple[str, str]],
    out: Path,
    layers: list[int],
    settings: EvaluationSection,
    progress: bool,
) -> None:
    """Features of the (language, split) sets, with the features.json card that ABX results quote."""
    from vgssl.data.manifest import read_manifest
    from vgssl.evaluate.features import Utterance, extract_features, features_card, resolve_device

    utterances = []
    for language, split in sets:
        manifest = read_manifest(corpus.manifest(language, split))
        utterances += [Utterance(e.key, manifest.audio_path(e), e.num_samples) for e in manifest.entries]
    atomic_write_json(
        out / "features.json", features_card(feature_model, layers=layers, source=corpus.path / "manifests")
    )
    extract_features(
        feature_model,
        utterances,
        out,
        layers=layers,
        overwrite=False,
        batch_seconds=settings.batch_seconds,
        device=resolve_device(settings.device),
        progress=progress,
    )


def evaluate_retrieval(model: ModelToEvaluate, corpus: StudyCorpus, *, device: str) -> None:
    """`vgssl retrieval` of a VGS+ run on the corpus's test captions of its languages, quietly."""
    from vgssl.evaluate import retrieval_command

    parser = argparse.ArgumentParser()
    retrieval_command.add_arguments(parser)
    options = [model.spec, str(corpus.captions("test")), "--out", str(model.paths.retrieval)]
    options += ["--languages", ",".join(model.eval_languages), "--device", device, "--overwrite"]
    if model.image_features is not None:
        options += ["--image-features", str(model.image_features)]
    with contextlib.redirect_stdout(io.StringIO()):  # its table repeats what retrieval.json holds
        retrieval_command.run(parser.parse_args(options))
