"""Language ABX: can a representation tell which language a speech segment is in?

The item file has the columns `#file onset offset #language speaker length`: one row per segment (a word or
a multi-word span), `length` being a duration bin. Each segment's frames are mean-pooled into one vector, and
fastabx scores the task ON `#language`, BY `length`, ACROSS `speaker`: A and X share a language, B has the
other one; A and B come from one speaker and X from another, and all three fall in the same duration bin.

How content is controlled, as far as a two-language corpus allows:
* duration: A, B and X lie in the same `length` bin, so duration cannot give the language away;
* speaker: X's speaker differs from A's and B's, so the voice cannot give it away either (every corpus
  speaker speaks every language, so both languages exist for each speaker);
* lexical content: A, B and X are different segments, so X never matches A word for word; words differ
  across languages by nature, which is the language information the task is meant to measure;
* temporal structure is removed by mean pooling: the score reflects what the average frame encodes.

Lower error = more language information. Chance is 50 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import torch
from fastabx import Score, Task, pool_dataset
from tqdm import tqdm

from vgssl import __version__
from vgssl.data.items import LANGUAGE_COLUMNS, item_labels
from vgssl.evaluate.abx import (
    CanonicalSubsampler,
    collapsed_cells,
    last_frame_convention,
    load_checked_dataset,
    requested_layer_dirs,
)
from vgssl.evaluate.features import read_features_card
from vgssl.evaluate.results import AbxResult, ConditionScore, Conventions, RunTag

CONTENT_CONTROL = (
    "A, B and X are different segments in the same duration bin (by=length); X is spoken by a different "
    "speaker than A and B (across=speaker); segments are mean-pooled, so no alignment is involved"
)
LEVELS = ["speaker", "length"]  # average over speakers, then duration bins, then language pairs


def language_abx_layer(
    item_file: Path,
    layer_dir: Path,
    *,
    layer: int,
    max_size_group: int | None,
    max_x_across: int | None,
    seed: int,
    device: torch.device,
) -> ConditionScore:

    dataset = load_checked_dataset(item_file, layer_dir, columns=LANGUAGE_COLUMNS, device=device)
    pooled = pool_dataset(dataset, "mean")
    task = Task(
        pooled,
        on="#language",
        by=["length"],
        across=["speaker"],
        subsampler=CanonicalSubsampler(max_size_group, max_x_across, seed),
    )
    score = Score(task, "angular", progress=False)
    return ConditionScore(
        layer=layer,
        speaker="across",
        context=None,
        error=100.0 * score.collapse(levels=LEVELS),
        cells=collapsed_cells(score, on="#language", levels=LEVELS),
    )


def run_language_abx(
    features_dir: Path,
    item_file: Path,
    *,
    layers: Sequence[int],
    max_size_group: int | None,
    max_x_across: int | None,
    seed: int,
    device: torch.device,
    run: RunTag | None = None,
    progress: bool = True,
) -> AbxResult:
    """Language ABX error (%) for every layer, with its per-language-pair cells."""
    dirs = requested_layer_dirs(features_dir, layers)
    scores = [
        language_abx_layer(
            item_file, dirs[layer], layer=layer, max_size_group=max_size_group,
            max_x_across=max_x_across, seed=seed, device=device,
        )
        for layer in tqdm(layers, desc="language ABX", disable=not progress)
    ]  # fmt: skip
    card = read_features_card(features_dir) or {}
    return AbxResult(
        task="language",
        features=str(features_dir.resolve()),
        item_file=str(item_file.resolve()),
        language=None,
        labels=item_labels(item_file, "#language"),
        model=card.get("model", {}),
        conventions=Conventions(
            last_frame=last_frame_convention(),
            alignment="none (segments are mean-pooled)",
            max_size_group=max_size_group,
            max_x_across=max_x_across,
            seed=seed,
            collapse="mean over speakers, then over duration bins, then over language pairs",
            fastabx_version=version("fastabx"),
        ),
        content_control=CONTENT_CONTROL,
        run=run,
        scores=scores,
        vgssl_version=__version__,
    )
