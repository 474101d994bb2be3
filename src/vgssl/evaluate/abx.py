"""Phone ABX (ZeroSpeech 2021 style) through fastabx, per layer × speaker mode × context mode.

Every condition of one layer shares one fastabx `Dataset`: all conditions use the angular distance, and the
in-place L2 normalisation an angular `Score` applies is idempotent, so reusing the dataset gives exactly the
numbers of separate `fastabx.zerospeech_abx` calls while reading the features once.

Before fastabx sees any data, the item file and the features are checked here, so that bad input fails with
our messages: item rows whose feature file is missing, items shorter than one frame, feature files shorter
than an item's offset, non-finite or malformed features.

Subsampling is fastabx's (`max_size_group` A, B, X per cell; `max_x_across` X speakers per (A, B)), applied
to the cells in a canonical order. fastabx 0.9 picks the X speakers from the order in which polars' joins
return the cells, which varies from run to run when a task has no BY condition (across speaker, any context):
one seed gave 9.56 %, 9.72 % and 9.54 % on one set. Sorted cells make one seed give one answer; the numbers
equal `fastabx.zerospeech_abx` whenever no X speaker is dropped, and follow its distribution otherwise.

Item slicing follows fastabx: frame i stands at 0.01 + 0.02·i s and belongs to an item when
onset ≤ time ≤ offset, so an item needs frames ceil(50·onset − 0.5) to floor(50·offset − 0.5) inclusive
(the last one is dropped, as Libri-Light's ABX does, with `librilight_slicing=True` or, when that is None,
FASTABX_WITH_LIBRILIGHT_BUG=1; the result records it). fastabx reads that variable whenever it builds a
Dataset (`item_frontiers` in `Dataset.from_item`), not at import, so `fastabx_slicing` sets it around
that one call and restores it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from importlib.metadata import version
from pathlib import Path

import polars as pl
import torch
from fastabx import Dataset, Score, Subsampler, Task
from tqdm import tqdm

from vgssl import __version__
from vgssl.audio.frames import FRAME_RATE
from vgssl.data.items import PHONE_COLUMNS, ItemFileError, item_labels, read_item_file
from vgssl.errors import BadOptionError, VgsslError
from vgssl.evaluate.features import read_features_card
from vgssl.evaluate.results import (
    AbxResult,
    CellScores,
    ConditionScore,
    ContextMode,
    Conventions,
    LastFrame,
    RunTag,
    SpeakerMode,
)

# (by, across) for each (speaker, context), as ZeroSpeech 2021 and fastabx.zerospeech_abx define them.
ZEROSPEECH_CONDITIONS: dict[tuple[str, str], tuple[list[str], list[str]]] = {
    ("within", "within"): (["prev-phone", "next-phone", "speaker"], []),
    ("within", "any"): (["speaker"], []),
    ("across", "within"): (["prev-phone", "next-phone"], ["speaker"]),
    ("across", "any"): ([], ["speaker"]),
}
_FRAME_RATE = Decimal(FRAME_RATE)
_HALF = Decimal("0.5")
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})?")
_SHOWN = 5
LIBRILIGHT_VARIABLE = "FASTABX_WITH_LIBRILIGHT_BUG"


class MissingFeaturesError(VgsslError):
    """Item rows reference files that have no feature file in the layer directory."""


class FeaturesTooShortError(VgsslError):
    """A feature file has fewer frames than an item's offset needs."""


class NonFiniteFeaturesError(VgsslError):
    """A feature file holds NaN or infinite values."""


class BadFeaturesError(VgsslError):
    """A feature file is not a 2-D float tensor, or its dimension differs from the other files'."""


@dataclass(frozen=True)
class FrameNeed:
    frames: int  # the file must have at least this many frames
    offset: str  # the item offset (seconds, as written in the item file) that needs them


class CanonicalSubsampler(Subsampler):
    """fastabx's Subsampler, fed the cells sorted by their conditions so that its draws are reproducible."""

    def __call__(self, lazy_cells: pl.LazyFrame, *, with_across: bool) -> pl.LazyFrame:
        conditions = [name for name, dtype in lazy_cells.collect_schema().items() if dtype != pl.List]
        return super().__call__(lazy_cells.sort(conditions), with_across=with_across)


