import csv
import json
from pathlib import Path

import fastabx
import numpy as np
import polars as pl
import pytest
import torch

from vgssl.cli import main
from vgssl.data.items import ItemFileError
from vgssl.evaluate.abx import (
    CanonicalSubsampler,
    FeaturesTooShortError,
    MissingFeaturesError,
    NonFiniteFeaturesError,
    infer_language,
    run_phone_abx,
)
from vgssl.evaluate.results import RunTag, read_result

PHONES = ("a", "e", "i", "o", "u")
SPEAKERS = ("s1", "s2", "s3", "s4")
CONDITIONS = [("within", "within"), ("within", "any"), ("across", "within"), ("across", "any")]


def planted_corpus(root: Path, *, permuted: bool, files_per_speaker: int = 40, seed: int = 0) -> Path:
    """Per-frame one-hot phone features at 50 Hz and a matching phoneme item file (central phone spans).

    With `permuted`, each file relabels the phones by its own random permutation: the features still segment
    the phones but no longer say which phone is which across files, so ABX must be at chance.
    """
    rng = np.random.default_rng(seed)
    rows = ["#file onset offset #phone prev-phone next-phone speaker"]
    for speaker in SPEAKERS:
        for index in range(files_per_speaker):
            key = f"{speaker}/utt{index:02d}"
            sequence = rng.integers(0, len(PHONES), 12)
            bounds = np.concatenate([[1], 1 + np.cumsum(rng.integers(3, 9, len(sequence)))])
            features = torch.zeros(int(bounds[-1]) + 2, len(PHONES))
            channel = rng.permutation(len(PHONES)) if permuted else np.arange(len(PHONES))
            for j, (phone, start, end) in enumerate(zip(sequence, bounds[:-1], bounds[1:], strict=True)):
                features[start:end, channel[phone]] = 1.0
                if 0 < j < len(sequence) - 1:
                    prev, nxt = PHONES[sequence[j - 1]], PHONES[sequence[j + 1]]
                    rows.append(
                        f"{key} {start * 0.02:.2f} {end * 0.02:.2f} {PHONES[phone]} {prev} {nxt} {speaker}"
                    )
            (root / "features" / "0" / speaker).mkdir(parents=True, exist_ok=True)
            torch.save(features, root / "features" / "0" / f"{key}.pt")
    item = root / "items" / "en_test_phoneme.item"
    item.parent.mkdir(parents=True, exist_ok=True)
    item.write_text("\n".join(rows) + "\n")
    return item


def _abx(root: Path, item: Path):
    return run_phone_abx(
        root / "features", item, layers=[0], speakers=["within", "across"], contexts=["within", "any"],
        max_size_group=10, max_x_across=5, seed=0, device=torch.device("cpu"), progress=False,
    )  # fmt: skip


def test_planted_one_hot_phones_give_zero_error_and_equal_fastabx(tmp_path: Path) -> None:
    item = planted_corpus(tmp_path, permuted=False, files_per_speaker=15)
    result = _abx(tmp_path, item)
    assert [(s.speaker, s.context) for s in result.scores] == CONDITIONS
    assert all(score.error == 0.0 for score in result.scores)
    assert result.language == "en" and result.labels == list(PHONES)


def test_per_file_permuted_labels_give_chance_and_match_zerospeech_abx_exactly(tmp_path: Path) -> None:
    item = planted_corpus(tmp_path, permuted=True)
    result = _abx(tmp_path, item)
    for score in result.scores:
        assert 46.0 < score.error < 54.0, (score.speaker, score.context, score.error)
        assert score.error == pytest.approx(float(np.mean(score.cells.error)), abs=1e-4)
        direct = fastabx.zerospeech_abx(
            item, tmp_path / "features" / "0", max_size_group=10, max_x_across=5, speaker=score.speaker,
            context=score.context, seed=0, device="cpu", progress=False,
        )  # fmt: skip
        assert score.error == 100.0 * direct


