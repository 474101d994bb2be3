import csv
import json
import os
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


# --- Libri-Light / ZeroSpeech 2021 slicing (each item's last frame dropped) -------------------------------


def noisy_planted_corpus(root: Path, *, seed: int = 0) -> tuple[Path, list[tuple[str, int, int, str, str]]]:
    """One-hot phone features buried in noise (so ABX errs and slicing matters), central-phone items of 3 to
    7 frames; returns the item file and the items as (file, first frame, end frame, phone, speaker)."""
    rng = np.random.default_rng(seed)
    rows, items = ["#file onset offset #phone prev-phone next-phone speaker"], []
    for speaker in SPEAKERS[:2]:
        for index in range(5):
            key = f"{speaker}/utt{index:02d}"
            sequence = rng.integers(0, len(PHONES), 12)
            bounds = np.concatenate([[1], 1 + np.cumsum(rng.integers(3, 8, len(sequence)))])
            features = torch.from_numpy(rng.normal(0.0, 0.9, (int(bounds[-1]) + 2, len(PHONES)))).float()
            for j, (phone, start, end) in enumerate(zip(sequence, bounds[:-1], bounds[1:], strict=True)):
                features[start:end, phone] += 1.0
                # the item's last frame looks like the next phone, so dropping it changes the distances
                if j + 1 < len(sequence):
                    features[end - 1, sequence[j + 1]] += 1.0
                if 0 < j < len(sequence) - 1:
                    prev, nxt = PHONES[sequence[j - 1]], PHONES[sequence[j + 1]]
                    rows.append(
                        f"{key} {start * 0.02:.2f} {end * 0.02:.2f} {PHONES[phone]} {prev} {nxt} {speaker}"
                    )
                    items.append((key, int(start), int(end), PHONES[phone], speaker))
            (root / "features" / "0" / speaker).mkdir(parents=True, exist_ok=True)
            torch.save(features, root / "features" / "0" / f"{key}.pt")
    item = root / "items" / "en_test_phoneme.item"
    item.parent.mkdir(parents=True, exist_ok=True)
    item.write_text("\n".join(rows) + "\n")
    return item, items


def _reference_dtw(x: np.ndarray, y: np.ndarray) -> float:
    """Angular distance (arccos of the cosine, over pi) aligned by DTW, divided by the path length."""
    d = np.arccos(np.clip(x @ y.T, -1.0, 1.0)) / np.pi
    n, m = d.shape
    cost = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            before = (
                [cost[i - 1, j]] * (i > 0) + [cost[i, j - 1]] * (j > 0) + [cost[i - 1, j - 1]] * (i * j > 0)
            )
            cost[i, j] = d[i, j] + (min(before) if before else 0.0)
    i, j, length = n - 1, m - 1, 1
    while i > 0 and j > 0:
        diag, left, up = cost[i - 1, j - 1], cost[i, j - 1], cost[i - 1, j]
        if diag <= left and diag <= up:
            i, j = i - 1, j - 1
        elif left <= up:
            j -= 1
        else:
            i -= 1
        length += 1
    return float(cost[-1, -1] / (length + i + j))


def reference_within_speaker_any_context(
    root: Path, items: list[tuple[str, int, int, str, str]], *, drop_last: bool
) -> float:
    """A slow, independent within-speaker / any-context phone ABX error (%), no subsampling: per speaker and
    ordered phone pair (a, b), the share of triplets (A, X of phone a, A != X; B of phone b) with
    d(A, X) > d(B, X) (ties count half); averaged over speakers, then over phone pairs."""
    segments = []
    for key, start, end, _, _ in items:
        frames = torch.load(root / "features" / "0" / f"{key}.pt", weights_only=True).double().numpy()
        segment = frames[start : end - 1 if drop_last else end]
        segments.append(segment / np.linalg.norm(segment, axis=1, keepdims=True))
    cells: dict[tuple[str, str], list[float]] = {}
    for speaker in sorted({item[4] for item in items}):
        mine = [n for n, item in enumerate(items) if item[4] == speaker]
        dist = {(p, q): _reference_dtw(segments[p], segments[q]) for p in mine for q in mine}
        phones = sorted({items[n][3] for n in mine})
        for a in phones:
            for b in phones:
                group_a = [n for n in mine if items[n][3] == a]
                group_b = [n for n in mine if items[n][3] == b]
                if a == b or len(group_a) < 2:
                    continue
                errors = [
                    1.0 if dist[(x, p)] > dist[(x, q)] else 0.5 if dist[(x, p)] == dist[(x, q)] else 0.0
                    for x in group_a
                    for p in group_a
                    if p != x
                    for q in group_b
                ]
                cells.setdefault((a, b), []).append(float(np.mean(errors)))
    return 100.0 * float(np.mean([np.mean(scores) for scores in cells.values()]))


def test_librilight_slicing_drops_each_items_last_frame_as_an_independent_reference_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FASTABX_WITH_LIBRILIGHT_BUG", raising=False)
    item, items = noisy_planted_corpus(tmp_path)

    def error(librilight: bool | None) -> float:
        result = run_phone_abx(
            tmp_path / "features", item, layers=[0], speakers=["within"], contexts=["any"],
            max_size_group=None, max_x_across=None, seed=0, device=torch.device("cpu"), progress=False,
            librilight_slicing=librilight,
        )  # fmt: skip
        expected = "dropped (Libri-Light bug)" if librilight else "kept"
        assert result.conventions.last_frame == expected
        return result.scores[0].error

    exact, librilight = error(False), error(True)
    assert exact == pytest.approx(
        reference_within_speaker_any_context(tmp_path, items, drop_last=False), abs=1e-6
    )
    assert librilight == pytest.approx(
        reference_within_speaker_any_context(tmp_path, items, drop_last=True), abs=1e-6
    )
    assert abs(exact - librilight) > 0.3, (exact, librilight)
    assert 2.0 < exact < 45.0
    assert error(None) == exact  # no switch, no variable: exact
    assert "FASTABX_WITH_LIBRILIGHT_BUG" not in os.environ  # the switch leaves no trace
    monkeypatch.setenv("FASTABX_WITH_LIBRILIGHT_BUG", "1")
    assert error(False) == exact  # the switch wins over the environment, which it restores
    assert os.environ["FASTABX_WITH_LIBRILIGHT_BUG"] == "1"


def test_abx_command_records_and_prints_the_slicing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FASTABX_WITH_LIBRILIGHT_BUG", raising=False)
    item, _ = noisy_planted_corpus(tmp_path)
    base = [
        "abx",
        str(tmp_path / "features"),
        str(item),
        "--quiet",
        "--speaker",
        "within",
        "--context",
        "any",
    ]
    assert main([*base, "--out", str(tmp_path / "exact.json")]) == 0
    assert "slicing: exact" in capsys.readouterr().out
    assert main([*base, "--out", str(tmp_path / "ll.json"), "--librilight-slicing"]) == 0
    assert "slicing: librilight" in capsys.readouterr().out
    exact, librilight = read_result(tmp_path / "exact.json"), read_result(tmp_path / "ll.json")
    assert exact.conventions.last_frame == "kept"
    assert librilight.conventions.last_frame == "dropped (Libri-Light bug)"
    assert (
        json.loads((tmp_path / "ll.json").read_text())["conventions"]["last_frame"]
        == "dropped (Libri-Light bug)"
    )
    assert exact.scores[0].error != librilight.scores[0].error
