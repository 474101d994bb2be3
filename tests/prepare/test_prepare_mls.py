"""`vgssl prepare mls`: a small Multilingual LibriSpeech language in the published layout (.flac and .opus);
two sources in one corpus; bad layouts as named errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile
from layouts import make_librispeech, make_mls, run_cli, run_parsed, write_audio

from vgssl.data.manifest import read_manifest
from vgssl.prepare.mls import UnknownLanguageError
from vgssl.prepare.speech import (
    MissingAudioError,
    MissingTranscriptError,
    NotALayoutError,
    SampleRateError,
    TranscriptFormatError,
    UnknownSpeakerDirError,
    UntranscribedAudioError,
)

FRENCH = {
    "train": {1840: {1315: 3, 1470: 2}, 2506: {1664: 3}, 12981: {11263: 2}},
    "dev": {2223: {1745: 2}, 10065: {10039: 2}},
    "test": {2607: {1467: 2}, 1406: {1008: 1}},
}
OPUS_OK = "OPUS" in (soundfile.available_subtypes("OGG") or {})


def _prepare(root: Path, corpus: Path, *extra: str, language: str = "french") -> list[str]:
    return [
        "prepare",
        "mls",
        str(root),
        "--language",
        language,
        "--out",
        str(corpus),
        "--no-progress",
        *extra,
    ]


def _check_manifests(corpus: Path, root: Path, written: dict, code: str) -> None:
    for split, mls_split in (("train", "train"), ("valid", "dev"), ("test", "test")):
        manifest = read_manifest(corpus / "manifests" / f"{code}_{split}.tsv")
        assert manifest.root == root.resolve()
        by_path = {manifest.audio_path(e).resolve(): e for e in manifest.entries}
        assert set(by_path) == {u.path.resolve() for u in written[mls_split]}
        for u in written[mls_split]:
            entry = by_path[u.path.resolve()]
            assert (entry.num_samples, entry.language, entry.speaker) == (u.num_samples, code, u.speaker)
            assert entry.path.startswith(f"{mls_split}/audio/{u.speaker}/")
        rows = (corpus / "transcripts" / f"{code}_{split}.tsv").read_text().splitlines()
        assert dict(row.split("\t") for row in rows) == {u.uttid: u.text for u in written[mls_split]}


def test_flac_language_dir_to_manifests_and_card(tmp_path: Path, capsys) -> None:
    root = tmp_path / "mls_french"
    written = make_mls(root, FRENCH)
    corpus = tmp_path / "corpus"
    status, out, err = run_cli(_prepare(root, corpus), capsys)
    assert status == 0, err
    assert "fr" in out and "train" in out
    _check_manifests(corpus, root, written, "fr")
    card = json.loads((corpus / "corpus.json").read_text())
    assert card["languages"] == ["fr"]
    source = card["sources"][0]
    assert source["kind"] == "mls" and source["options"]["mls_language"] == "french"
    assert source["options"]["splits"] == {"train": ["train"], "valid": ["dev"], "test": ["test"]}
    train = card["audio"]["fr"]["speech"]["train"]
    assert (train["utterances"], train["speakers"]) == (10, 3)
    assert train["hours"] == round(sum(u.num_samples for u in written["train"]) / 16_000 / 3600, 4)
    assert card["audio"]["fr"]["speech"]["valid"]["speakers"] == 2


@pytest.mark.skipif(not OPUS_OK, reason="this libsndfile cannot write Opus")
def test_opus_release_found_inside_root_reads_true_lengths(tmp_path: Path, capsys) -> None:
    written = make_mls(tmp_path / "mls" / "mls_french_opus", FRENCH, suffix=".opus", segments=False)
    corpus = tmp_path / "corpus"
    status, _, err = run_cli(_prepare(tmp_path / "mls", corpus, "--code", "fr-FR", language="fr"), capsys)
    assert status == 0, err
    _check_manifests(corpus, tmp_path / "mls" / "mls_french_opus", written, "fr-FR")
    assert read_manifest(corpus / "manifests" / "fr-FR_train.tsv").entries[0].path.endswith(".opus")


@pytest.mark.skipif(not OPUS_OK, reason="this libsndfile cannot write Opus")
def test_48k_opus_must_be_converted(tmp_path: Path, capsys) -> None:
    root = tmp_path / "mls_german_opus"
    make_mls(root, {"test": {1844: {931: 2}}}, suffix=".opus", sample_rate=48_000, lengths=(12_000, 30_000))
    with pytest.raises(
        SampleRateError, match=r"1844_931_000000\.opus is 48000 Hz.*ffmpeg -i in\.opus -ar 16000"
    ):
        run_parsed(_prepare(root, tmp_path / "c", language="german"))
    # converting in place (a .flac next to each .opus) is what the message suggests; it then works
    for opus in sorted(root.rglob("*.opus")):
        write_audio(opus.with_suffix(".flac"), soundfile.info(str(opus)).frames // 3, seed=5)
    status, _, err = run_cli(_prepare(root, tmp_path / "c", language="german"), capsys)
    assert status == 0, err
    entries = read_manifest(tmp_path / "c" / "manifests" / "de_test.tsv").entries
    assert [Path(e.path).suffix for e in entries] == [".flac", ".flac"]


def test_hours_with_segments_select_on_estimates_but_write_true_counts(tmp_path: Path, capsys) -> None:
    root = tmp_path / "mls_spanish"
    speakers = {3000 + s: {400 + s: 6} for s in range(5)}
    written = make_mls(root, {"train": speakers}, segment_error_s=0.05)
    hours = 10 / 3600
    status, out, err = run_cli(
        _prepare(root, tmp_path / "c", "--hours", str(hours), language="spanish"), capsys
    )
    assert status == 0, err
    assert "estimated from segments" in out
    true = {u.path.resolve(): u.num_samples for u in written["train"]}
    manifest = read_manifest(tmp_path / "c" / "manifests" / "es_train.tsv")
    assert all(true[manifest.audio_path(e).resolve()] == e.num_samples for e in manifest.entries)
    assert len({e.speaker for e in manifest.entries}) == 5
    assert abs(sum(e.num_samples for e in manifest.entries) / 16_000 - 10) < 1.0


def test_two_sources_in_one_corpus(tmp_path: Path, capsys) -> None:
    libri = tmp_path / "LibriSpeech"
    make_librispeech(libri, {"train-clean-100": {19: {198: 3}, 26: {495: 2}}, "test-clean": {61: {70968: 2}}})
    mls_root = tmp_path / "mls_french"
    make_mls(mls_root, FRENCH)
    corpus = tmp_path / "corpus"
    status, _, err = run_cli(
        ["prepare", "librispeech", str(libri), "--out", str(corpus), "--no-progress"], capsys
    )
    assert status == 0, err
    status, _, err = run_cli(_prepare(mls_root, corpus), capsys)
    assert status == 0, err
    card = json.loads((corpus / "corpus.json").read_text())
    assert [source["kind"] for source in card["sources"]] == ["librispeech", "mls"]
    assert [source["root"] for source in card["sources"]] == [str(libri.resolve()), str(mls_root.resolve())]
    assert card["languages"] == ["en", "fr"]
    assert card["audio"]["en"]["speech"]["train"]["utterances"] == 5
    assert set(card["audio"]["en"]["speech"]) == {"train", "test"}
    assert card["audio"]["fr"]["speech"]["train"]["utterances"] == 10
    # the second MLS run refuses to overwrite French, and replaces it (and only it) with --overwrite
    status, _, err = run_cli(_prepare(mls_root, corpus, "--hours", str(2 / 3600)), capsys)
    assert status == 2 and "manifests/fr_train.tsv (written by mls)" in err
    status, _, err = run_cli(_prepare(mls_root, corpus, "--hours", str(2 / 3600), "--overwrite"), capsys)
    assert status == 0, err
    card = json.loads((corpus / "corpus.json").read_text())
    assert [source["kind"] for source in card["sources"]] == ["librispeech", "mls"]
    assert card["audio"]["fr"]["speech"]["train"]["utterances"] < 10
    assert card["audio"]["en"]["speech"]["train"]["utterances"] == 5


def test_unknown_language_lists_the_known_ones(tmp_path: Path, capsys) -> None:
    make_mls(tmp_path / "mls_french", {"test": {1406: {1008: 1}}})
    with pytest.raises(UnknownLanguageError):
        run_parsed(_prepare(tmp_path / "mls_french", tmp_path / "c", language="klingon"))
    status, _, err = run_cli(_prepare(tmp_path / "mls_french", tmp_path / "c", language="klingon"), capsys)
    assert status == 2 and "'klingon'" in err and "french (fr)" in err and "polish (pl)" in err


def _small(tmp_path: Path) -> Path:
    root = tmp_path / "mls_italian"
    make_mls(root, {"dev": {4974: {3212: 3}, 5010: {4580: 2}}})
    return root


def _prepare_it(root: Path, tmp_path: Path) -> list[str]:
    return _prepare(root, tmp_path / "c", language="italian")


def test_missing_transcripts_file(tmp_path: Path) -> None:
    root = _small(tmp_path)
    (root / "dev" / "transcripts.txt").unlink()
    with pytest.raises(MissingTranscriptError, match=r"dev/transcripts\.txt is missing"):
        run_parsed(_prepare_it(root, tmp_path))
    assert not (tmp_path / "c" / "manifests").exists()


def test_audio_without_a_row_and_row_without_audio(tmp_path: Path) -> None:
    root = _small(tmp_path)
    transcripts = root / "dev" / "transcripts.txt"
    lines = transcripts.read_text().splitlines()
    transcripts.write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(
        UntranscribedAudioError, match=r"4974_3212_000000\.flac has no row in .*transcripts\.txt"
    ):
        run_parsed(_prepare_it(root, tmp_path))
    transcripts.write_text("\n".join(lines) + "\n")
    (root / "dev" / "audio" / "5010" / "4580" / "5010_4580_000001.flac").unlink()
    with pytest.raises(MissingAudioError, match=r"transcripts\.txt:5: 5010_4580_000001 has no audio file"):
        run_parsed(_prepare_it(root, tmp_path))


def test_unknown_speaker_dir_misplaced_file_and_bad_row(tmp_path: Path) -> None:
    root = _small(tmp_path)
    (root / "dev" / "audio" / "unsorted").mkdir()
    with pytest.raises(UnknownSpeakerDirError, match="unsorted: a speaker directory"):
        run_parsed(_prepare_it(root, tmp_path))
    (root / "dev" / "audio" / "unsorted").rmdir()
    moved = root / "dev" / "audio" / "4974" / "3212" / "5010_4580_000000.flac"
    (root / "dev" / "audio" / "5010" / "4580" / "5010_4580_000000.flac").rename(moved)
    with pytest.raises(
        UnknownSpeakerDirError, match=r"5010_4580_000000\.flac: a file in dev/audio/4974/3212/"
    ):
        run_parsed(_prepare_it(root, tmp_path))
    moved.rename(root / "dev" / "audio" / "5010" / "4580" / "5010_4580_000000.flac")
    with (root / "dev" / "transcripts.txt").open("a") as handle:
        handle.write("5010_4580_000009 no tab here\n")
    with pytest.raises(TranscriptFormatError, match=r"transcripts\.txt:6: expected 2 tab-separated columns"):
        run_parsed(_prepare_it(root, tmp_path))


def test_a_root_that_is_not_mls(tmp_path: Path) -> None:
    (tmp_path / "downloads" / "mls_french").mkdir(parents=True)
    with pytest.raises(NotALayoutError, match=r"not an MLS language directory: expected ROOT/<split>/audio/"):
        run_parsed(_prepare(tmp_path / "downloads", tmp_path / "c", language="italian"))