def test_abx_command_writes_json_and_csv_with_conventions_and_run_tags(tmp_path: Path) -> None:
    item = planted_corpus(tmp_path, permuted=True, files_per_speaker=10)
    out = tmp_path / "result.json"
    tags = ["--run-tag", "objective=vgs+", "--run-tag", "train_languages=en,fr", "--run-tag", "seed=3"]
    argv = [
        "abx",
        str(tmp_path / "features"),
        str(item),
        "--out",
        str(out),
        "--quiet",
        "--context",
        "any",
        *tags,
    ]
    assert main(argv) == 0
    result = read_result(out)
    assert result.run == RunTag(objective="vgs+", train_languages=["en", "fr"], seed=3)
    assert result.conventions.frame_rate == 50 and result.conventions.last_frame == "kept"
    assert (result.conventions.max_size_group, result.conventions.max_x_across, result.conventions.seed) == (
        10,
        5,
        0,
    )
    assert "0.01 + 0.02" in result.conventions.frame_times
    rows = list(csv.DictReader((tmp_path / "result.csv").open()))
    assert [(r["speaker"], r["context"]) for r in rows] == [("within", "any"), ("across", "any")]
    assert [float(r["error_percent"]) for r in rows] == pytest.approx(
        [s.error for s in result.scores], abs=1e-4
    )
    assert main(argv) == 2  # the result exists: refused without --overwrite
    assert main([*argv, "--run-tag", "colour=red", "--overwrite"]) == 2


def test_missing_feature_files_are_listed_with_their_count(tmp_path: Path) -> None:
    item = planted_corpus(tmp_path, permuted=False, files_per_speaker=3)
    for name in ("utt00", "utt01"):
        (tmp_path / "features" / "0" / "s2" / f"{name}.pt").unlink()
    with pytest.raises(MissingFeaturesError, match=r"^2 of 12 files .* e\.g\. s2/utt00, s2/utt01"):
        _abx(tmp_path, item)


def test_short_and_non_finite_feature_files_are_named(tmp_path: Path) -> None:
    item = planted_corpus(tmp_path, permuted=False, files_per_speaker=3)
    path = tmp_path / "features" / "0" / "s3" / "utt01.pt"
    features = torch.load(path, weights_only=True)
    last_offset = max(
        line.split()[2] for line in item.read_text().splitlines()[1:] if line.startswith("s3/utt01 ")
    )
    torch.save(features[:10], path)
    with pytest.raises(
        FeaturesTooShortError, match=rf"s3/utt01\.pt has 10 frames .* ends at {last_offset} s"
    ):
        _abx(tmp_path, item)
    features[4, 2] = float("nan")
    torch.save(features, path)
    with pytest.raises(NonFiniteFeaturesError, match=r"s3/utt01\.pt holds NaN"):
        _abx(tmp_path, item)


def test_items_covering_no_frame_are_refused_before_fastabx(tmp_path: Path) -> None:
    item = planted_corpus(tmp_path, permuted=False, files_per_speaker=3)
    item.write_text(item.read_text() + "s1/utt00 0.031 0.039 a e i s1\n")
    with pytest.raises(ItemFileError, match="cover no 50 Hz frame"):
        _abx(tmp_path, item)


def test_language_is_read_from_corpus_item_names() -> None:
    assert infer_language(Path("corpus/items/fr_test_triphone.item")) == "fr"
    assert infer_language(Path("items/en-us.phoneme.item")) == "en-us"
    assert infer_language(Path("items/test_language.item")) is None
    assert infer_language(Path("zerospeech/dev-clean.item")) is None


def test_result_json_round_trips(tmp_path: Path) -> None:
    item = planted_corpus(tmp_path, permuted=False, files_per_speaker=4)
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "abx",
                str(tmp_path / "features"),
                str(item),
                "--out",
                str(out),
                "--quiet",
                "--speaker",
                "across",
            ]
        )
        == 0
    )
    document = json.loads(out.read_text())
    assert read_result(out).model_dump(mode="json") == document
    assert document["format"] == "vgssl-abx-result-v1"


def test_subsampling_does_not_depend_on_the_order_polars_returns_cells_in(tmp_path: Path) -> None:
    item = planted_corpus(tmp_path, permuted=True, files_per_speaker=6)
    dataset = fastabx.Dataset.from_item(item, tmp_path / "features" / "0", 50, device="cpu", progress=False)
    cells = fastabx.Task(dataset, on="#phone", across=["speaker"]).cells.drop("description", "header")
    orders = [cells.sample(fraction=1.0, shuffle=True, seed=seed).lazy() for seed in (1, 2)]

    def subsample(subsampler: fastabx.Subsampler, order: pl.LazyFrame) -> pl.DataFrame:
        conditions = [c for c in cells.columns if not c.startswith("index_")]
        return subsampler(order, with_across=True).collect().sort(conditions)

    # fastabx's own choice of X speakers (2 of 3 here) follows the row order; ours does not
    assert not subsample(fastabx.Subsampler(10, 2, 0), orders[0]).equals(
        subsample(fastabx.Subsampler(10, 2, 0), orders[1])
    )
    assert subsample(CanonicalSubsampler(10, 2, 0), orders[0]).equals(
        subsample(CanonicalSubsampler(10, 2, 0), orders[1])
    )
