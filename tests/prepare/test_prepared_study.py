"""From published layouts to a study report: the built-in tiny corpus rewritten as LibriSpeech (en), MLS
(fr), SpokenCOCO (Karpathy files, en and fr captions) and CTM alignments, prepared with `vgssl prepare`, then
`vgssl study` on the prepared corpus (a few steps per run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile
import yaml

from vgssl.audio.io import read_audio
from vgssl.cli import main
from vgssl.corpus.build import build_corpus
from vgssl.corpus.spec import make_spec
from vgssl.data.alignments import read_alignments
from vgssl.study.runner import run_study

TINY_PRESET = Path(__file__).parents[2] / "configs" / "tiny.yaml"
SUBSETS = {"train": "train-clean-100", "valid": "dev-clean", "test": "test-clean"}
MLS_SPLITS = {"train": "train", "valid": "dev", "test": "test"}
KARPATHY = {"train": "train", "valid": "val", "test": "test"}


def _speaker_number(speaker: str) -> int:
    return int(speaker.lstrip("s"))  # the built-in corpus's "s16" -> LibriSpeech-style 16


def _write_speech(built: Path, root: Path, language: str, ctm: Path) -> None:
    """The built-in `language` speech in LibriSpeech (en) or MLS (fr) layout, and its phones as a CTM."""
    ctm_rows = []
    for split in ("train", "valid", "test"):
        transcripts: dict[Path, list[str]] = {}
        for record in read_alignments(built / "alignments" / f"{language}_{split}.jsonl"):
            if record["kind"] != "speech":
                continue
            speaker, number = _speaker_number(record["speaker"]), len(ctm_rows)
            if language == "en":
                uttid = f"{speaker}-1-{number:04d}"
                path = root / SUBSETS[split] / str(speaker) / "1" / f"{uttid}.flac"
                transcript, line = path.parent / f"{speaker}-1.trans.txt", f"{uttid} {record['text'].upper()}"
            else:
                uttid = f"{speaker}_1_{number:06d}"
                path = root / MLS_SPLITS[split] / "audio" / str(speaker) / "1" / f"{uttid}.flac"
                transcript, line = root / MLS_SPLITS[split] / "transcripts.txt", f"{uttid}\t{record['text']}"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(path), read_audio(built / "audio" / record["wav"]), 16_000, format="FLAC")
            transcripts.setdefault(transcript, []).append(line)
            ctm_rows += [
                f"{uttid} 1 {onset:.6f} {offset - onset:.6f} {label}"
                for onset, offset, label in record["phones"]
            ]
        for transcript, lines in transcripts.items():
            transcript.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ctm.write_text("\n".join(ctm_rows) + "\n", encoding="utf-8")


def _write_spokencoco(built: Path, root: Path, coco: Path) -> None:
    """SpokenCOCO's nested Karpathy files, one per language and split; wavs under ROOT/wavs, images under
    the COCO root."""
    for split, name in KARPATHY.items():
        document = json.loads((built / f"captions_{split}.json").read_text(encoding="utf-8"))
        for language in ("en", "fr"):
            data = []
            for entry in document["data"]:
                image = f"{name}2014/{Path(entry['image']).name}"
                (coco / image).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(built / entry["image"], coco / image)
                captions = []
                for caption in entry["captions"]:
                    if caption["lang"] != language:
                        continue
                    wav = f"wavs/{name}/{Path(caption['wav']).name}"
                    (root / wav).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(built / caption["wav"], root / wav)
                    captions.append({"text": caption["text"], "speaker": caption["speaker"],
                                     "uttid": caption["uttid"], "wav": wav})  # fmt: skip
                data.append({"image": image, "captions": captions})
            folder = root if language == "en" else root / "fr"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"SpokenCOCO_{name}_karpathy.json").write_text(json.dumps({"data": data}))


def _prepare(*argv: object) -> None:
    assert main(["prepare", *map(str, argv), "--no-progress"]) == 0, argv


@pytest.mark.slow
def test_a_study_runs_on_a_corpus_prepared_from_published_layouts(tmp_path: Path) -> None:
    built = tmp_path / "built"
    build_corpus(make_spec(tiny=True), built, workers=2, progress=False, log=lambda _: None)
    sources, corpus = tmp_path / "sources", tmp_path / "corpus"
    _write_speech(built, sources / "LibriSpeech", "en", sources / "en.ctm")
    _write_speech(built, sources / "mls_french", "fr", sources / "fr.ctm")
    _write_spokencoco(built, sources / "SpokenCOCO", sources / "coco")

    _prepare("librispeech", sources / "LibriSpeech", "--out", corpus)
    _prepare("mls", sources / "mls_french", "--language", "french", "--out", corpus)
    _prepare("spokencoco", sources / "SpokenCOCO", "--images", sources / "coco", "--out", corpus)
    fr_files = [
        f"{s}={sources / 'SpokenCOCO' / 'fr' / f'SpokenCOCO_{n}_karpathy.json'}" for s, n in KARPATHY.items()
    ]
    _prepare("spokencoco", sources / "SpokenCOCO", "--images", sources / "coco", "--language", "fr",
             *[arg for f in fr_files for arg in ("--split", f)], "--out", corpus)  # fmt: skip
    for language in ("en", "fr"):
        for split in ("valid", "test"):
            _prepare("items", "phones", "--manifest", corpus / "manifests" / f"{language}_{split}.tsv",
                     "--ctm", sources / f"{language}.ctm", "--out", corpus)  # fmt: skip
    manifests = corpus / "manifests"
    _prepare("items", "languages", "--manifest", manifests / "en_test.tsv",
             "--manifest", manifests / "fr_test.tsv", "--window", "0.8", "--out", corpus)  # fmt: skip

    card = json.loads((corpus / "corpus.json").read_text(encoding="utf-8"))
    assert card["languages"] == ["en", "fr"]
    assert [source["kind"] for source in card["sources"]][:3] == ["librispeech", "mls", "spokencoco"]
    built_card = json.loads((built / "corpus.json").read_text(encoding="utf-8"))
    for language in ("en", "fr"):
        hours = built_card["languages"][language]["hours"]["speech"]["train"]
        assert card["audio"][language]["speech"]["train"]["hours"] == pytest.approx(hours, abs=1e-3)
    assert set(card["items"]) >= {"en_test_triphone.item", "fr_valid_triphone.item", "test_language.item"}

    config = yaml.safe_load(TINY_PRESET.read_text(encoding="utf-8"))
    config.update(corpus={"path": str(corpus), "synth": None})
    config["train"].update(max_steps=4, checkpoint={"every": 4}, logging={"every": 2, "tensorboard": False})
    config["evaluation"].update(layers=[0, 1], baselines=["mfcc"])
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(config), encoding="utf-8")
    outcome = run_study(study, tmp_path / "out", progress=False, write=lambda _: None)
    assert outcome.failed == []
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert {row["eval_language"] for row in report["phone_abx"]} == {"en", "fr"}
    assert all(row["layer_chosen_on"] == "valid" for row in report["phone_abx"])
    assert {row["language"] for row in report["retrieval"]} >= {"en", "fr"}
    assert report["language_abx"]
