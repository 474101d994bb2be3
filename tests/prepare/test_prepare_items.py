"""`vgssl prepare items`: phone items from MFA TextGrids and CTM files, language items, imported item files.

The alignments below are known, and the expected item rows were worked out by hand from the README's rules
(frame i at 0.01 + 0.02 i s, floor((N - 400) / 320) + 1 frames; silences never central nor context; a
silence under 20 ms is transparent; zero-length phones dropped; an item needs a frame time inside it and
inside its file).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from praatio import textgrid

from vgssl.cli import main
from vgssl.data.items import read_item_file
from vgssl.data.manifest import read_manifest
from vgssl.prepare.alignment_readers import LabelRules, MissingPhoneTierError, read_textgrid
from vgssl.prepare.items_prepare import prepare_phone_items
from vgssl.prepare.phone_items import MissingSpeakerError

# u1: 1.00 s (16000 samples, 49 frames, the last at 0.97 s); u2: 0.50 s (8000 samples, 24 frames, last 0.47 s)
U1 = [
    (0.10, 0.20, "HH"),
    (0.20, 0.35, "AH0"),
    (0.35, 0.36, "sp"),  # a 10 ms pause: transparent, so AH and L are each other's context
    (0.36, 0.50, "L"),
    (0.50, 0.62, "OW1"),
    (0.62, 0.70, "sil"),
    (0.70, 0.80, "K"),
    (0.80, 0.90, "AE1"),
    (0.90, 0.98, "T"),
]
U2 = [
    (0.10, 0.212, "M"),
    (0.212, 0.218, "D"),  # between frame times 0.21 and 0.23: no frame, so never central
    (0.218, 0.30, "AA1"),
    (0.30, 0.40, "B"),
    (0.40, 0.48, "IY0"),
    (0.48, 0.50, "Z"),  # ends with the audio: IY's triphone would need frame 24, which u2 lacks
]
PHONEME_ROWS = [
    "spk1/u1 0.2000 0.3500 AH HH L spk1",
    "spk1/u1 0.3600 0.5000 L AH OW spk1",
    "spk1/u1 0.8000 0.9000 AE K T spk1",
    "spk2/u2 0.2180 0.3000 AA D B spk2",
    "spk2/u2 0.3000 0.4000 B AA IY spk2",
    "spk2/u2 0.4000 0.4800 IY B Z spk2",
]
TRIPHONE_ROWS = [
    "spk1/u1 0.1000 0.5000 AH HH L spk1",
    "spk1/u1 0.2000 0.6200 L AH OW spk1",
    "spk1/u1 0.7000 0.9800 AE K T spk1",
    "spk2/u2 0.2120 0.4000 AA D B spk2",
    "spk2/u2 0.2180 0.4800 B AA IY spk2",
]
HEADER = "#file onset offset #phone prev-phone next-phone speaker"


def write_wav(path: Path, num_samples: int, sample_rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(len(str(path))).normal(0, 0.01, num_samples).astype(np.float32)
    soundfile.write(str(path), noise, sample_rate, subtype="PCM_16")


def write_manifest(path: Path, root: Path, rows: list[tuple[str, int, str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [str(root)] + [f"{p}\t{n}\t{lang}\t{spk}" for p, n, lang, spk in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_textgrid(
    path: Path, phones: list[tuple[float, float, str]], duration: float, *, tier: str = "phones"
) -> None:
    """An MFA-like TextGrid written by praatio: blank spaces become empty intervals, a 'words' tier."""
    grid = textgrid.Textgrid()
    grid.addTier(textgrid.IntervalTier(tier, phones, 0.0, duration))
    grid.addTier(textgrid.IntervalTier("words", [(phones[0][0], phones[-1][1], "word")], 0.0, duration))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(str(path), format="long_textgrid", includeBlankSpaces=True)


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Path]:
    audio = tmp_path / "audio"
    write_wav(audio / "spk1" / "u1.wav", 16000)
    write_wav(audio / "spk2" / "u2.wav", 8000)
    write_wav(audio / "spk2" / "u3.wav", 8000)  # never aligned
    manifest = write_manifest(
        tmp_path / "corpus" / "manifests" / "en_test.tsv",
        audio,
        [
            ("spk1/u1.wav", 16000, "en", "spk1"),
            ("spk2/u2.wav", 8000, "en", "spk2"),
            ("spk2/u3.wav", 8000, "en", "spk2"),
        ],
    )
    grids = tmp_path / "textgrids"
    write_textgrid(grids / "spk1" / "u1.TextGrid", U1, 1.0)  # MFA's <speaker>/<uttid>: matches the key
    write_textgrid(grids / "u2.TextGrid", U2, 0.5)  # flat: matches by utterance id
    write_textgrid(grids / "u9.TextGrid", U2, 0.5)  # of no manifest utterance
    return {"root": tmp_path, "out": tmp_path / "corpus", "manifest": manifest, "textgrids": grids}


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _phones(corpus: dict[str, Path], *extra: str) -> int:
    manifest, out = str(corpus["manifest"]), str(corpus["out"])
    return main(["prepare", "items", "phones", "--manifest", manifest, "--out", out, "--no-progress", *extra])


def test_textgrid_phone_items_follow_the_frame_and_silence_rules(
    corpus: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _phones(corpus, "--textgrids", str(corpus["textgrids"])) == 0
    out, err = capsys.readouterr()
    items = corpus["out"] / "items"
    assert _lines(items / "en_test_phoneme.item") == [HEADER, *PHONEME_ROWS]
    assert _lines(items / "en_test_triphone.item") == [HEADER, *TRIPHONE_ROWS]
    assert "1 of 3 alignments" in err and "u9" in err  # the alignment of no manifest utterance
    assert "1 of 3 utterances" in err and "spk2/u3" in err  # the manifest utterance without alignment
    assert "6 phoneme items, 5 triphone items" in out
    card = json.loads((corpus["out"] / "corpus.json").read_text())
    assert card["items"] == {"en_test_phoneme.item": 6, "en_test_triphone.item": 5}
    assert card["sources"][0]["kind"] == "items phones"
    records = [json.loads(line) for line in _lines(corpus["out"] / "alignments" / "en_test.jsonl")]
    assert [r["key"] for r in records] == ["spk1/u1", "spk2/u2"]
    assert records[0]["phones"][:3] == [[0.0, 0.1, "SIL"], [0.1, 0.2, "HH"], [0.2, 0.35, "AH"]]
    assert records[0]["words"] == [[0.1, 0.98, "word"]]
    assert _phones(corpus, "--textgrids", str(corpus["textgrids"])) == 2  # written before: refused
    assert "--overwrite" in capsys.readouterr().err
    assert _phones(corpus, "--textgrids", str(corpus["textgrids"]), "--overwrite", "--no-strip-stress") == 0
    assert _lines(items / "en_test_phoneme.item")[1] == "spk1/u1 0.2000 0.3500 AH0 HH L spk1"


def test_ctm_gives_the_same_items_with_zero_length_phones_and_gaps(
    corpus: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ctm = corpus["root"] / "phones.ctm"
    lines = [";; Kaldi phone CTM, position-dependent phones, silences left out (gaps) or as SIL"]
    for uttid, phones in (("u1", U1), ("u2", U2)):
        for onset, offset, label in phones:
            if label != "sp":  # the brief pause becomes a gap
                lines.append(f"{uttid} 1 {onset:.3f} {offset - onset:.3f} {label.upper()}_I 0.98")
        if uttid == "u2":
            lines.insert(-4, "u2 1 0.218 0.000 W_B")  # zero-length: dropped, AA and D stay neighbours
    ctm.write_text("\n".join(lines) + "\n")
    assert _phones(corpus, "--ctm", str(ctm)) == 0
    items = corpus["out"] / "items"
    assert _lines(items / "en_test_phoneme.item") == [HEADER, *PHONEME_ROWS]
    assert _lines(items / "en_test_triphone.item") == [HEADER, *TRIPHONE_ROWS]
    assert "1 zero-length phone(s) dropped" in capsys.readouterr().out


def test_bad_alignments_are_named_errors(corpus: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = corpus["root"]
    ctm = root / "bad.ctm"
    ctm.write_text("u1 1 0.0 0.1 HH\nu1 1 0.1 HH\n")
    assert _phones(corpus, "--ctm", str(ctm)) == 2
    assert f"{ctm}:2: 4 fields" in capsys.readouterr().err
    ctm.write_text("u1 1 0.0 0.2 HH\nu1 1 0.1 0.2 AH\n")
    assert _phones(corpus, "--ctm", str(ctm)) == 2
    assert f"{ctm}:2: phone 'AH' starts at 0.1 s, before the previous phone" in capsys.readouterr().err
    ctm.write_text("x7 1 0.0 0.2 HH\n")
    assert _phones(corpus, "--ctm", str(ctm)) == 2
    assert "none of the 1 alignments" in capsys.readouterr().err
    ctm.write_text("u2 1 0.0 0.2 HH\nu2 1 0.2 0.45 AH\n")  # u2 lasts 0.5 s
    assert _phones(corpus, "--ctm", str(ctm)) == 2
    assert "'AH' ends at 0.650 s but the audio lasts 0.500 s" in capsys.readouterr().err
    ctm.write_text("u2 1 0.0 0.2 HH\nu2 1 0.2 0.305 AH\n")  # 5 ms past the end: within tolerance, cut
    assert _phones(corpus, "--ctm", str(ctm), "--overwrite") == 2  # cut, but then no item: named too
    assert "give no phone item" in capsys.readouterr().err
    grid = root / "notier" / "u1.TextGrid"
    write_textgrid(grid, U1, 1.0, tier="segments")
    assert _phones(corpus, "--textgrids", str(grid.parent)) == 2
    assert f"{grid}: no tier 'phones'; its tiers are 'segments', 'words'" in capsys.readouterr().err
    with pytest.raises(MissingPhoneTierError):
        read_textgrid(grid, directory=grid.parent)
    assert read_textgrid(grid, directory=grid.parent, phone_tier="segments").phones[1].label == "HH"


def test_unspeakered_manifest_is_refused_with_the_entry(corpus: dict[str, Path]) -> None:
    manifest = corpus["out"] / "manifests" / "en_valid.tsv"
    manifest.write_text(f"{corpus['root'] / 'audio'}\nspk1/u1.wav\t16000\n")
    with pytest.raises(MissingSpeakerError, match=r"entry spk1/u1.wav has no speaker"):
        prepare_phone_items(
            manifest, corpus=corpus["out"], textgrids=corpus["textgrids"], ctm=None, language="en",
            split="valid", phone_tier="phones", word_tier="words", rules=LabelRules(), brief_pause=0.02,
            tolerance=0.01, overwrite=False, progress=False,
        )  # fmt: skip


# --- language items --------------------------------------------------------------------------------------


@pytest.fixture
def two_languages(tmp_path: Path) -> dict[str, Path]:
    audio = tmp_path / "audio"
    durations = {"en": [("spk1", "e1", 2.05), ("spk1", "e2", 1.05), ("spk2", "e3", 3.05)],
                 "fr": [("spk1", "f1", 1.05), ("spk2", "f2", 2.05)]}  # fmt: skip
    manifests = {}
    for lang, utterances in durations.items():
        rows = []
        for speaker, name, seconds in utterances:
            samples = round(seconds * 16000)
            write_wav(audio / lang / f"{name}.wav", samples)
            rows.append((f"{lang}/{name}.wav", samples, lang, speaker))
        manifests[lang] = write_manifest(tmp_path / "corpus" / "manifests" / f"{lang}_test.tsv", audio, rows)
    return {"out": tmp_path / "corpus", **manifests}


def _languages(paths: dict[str, Path], *extra: str) -> int:
    manifests = ["--manifest", str(paths["en"]), "--manifest", str(paths["fr"])]
    return main(
        ["prepare", "items", "languages", *manifests, "--out", str(paths["out"]), "--no-progress", *extra]
    )


def test_language_windows_are_balanced_per_bin(
    two_languages: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # windows: e1 2.04 s of frames -> 2, e2 -> 1, e3 -> 3 (en 6); f1 -> 1, f2 -> 2 (fr 3): 3 of each kept
    assert _languages(two_languages, "--window", "1.0") == 0
    item = two_languages["out"] / "items" / "test_language.item"
    rows = [line.split() for line in _lines(item)[1:]]
    assert _lines(item)[0] == "#file onset offset #language speaker length"
    assert sorted(r[0] for r in rows if r[3] == "fr") == ["fr/f1", "fr/f2", "fr/f2"]
    assert sum(r[3] == "en" for r in rows) == 3 and {r[5] for r in rows} == {"d100"}
    assert all(float(r[2]) - float(r[1]) == pytest.approx(1.0) and float(r[1]) % 1.0 == 0 for r in rows)
    assert "2 speaker id(s) occur in several languages" in capsys.readouterr().err
    assert _languages(two_languages, "--overwrite", "--max-per-speaker", "1") == 0
    rows = [line.split() for line in _lines(item)[1:]]
    assert sorted((r[3], r[4]) for r in rows) == [
        ("en", "spk1"),
        ("en", "spk2"),
        ("fr", "spk1"),
        ("fr", "spk2"),
    ]
    card = json.loads((two_languages["out"] / "corpus.json").read_text())
    assert card["items"] == {"test_language.item": 4}


def test_whole_utterances_are_binned_and_a_bin_one_language_lacks_is_dropped(
    two_languages: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _languages(two_languages, "--whole", "--bin-seconds", "1.0", "--prefix-speakers") == 0
    rows = _lines(two_languages["out"] / "items" / "test_language.item")[1:]
    assert rows == [  # e3 (3.04 s) has no French partner in bin d300
        "en/e1 0.0000 2.0400 en en:spk1 d200",
        "en/e2 0.0000 1.0400 en en:spk1 d100",
        "fr/f1 0.0000 1.0400 fr fr:spk1 d100",
        "fr/f2 0.0000 2.0400 fr fr:spk2 d200",
    ]
    assert "no speaker speaks two of the languages" in capsys.readouterr().err
    assert main(["prepare", "items", "languages", "--manifest", str(two_languages["en"]), "--out",
                 str(two_languages["out"])]) == 2  # fmt: skip
    assert "at least two" in capsys.readouterr().err


# --- imported item files ---------------------------------------------------------------------------------


def _import(item: Path, audio_root: Path, out: Path, *extra: str) -> int:
    return main(["prepare", "items", "import", str(item), "--audio-root", str(audio_root), "--out", str(out),
                 "--split", "test", "--no-progress", *extra])  # fmt: skip


def test_import_copies_the_file_and_writes_a_manifest_of_its_audio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flat = tmp_path / "zr2021" / "dev-clean"
    write_wav(flat / "u1.wav", 16000)
    write_wav(flat / "u2.flac", 8000)
    item = tmp_path / "dev-clean.item"
    item.write_text(f"{HEADER}\nu1 0.1000 0.5000 AH HH L s1\nu2 0.2180 0.4800 B AA IY s2\n")
    out = tmp_path / "corpus"
    assert _import(item, flat, out) == 2
    assert "pass --language" in capsys.readouterr().err
    assert _import(item, flat, out, "--language", "en") == 0
    assert (out / "items" / "en_test_triphone.item").read_bytes() == item.read_bytes()
    manifest = read_manifest(out / "manifests" / "en_test.tsv")
    assert manifest.root == flat.resolve()
    assert [(e.path, e.num_samples, e.language, e.speaker) for e in manifest.entries] == [
        ("u1.wav", 16000, "en", "s1"),
        ("u2.flac", 8000, "en", "s2"),
    ]
    assert json.loads((out / "corpus.json").read_text())["items"] == {"en_test_triphone.item": 2}
    # a second import (phoneme flavour, linked) keeps the manifest, which holds every file
    assert _import(item, flat, out, "--language", "en", "--flavour", "phoneme", "--link") == 0
    assert (out / "items" / "en_test_phoneme.item").is_symlink()
    assert "kept manifests/en_test.tsv" in capsys.readouterr().out


def test_import_finds_nested_audio_by_basename_and_checks_items(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "LibriSpeech"
    write_wav(root / "dev-clean" / "1" / "2" / "1-2-0000.flac", 16000)
    write_wav(root / "dev-clean" / "1" / "2" / "1-2-0001.flac", 8000)
    item = tmp_path / "dev-clean.item"
    item.write_text(f"{HEADER}\n1-2-0000 0.1000 0.5000 AH HH L 1\n1-2-0001 0.3000 0.5000 IY B Z 1\n")
    out = tmp_path / "corpus"
    assert _import(item, root, out, "--language", "en") == 2
    assert "2 of 2 files named in the item file have no audio" in capsys.readouterr().err
    assert _import(item, root, out, "--language", "en", "--find-by-basename") == 2
    err = capsys.readouterr().err
    assert f"{item}:3: 1-2-0001 0.3000-0.5000 ends past the audio's last frame (24 frames" in err
    assert _import(item, root, out, "--language", "en", "--find-by-basename", "--drop-bad-items") == 0
    assert "left out 1 item(s)" in capsys.readouterr().err
    copied = read_item_file(out / "items" / "en_test_triphone.item")
    assert [fields for _, fields in copied.rows()] == [
        ["dev-clean/1/2/1-2-0000", "0.1000", "0.5000", "AH", "HH", "L", "1"]
    ]
    assert [e.key for e in read_manifest(out / "manifests" / "en_test.tsv").entries] == [
        "dev-clean/1/2/1-2-0000"
    ]


def test_import_refuses_other_rates_tabs_and_a_manifest_without_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audio = tmp_path / "audio"
    write_wav(audio / "u1.wav", 8000, sample_rate=8000)
    write_wav(audio / "u2.wav", 16000)
    item = tmp_path / "a.item"
    item.write_text(f"{HEADER}\nu1 0.1000 0.3000 AH HH L s1\n")
    out = tmp_path / "corpus"
    assert _import(item, audio, out, "--language", "en") == 2
    assert "u1.wav is 8000 Hz" in capsys.readouterr().err
    item.write_text(f"{HEADER}\nu2\t0.1000 0.3000 AH HH L s1\n")
    assert _import(item, audio, out, "--language", "en") == 2
    assert "separated by tabs" in capsys.readouterr().err
    write_manifest(out / "manifests" / "en_test.tsv", audio, [("other.wav", 16000, "en", "s9")])
    item.write_text(f"{HEADER}\nu2 0.1000 0.3000 AH HH L s1\n")
    assert _import(item, audio, out, "--language", "en") == 2
    assert "lacks 1 of the 1 files" in capsys.readouterr().err