def last_frame_convention(librilight: bool | None = None) -> LastFrame:
    """Libri-Light's rule (last frame dropped) or the exact one (kept); `None`: as the environment says."""
    librilight = os.environ.get(LIBRILIGHT_VARIABLE) == "1" if librilight is None else librilight
    return "dropped (Libri-Light bug)" if librilight else "kept"


@contextlib.contextmanager
def fastabx_slicing(librilight: bool | None) -> Iterator[None]:
    """fastabx slices the Libri-Light way (True) or exactly (False) inside the block; `None`: unchanged."""
    previous = os.environ.get(LIBRILIGHT_VARIABLE)
    if librilight is not None:
        os.environ[LIBRILIGHT_VARIABLE] = "1" if librilight else "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(LIBRILIGHT_VARIABLE, None)
        else:
            os.environ[LIBRILIGHT_VARIABLE] = previous


def item_frame_span(onset: str, offset: str, *, librilight: bool | None = None) -> tuple[int, int]:
    """[start, end[ frame indices of an item at 50 Hz, exactly as fastabx slices it."""
    start = int((Decimal(onset) * _FRAME_RATE - _HALF).to_integral_value(ROUND_CEILING))
    end = int((Decimal(offset) * _FRAME_RATE - _HALF).to_integral_value(ROUND_FLOOR))
    return start, end + (1 if last_frame_convention(librilight) == "kept" else 0)


def read_item_needs(
    item_file: Path, *, columns: Sequence[str], librilight: bool | None = None
) -> dict[str, FrameNeed]:
    """Check an item file's header and items; return, per file key, the frames its items need."""
    items = read_item_file(item_file, columns=columns)
    file_at, onset_at, offset_at = (items.header.index(name) for name in ("#file", "onset", "offset"))
    needs: dict[str, FrameNeed] = {}
    empty: list[str] = []
    for number, fields in items.rows():
        key, onset, offset = fields[file_at], fields[onset_at], fields[offset_at]
        try:
            start, end = item_frame_span(onset, offset, librilight=librilight)
        except ArithmeticError:
            raise ItemFileError(
                f"{item_file}:{number}: onset/offset {onset!r} {offset!r} are not numbers"
            ) from None
        if start < 0:
            raise ItemFileError(f"{item_file}:{number}: negative onset {onset}")
        if end <= start:
            empty.append(f"line {number} ({key} {onset}-{offset})")
        if key not in needs or end > needs[key].frames:
            needs[key] = FrameNeed(end, offset)
    if empty:
        raise ItemFileError(
            f"{item_file}: {len(empty)} item(s) cover no 50 Hz frame (shorter than 20 ms around no frame "
            f"time 0.01 + 0.02 i s), e.g. {', '.join(empty[:_SHOWN])}; remove them from the item file"
        )
    if not needs:
        raise ItemFileError(f"{item_file} has a header but no items")
    return needs


def feature_keys(layer_dir: Path) -> set[str]:
    """File keys in a layer directory, named the way fastabx names them (relative path, no extension)."""
    return {path.relative_to(layer_dir).as_posix().removesuffix(".pt") for path in layer_dir.rglob("*.pt")}


def check_features_present(needs: dict[str, FrameNeed], layer_dir: Path, item_file: Path) -> None:
    missing = sorted(set(needs) - feature_keys(layer_dir))
    if missing:
        raise MissingFeaturesError(
            f"{len(missing)} of {len(needs)} files named in {item_file} have no feature file in {layer_dir}, "
            f"e.g. {', '.join(missing[:_SHOWN])}; run `vgssl extract` on the same item file first"
        )


