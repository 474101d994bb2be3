from pathlib import Path

import pytest

from vgssl.data.manifest import ManifestEntry, ManifestError, read_manifest, write_manifest


def test_round_trip_resolves_relative_root(tmp_path: Path) -> None:
    entries = [
        ManifestEntry("en/test/a.wav", 16000, "en", "s01"),
        ManifestEntry("fr/test/b.wav", 8000, "fr", "s02"),
    ]
    write_manifest(tmp_path / "manifests" / "x.tsv", "../audio", entries)
    manifest = read_manifest(tmp_path / "manifests" / "x.tsv")
    assert manifest.entries == tuple(entries)
    assert manifest.root == (tmp_path / "audio").resolve()
    assert manifest.audio_path(entries[0]) == (tmp_path / "audio" / "en/test/a.wav").resolve()
    assert entries[0].key == "en/test/a"


def test_two_column_manifest_takes_language_from_caller(tmp_path: Path) -> None:
    (tmp_path / "m.tsv").write_text("/data\nx.wav\t100\n")
    manifest = read_manifest(tmp_path / "m.tsv", language="de")
    assert manifest.entries == (ManifestEntry("x.wav", 100, "de", None),)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [("/r\nx.wav\tabc\n", ":2: num_samples must be an integer"), ("/r\nx.wav\n", ":2: expected 2 to 4")],
)
def test_errors_name_file_and_line(tmp_path: Path, body: str, fragment: str) -> None:
    (tmp_path / "bad.tsv").write_text(body)
    with pytest.raises(ManifestError, match=fragment):
        read_manifest(tmp_path / "bad.tsv")
