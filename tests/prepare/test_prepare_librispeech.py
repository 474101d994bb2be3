"""`vgssl prepare librispeech`: a small tree in the published layout in; manifests, transcripts and a card
out; every bad layout a named error."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from layouts import make_librispeech, run_cli, run_parsed, write_audio

from vgssl.data.manifest import read_manifest
from vgssl.locks import exclusive_lock
from vgssl.prepare.speech import (
    EmptySubsetError,
    MissingAudioError,
    MissingTranscriptError,
    NotALayoutError,
    SampleRateError,
    UnknownSpeakerDirError,
    UntranscribedAudioError,
)

LAYOUT = {
    "train-clean-100": {19: {198: 3, 227: 2}, 103: {1240: 3}, 1034: {121119: 2}},
    "train-clean-360": {14: {208: 2}},
    "dev-clean": {84: {121123: 2}, 174: {50561: 2}},
    "dev-other": {116: {288045: 2}},
    "test-clean": {61: {70968: 2}, 121: {121726: 1}},
}


@pytest.fixture
def libri(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "LibriSpeech"
    return root, make_librispeech(root, LAYOUT)


def _prepare(root: Path, corpus: Path, *extra: str) -> list[str]:
    return ["prepare", "librispeech", str(root), "--out", str(corpus), "--no-progress", *extra]


def test_default_mapping_writes_manifests_transcripts_and_card(libri, tmp_path: Path, capsys) -> None:
    root, written = libri
    corpus = tmp_path / "corpus"
    status, out, err = run_cli(_prepare(root, corpus), capsys)
    assert status == 0, err
    assert "not used: dev-other" in out
    assert sorted(p.name for p in (corpus / "manifests").iterdir()) == [
        "en_test.tsv",
        "en_train.tsv",
        "en_valid.tsv",
    ]
    expected = {
        "train": written["train-clean-100"] + written["train-clean-360"],
        "valid": written["dev-clean"],
        "test": written["test-clean"],
    }
    for split, utterances in expected.items():
        manifest = read_manifest(corpus / "manifests" / f"en_{split}.tsv")
        assert manifest.root == root.resolve()
        assert (corpus / "manifests" / f"en_{split}.tsv").read_text().splitlines()[0] == str(root.resolve())
        by_path = {manifest.audio_path(e).resolve(): e for e in manifest.entries}
        assert set(by_path) == {u.path.resolve() for u in utterances}
        for u in utterances:
            entry = by_path[u.path.resolve()]
            assert entry.num_samples == u.num_samples
            assert entry.language == "en"
            assert entry.speaker == u.speaker
            assert entry.path.startswith(("train-clean-", "dev-clean/", "test-clean/"))
        rows = (corpus / "transcripts" / f"en_{split}.tsv").read_text().splitlines()
        texts = dict(row.split("\t") for row in rows)
        assert texts == {u.uttid: u.text for u in utterances}
        assert [row.split("\t")[0] for row in rows] == [Path(e.path).stem for e in manifest.entries]

    card = json.loads((corpus / "corpus.json").read_text())
    assert card["languages"] == ["en"]
    assert [source["kind"] for source in card["sources"]] == ["librispeech"]
    source = card["sources"][0]
    assert source["root"] == str(root.resolve())
    assert source["options"]["splits"] == {
        "train": ["train-clean-100", "train-clean-360"],
        "valid": ["dev-clean"],
        "test": ["test-clean"],
    }
    assert sorted(source["wrote"]) == sorted(
        [f"manifests/en_{s}.tsv" for s in ("train", "valid", "test")]
        + [f"transcripts/en_{s}.tsv" for s in ("train", "valid", "test")]
    )
    train = card["audio"]["en"]["speech"]["train"]
    assert train["utterances"] == 12
    assert train["speakers"] == 4
    assert train["hours"] == round(sum(u.num_samples for u in expected["train"]) / 16_000 / 3600, 4)
    assert card["audio"]["en"]["speech"]["test"] == {
        "utterances": 3,
        "hours": round(sum(u.num_samples for u in expected["test"]) / 16_000 / 3600, 4),
        "speakers": 2,
    }


def test_split_flags_map_subsets_and_leave_splits_out(libri, tmp_path: Path, capsys) -> None:
    root, written = libri
    corpus = tmp_path / "corpus"
    flags = [
        "--split",
        "train=train-clean-100",
        "--split",
        "valid=dev-other",
        "--split",
        "test=",
        "--language",
        "en-US",
        "--hours-test",
        "1",
    ]
    status, _, err = run_cli(_prepare(root, corpus, *flags), capsys)
    assert status == 0, err
    assert "--hours for test ignored" in err
    assert sorted(p.name for p in (corpus / "manifests").iterdir()) == ["en-US_train.tsv", "en-US_valid.tsv"]
    valid = read_manifest(corpus / "manifests" / "en-US_valid.tsv")
    assert {e.speaker for e in valid.entries} == {"116"}
    assert {e.language for e in valid.entries} == {"en-US"}
    assert len(read_manifest(corpus / "manifests" / "en-US_train.tsv")) == len(written["train-clean-100"])
    assert json.loads((corpus / "corpus.json").read_text())["languages"] == ["en-US"]


def test_bad_split_flags_are_one_line_errors(libri, tmp_path: Path, capsys) -> None:
    root, _ = libri
    status, _, err = run_cli(_prepare(root, tmp_path / "c", "--split", "train=train-clean-999"), capsys)
    assert status == 2 and "train-clean-999" in err and "train-clean-100" in err
    status, _, err = run_cli(_prepare(root, tmp_path / "c", "--split", "valid=test-clean"), capsys)
    assert status == 2 and "both" in err and "test-clean" in err
    status, _, err = run_cli(_prepare(root, tmp_path / "c", "--language", "en_GB"), capsys)
    assert status == 2 and "en_GB" in err
    assert not (tmp_path / "c" / "manifests").exists()


def test_hours_select_balanced_speakers_deterministically(tmp_path: Path, capsys) -> None:
    root = tmp_path / "LibriSpeech"
    speakers = {100 + s: {1000 + s: 8} for s in range(6)}
    written = make_librispeech(root, {"train-clean-100": speakers}, lengths=(15_900, 16_100))
    total_hours = sum(u.num_samples for u in written["train-clean-100"]) / 16_000 / 3600
    hours = 24 / 3600  # about half: 24 of the 48 one-second utterances

    def manifest(name: str, seed: int) -> list[tuple[str, int, str]]:
        status, _, err = run_cli(
            _prepare(root, tmp_path / name, "--hours", str(hours), "--seed", str(seed)), capsys
        )
        assert status == 0, err
        entries = read_manifest(tmp_path / name / "manifests" / "en_train.tsv").entries
        return [(e.path, e.num_samples, e.speaker) for e in entries]

    first = manifest("a", 0)
    assert 23 <= len(first) <= 25
    assert abs(sum(n for _, n, _ in first) / 16_000 / 3600 - hours) < 1 / 3600
    per_speaker = Counter(speaker for _, _, speaker in first)
    assert len(per_speaker) == 6 and max(per_speaker.values()) - min(per_speaker.values()) <= 1
    assert manifest("b", 0) == first
    assert manifest("c", 1) != first
    card = json.loads((tmp_path / "a" / "corpus.json").read_text())
    assert card["sources"][0]["options"]["available_hours"]["train"] == round(total_hours, 4)
    assert card["sources"][0]["options"]["hours"]["train"] == hours
    assert card["audio"]["en"]["speech"]["train"]["speakers"] == 6


def test_rerun_refuses_without_overwrite_and_replaces_with_it(libri, tmp_path: Path, capsys) -> None:
    root, _ = libri
    corpus = tmp_path / "corpus"
    assert run_cli(_prepare(root, corpus), capsys)[0] == 0
    before = (corpus / "manifests" / "en_train.tsv").read_text()
    status, _, err = run_cli(_prepare(root, corpus, "--hours", str(3 / 3600)), capsys)
    assert status == 2
    assert "--overwrite" in err and "manifests/en_train.tsv (written by librispeech)" in err
    assert (corpus / "manifests" / "en_train.tsv").read_text() == before
    status, _, err = run_cli(_prepare(root, corpus, "--hours", str(3 / 3600), "--overwrite"), capsys)
    assert status == 0, err
    after = read_manifest(corpus / "manifests" / "en_train.tsv")
    assert 0 < len(after) < 12
    card = json.loads((corpus / "corpus.json").read_text())
    assert [source["kind"] for source in card["sources"]] == ["librispeech"]
    assert card["audio"]["en"]["speech"]["train"]["utterances"] == len(after)


def test_mini_librispeech_defaults(tmp_path: Path, capsys) -> None:
    root = tmp_path / "LibriSpeech"
    make_librispeech(root, {"train-clean-5": {19: {198: 2}}, "dev-clean-2": {84: {121123: 2}}})
    status, out, err = run_cli(_prepare(root, tmp_path / "c"), capsys)
    assert status == 0, err
    assert sorted(p.name for p in (tmp_path / "c" / "manifests").iterdir()) == [
        "en_train.tsv",
        "en_valid.tsv",
    ]
    assert "dev-clean-2" in out and "not used" not in out


def test_root_may_be_one_subset_directory(libri, tmp_path: Path, capsys) -> None:
    root, written = libri
    status, _, err = run_cli(
        _prepare(root / "dev-other", tmp_path / "c", "--split", "test=dev-other"), capsys
    )
    assert status == 0, err
    manifest = read_manifest(tmp_path / "c" / "manifests" / "en_test.tsv")
    assert manifest.root == root.resolve() and len(manifest) == len(written["dev-other"])


def _one_chapter(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "LibriSpeech"
    make_librispeech(root, {"dev-clean": {84: {121123: 3}, 174: {50561: 2}}})
    return root, root / "dev-clean" / "84" / "121123"


def test_missing_transcript_file(tmp_path: Path) -> None:
    root, chapter = _one_chapter(tmp_path)
    (chapter / "84-121123.trans.txt").unlink()
    with pytest.raises(MissingTranscriptError, match=r"84-121123\.trans\.txt is missing.*3 audio files"):
        run_parsed(_prepare(root, tmp_path / "c"))
    assert not (tmp_path / "c" / "manifests").exists()


def test_audio_without_a_row(tmp_path: Path) -> None:
    root, chapter = _one_chapter(tmp_path)
    transcript = chapter / "84-121123.trans.txt"
    transcript.write_text("\n".join(transcript.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(UntranscribedAudioError, match=r"84-121123-0002\.flac has no row in .*trans\.txt"):
        run_parsed(_prepare(root, tmp_path / "c"))


def test_row_without_audio_names_the_line(tmp_path: Path) -> None:
    root, chapter = _one_chapter(tmp_path)
    (chapter / "84-121123-0001.flac").unlink()
    with pytest.raises(MissingAudioError, match=r"84-121123\.trans\.txt:2: 84-121123-0001 has no audio file"):
        run_parsed(_prepare(root, tmp_path / "c"))


def test_unknown_speaker_dir_and_misplaced_file(tmp_path: Path) -> None:
    root, chapter = _one_chapter(tmp_path)
    bad = root / "dev-clean" / "speaker-7"
    bad.mkdir()
    with pytest.raises(UnknownSpeakerDirError, match="speaker-7: a speaker directory is named by"):
        run_parsed(_prepare(root, tmp_path / "c"))
    bad.rmdir()
    shutil.move(root / "dev-clean" / "174" / "50561" / "174-50561-0000.flac", chapter / "174-50561-0000.flac")
    with pytest.raises(UnknownSpeakerDirError, match=r"174-50561-0000\.flac: a file in dev-clean/84/121123/"):
        run_parsed(_prepare(root, tmp_path / "c"))


def test_non_16k_audio_says_to_resample(tmp_path: Path, capsys) -> None:
    root, chapter = _one_chapter(tmp_path)
    write_audio(chapter / "84-121123-0001.flac", 22_050, seed=1, sample_rate=22_050)
    with pytest.raises(SampleRateError, match=r"84-121123-0001\.flac is 22050 Hz.*sox in\.flac -r 16000"):
        run_parsed(_prepare(root, tmp_path / "c"))
    status, _, err = run_cli(_prepare(root, tmp_path / "c"), capsys)
    assert status == 2 and err.count("\n") == 1 and "22050 Hz" in err and "Traceback" not in err


def test_empty_subset_and_a_root_that_is_not_librispeech(tmp_path: Path) -> None:
    root, _ = _one_chapter(tmp_path)
    (root / "test-clean" / "61" / "70968").mkdir(parents=True)
    with pytest.raises(EmptySubsetError, match="test-clean holds no audio"):
        run_parsed(_prepare(root, tmp_path / "c"))
    elsewhere = tmp_path / "downloads"
    (elsewhere / "misc").mkdir(parents=True)
    with pytest.raises(
        NotALayoutError, match=r"not a LibriSpeech directory: expected ROOT/<subset>/.*found misc"
    ):
        run_parsed(_prepare(elsewhere, tmp_path / "c"))
    with pytest.raises(NotALayoutError, match="not a directory"):
        run_parsed(_prepare(tmp_path / "missing", tmp_path / "c"))


def test_a_corpus_another_prepare_holds_is_refused(libri, tmp_path: Path, capsys) -> None:
    root, _ = libri
    corpus = tmp_path / "corpus"
    with exclusive_lock(corpus, job="prepare"):
        status, _, err = run_cli(_prepare(root, corpus), capsys)
    assert status == 2 and "in use by another prepare" in err
    assert not (corpus / "manifests").exists()
    assert run_cli(_prepare(root, corpus), capsys)[0] == 0