class CheckedFeatureLoader:
    """fastabx `feature_maker` that checks each file (shape, finiteness, length) before fastabx uses it."""

    def __init__(self, layer_dir: Path, needs: dict[str, FrameNeed]) -> None:
        self.layer_dir = layer_dir
        self.needs = needs
        self.dim: int | None = None
        self.first: Path | None = None  # the file `dim` was taken from

    def __call__(self, path: str | os.PathLike[str]) -> torch.Tensor:
        path = Path(path)
        features = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or not features.is_floating_point():
            found = (
                f"shape {tuple(features.shape)} {features.dtype}"
                if isinstance(features, torch.Tensor)
                else type(features).__name__
            )
            raise BadFeaturesError(f"{path} must hold a 2-D float (T, D) tensor, found {found}")
        if self.dim is None:
            self.dim, self.first = features.shape[1], path
        elif features.shape[1] != self.dim:
            raise self._odd_one_out(path, features.shape[1])
        if not torch.isfinite(features).all():
            raise NonFiniteFeaturesError(
                f"{path} holds NaN or infinite values; re-extract it or fix the model"
            )
        need = self.needs[path.relative_to(self.layer_dir).as_posix().removesuffix(".pt")]
        if features.shape[0] < need.frames:
            raise FeaturesTooShortError(
                f"{path} has {features.shape[0]} frames ({features.shape[0] / FRAME_RATE:.2f} s at 50 Hz) "
                f"but an item ends at {need.offset} s, which needs {need.frames} frames; were the features "
                f"extracted from the same audio, at 50 Hz?"
            )
        return features

    def _odd_one_out(self, path: Path, dim: int) -> BadFeaturesError:
        """Two files disagree: count the dimensions of (up to) 50 files and name the minority's."""
        counts: dict[int, list[Path]] = {}
        for other in sorted(self.layer_dir.rglob("*.pt"))[:50]:
            tensor = torch.load(other, map_location="cpu", weights_only=True)
            if isinstance(tensor, torch.Tensor) and tensor.ndim == 2:
                counts.setdefault(tensor.shape[1], []).append(other)
        usual = max(counts, key=lambda d: len(counts[d]), default=self.dim)
        odd, odd_dim = (path, dim) if dim != usual else (self.first, self.dim)
        return BadFeaturesError(
            f"{odd} has dimension {odd_dim}, but the other files of {self.layer_dir} have {usual} "
            f"({len(counts.get(usual, []))} of the {sum(map(len, counts.values()))} checked); re-extract it"
        )


def layer_dirs(features_dir: Path) -> dict[int, Path]:
    """The layer subdirectories of an extraction directory: those its features.json lists (`vgssl extract`
    writes it; a directory not listed there is not this model's), else every integer-named subdirectory."""
    from vgssl.evaluate.features import read_features_card

    if not features_dir.is_dir():
        raise BadOptionError(f"FEATURES {features_dir} is not a directory; make it with `vgssl extract`")
    card = read_features_card(features_dir)
    if card is not None and "layers" in card:
        missing = [layer for layer in card["layers"] if not (features_dir / str(layer)).is_dir()]
        if missing:
            raise BadOptionError(
                f"{features_dir}/features.json lists layer(s) {missing} that have no directory; rerun "
                "`vgssl extract` into it"
            )
        return {int(layer): features_dir / str(layer) for layer in sorted(card["layers"])}
    found = {int(p.name): p for p in features_dir.iterdir() if p.is_dir() and p.name.isdigit()}
    if not found:
        raise BadOptionError(
            f"{features_dir} has no layer subdirectories (0/, 1/, ...); "
            f"give the OUT directory of `vgssl extract`"
        )
    return dict(sorted(found.items()))


def requested_layer_dirs(features_dir: Path, layers: Sequence[int]) -> dict[int, Path]:
    """`layer_dirs`, refusing any of `layers` the extraction directory lacks."""
    dirs = layer_dirs(features_dir)
    missing = [layer for layer in layers if layer not in dirs]
    if missing:
        raise BadOptionError(f"layer(s) {missing} not in {features_dir}; it has layers {list(dirs)}")
    return dirs


def load_checked_dataset(
    item_file: Path,
    layer_dir: Path,
    *,
    columns: Sequence[str],
    device: torch.device,
    librilight: bool | None = None,
) -> Dataset:
    """A fastabx Dataset for one layer, after our own checks of the item file and the features."""
    needs = read_item_needs(item_file, columns=columns, librilight=librilight)
    check_features_present(needs, layer_dir, item_file)
    loader = CheckedFeatureLoader(layer_dir, needs)
    with fastabx_slicing(librilight):
        return Dataset.from_item(
            item_file, layer_dir, FRAME_RATE, feature_maker=loader, device=device, progress=False
        )


def collapsed_cells(score: Score, *, on: str, levels: Sequence[tuple[str, ...] | str]) -> CellScores:
    """Cells after collapsing `levels`: one row per (A label, B label), their mean is the ABX error."""
    details = score.details(levels=levels).sort(on, f"{on}_b")
    return CellScores(
        a=[str(v) for v in details[on]],
        b=[str(v) for v in details[f"{on}_b"]],
        error=[round(100.0 * float(v), 6) for v in details["score"]],
        triplets=[int(v) for v in details["size"]],
    )


def phone_abx_condition(
    dataset: Dataset,
    *,
    layer: int,
    speaker: SpeakerMode,
    context: ContextMode,
    max_size_group: int | None,
    max_x_across: int | None,
    seed: int,
) -> ConditionScore:
    by, across = ZEROSPEECH_CONDITIONS[(speaker, context)]
    subsampler = CanonicalSubsampler(max_size_group, max_x_across, seed)
    task = Task(dataset, on="#phone", by=by, across=across, subsampler=subsampler)
    score = Score(task, "angular", progress=False)
    levels = ([("next-phone", "prev-phone")] if context == "within" else []) + ["speaker"]
    return ConditionScore(
        layer=layer,
        speaker=speaker,
        context=context,
        error=100.0 * score.collapse(levels=levels),
        cells=collapsed_cells(score, on="#phone", levels=levels),
    )


def infer_language(item_file: Path) -> str | None:
    """The language in a corpus item file's name (`en_test_triphone.item`, `en.phoneme.item`, `en/x.item`)."""
    tokens = re.split(r"[._]", item_file.stem)
    if len(tokens) > 1 and _LANGUAGE_CODE.fullmatch(tokens[0]):
        return tokens[0]
    if _LANGUAGE_CODE.fullmatch(item_file.parent.name):
        return item_file.parent.name
    return None


def run_phone_abx(
    features_dir: Path,
    item_file: Path,
    *,
    layers: Sequence[int],
    speakers: Sequence[SpeakerMode],
    contexts: Sequence[ContextMode],
    max_size_group: int | None,
    max_x_across: int | None,
    seed: int,
    device: torch.device,
    language: str | None = None,
    run: RunTag | None = None,
    progress: bool = True,
    librilight_slicing: bool | None = None,
) -> AbxResult:
    """Phone ABX error (%) for every layer × speaker × context, with the collapsed cells of each;
    `librilight_slicing` drops each item's last frame (None: FASTABX_WITH_LIBRILIGHT_BUG decides)."""
    dirs = requested_layer_dirs(features_dir, layers)
    scores = []
    bar = tqdm(total=len(layers) * len(speakers) * len(contexts), desc="phone ABX", disable=not progress)
    for layer in layers:
        dataset = load_checked_dataset(
            item_file, dirs[layer], columns=PHONE_COLUMNS, device=device, librilight=librilight_slicing
        )
        for speaker in speakers:
            for context in contexts:
                scores.append(
                    phone_abx_condition(
                        dataset, layer=layer, speaker=speaker, context=context,
                        max_size_group=max_size_group, max_x_across=max_x_across, seed=seed,
                    )
                )  # fmt: skip
                bar.update()
    bar.close()
    return phone_abx_result(
        features_dir, item_file, scores=scores, language=language, run=run,
        max_size_group=max_size_group, max_x_across=max_x_across, seed=seed,
        collapse="mean over contexts (within-context only), then over speakers, then over phone pairs",
        librilight_slicing=librilight_slicing,
    )  # fmt: skip


def phone_abx_result(
    features_dir: Path,
    item_file: Path,
    *,
    scores: list[ConditionScore],
    language: str | None,
    run: RunTag | None,
    max_size_group: int | None,
    max_x_across: int | None,
    seed: int,
    collapse: str,
    librilight_slicing: bool | None = None,
) -> AbxResult:
    """The result file's content for phone ABX `scores` of the features in `features_dir`."""
    card = read_features_card(features_dir) or {}
    return AbxResult(
        task="phone",
        features=str(features_dir.resolve()),
        item_file=str(item_file.resolve()),
        language=language or (run.eval_language if run else None) or infer_language(item_file),
        labels=item_labels(item_file, "#phone"),
        model=card.get("model", {}),
        conventions=Conventions(
            last_frame=last_frame_convention(librilight_slicing),
            alignment="dtw",
            max_size_group=max_size_group,
            max_x_across=max_x_across,
            seed=seed,
            collapse=collapse,
            fastabx_version=version("fastabx"),
        ),
        run=run,
        scores=scores,
        vgssl_version=__version__,
    )
