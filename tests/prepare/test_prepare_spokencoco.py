"""`vgssl prepare spokencoco`: SpokenCOCO in its published layouts (and another language) into a corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from vgssl.cli import main
from vgssl.data.captions import read_caption_set
from vgssl.data.manifest import read_manifest

RATE = 16_000
SPEAKERS = ("m071506418gb9vo0w5xq3", "a1ar2xg3h7lq5kf0e9b4n")
# COCO image numbers of the two COCO 2014 splits; the Karpathy split moves val images into train (restval).
TRAIN_IMAGES = (9, 25, 30, 34)
VAL_IMAGES = (42, 73, 74, 133)


def coco_image(split: str, number: int) -> str:
    return f"{split}2014/COCO_{split}2014_{number:012d}.jpg"


def write_coco(coco: Path) -> None:
    """COCO-like jpgs of a few sizes under train2014/ and val2014/."""
    rng = np.random.default_rng(0)
    for split, numbers in (("train", TRAIN_IMAGES), ("val", VAL_IMAGES)):
        for number in numbers:
            path = coco / coco_image(split, number)
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 255, (48 + number % 3 * 8, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, quality=90)


def caption(root: Path, split: str, number: int, index: int, *, rate: int = RATE, prefix: str = "") -> dict:
    """A caption of COCO image `number`, its wav written under root/wavs/ (length known from `index`)."""
    speaker = SPEAKERS[index % 2]
    uttid = f"{prefix}{speaker}-3LUY3GC63Z0R8ZTZ0YAD0CSMOZAV9Y_{number}_{629297 + index}"
    wav = f"wavs/{split}/{index % 2}/{uttid}.wav"
    num_samples = int(rate * (0.5 + 0.1 * index))
    (root / wav).parent.mkdir(parents=True, exist_ok=True)
    tone = 0.1 * np.sin(2 * np.pi * (150 + 10 * number) * np.arange(num_samples) / rate)
    soundfile.write(str(root / wav), tone.astype(np.float32), rate, subtype="PCM_16")
    return {
        "text": f"A PICTURE NUMBER {number} SAID BY {index}",
        "speaker": speaker,
        "uttid": uttid,
        "wav": wav,
    }


def nested(root: Path, entries: list[tuple[str, int]], *, split: str, prefix: str = "") -> dict:
    return {
        "data": [
            {
                "image": coco_image(coco_split, number),
                "captions": [caption(root, split, number, index, prefix=prefix) for index in range(2)],
            }
            for coco_split, number in entries
        ]
    }


def write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture
def published(tmp_path: Path) -> tuple[Path, Path]:
    """SpokenCOCO as released: SpokenCOCO_train.json (train2014), SpokenCOCO_val.json (val2014), wavs/."""
    root, coco = tmp_path / "SpokenCOCO", tmp_path / "coco"
    root.mkdir()
    write_coco(coco)
    write_json(
        root / "SpokenCOCO_train.json", nested(root, [("train", n) for n in TRAIN_IMAGES], split="train")
    )
    write_json(root / "SpokenCOCO_val.json", nested(root, [("val", n) for n in VAL_IMAGES], split="val"))
    return root, coco


def unroll(document: dict) -> dict:
    """FaST-VGS's unrolled Karpathy form: one {"image", "caption"} entry per caption."""
    return {"data": [{"image": e["image"], "caption": c} for e in document["data"] for c in e["captions"]]}


def prepare(*argv: object) -> int:
    return main(["prepare", "spokencoco", *[str(a) for a in argv], "--no-progress"])


def test_the_published_layout_becomes_train_and_test_captions_with_manifests_and_a_card(
    published: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, coco = published
    corpus = tmp_path / "corpus"
    assert prepare(root, "--images", coco, "--out", corpus) == 0
    err = capsys.readouterr().err
    assert "SpokenCOCO_val.json -> test" in err and "--valid-images" in err
    assert not (corpus / "captions_valid.json").exists()

    train = json.loads((corpus / "captions_train.json").read_text())["data"]
    assert [entry["image_id"] for entry in train] == [f"COCO_train2014_{n:012d}" for n in TRAIN_IMAGES]
    first = train[0]
    assert first["image"] == str(coco / coco_image("train", 9)) and Path(first["image"]).is_file()
    assert [c["lang"] for c in first["captions"]] == ["en", "en"]
    assert first["captions"][0]["speaker"] == SPEAKERS[0]
    assert first["captions"][0]["text"] == "A PICTURE NUMBER 9 SAID BY 0"
    assert first["captions"][0]["uttid"].endswith("_9_629297")
    assert first["captions"][0]["wav"] == str(root / "wavs/train/0" / f"{first['captions'][0]['uttid']}.wav")

    # What the trainer and check-images read: no audio or image root needed.
    test_set = read_caption_set(corpus / "captions_test.json")
    assert len(test_set.images) == 4 and test_set.languages == ["en"] and len(test_set.captions) == 8
    assert main(["check-images", str(corpus / "captions_train.json")]) == 0

    manifest = read_manifest(corpus / "manifests/en_train_captions.tsv")
    assert manifest.root == root
    assert manifest.entries[0].path == f"wavs/train/0/{first['captions'][0]['uttid']}.wav"
    assert [entry.num_samples for entry in manifest.entries[:2]] == [8000, 9600]
    assert {entry.language for entry in manifest.entries} == {"en"}
    assert {entry.speaker for entry in manifest.entries} == set(SPEAKERS)
    assert all(manifest.audio_path(entry).is_file() for entry in manifest.entries)

    card = json.loads((corpus / "corpus.json").read_text())
    assert card["captions"] == {
        "train": {"images": 4, "captions": {"en": 8}},
        "test": {"images": 4, "captions": {"en": 8}},
    }
    assert card["audio"]["en"]["captions"]["train"] == {
        "utterances": 8,
        "hours": round(4 * (8000 + 9600) / RATE / 3600, 4),
        "speakers": 2,
    }
    (source,) = card["sources"]
    assert source["kind"] == "spokencoco" and source["options"]["layout"] == "original"
    assert "captions_train.json#en" in source["wrote"] and "manifests/en_test_captions.tsv" in source["wrote"]


def test_the_karpathy_files_give_train_valid_and_test(published: tuple[Path, Path], tmp_path: Path) -> None:
    root, coco = published
    val = [("val", n) for n in VAL_IMAGES]
    splits = {
        "train": [("train", n) for n in TRAIN_IMAGES] + val[:2],  # restval joins train
        "val": val[2:3],
        "test": val[3:],
    }
    for split, entries in splits.items():
        document = nested(root, entries, split="val" if split != "train" else "train")
        write_json(root / f"SpokenCOCO_{split}_karpathy.json", document)
        write_json(root / f"SpokenCOCO_{split}_unrolled_karpathy.json", unroll(document))
    corpus = tmp_path / "corpus"
    assert prepare(root, "--images", coco, "--out", corpus) == 0
    card = json.loads((corpus / "corpus.json").read_text())
    assert card["sources"][0]["options"]["layout"] == "karpathy-unrolled"
    assert {split: info["images"] for split, info in card["captions"].items()} == {
        "train": 6,
        "valid": 1,
        "test": 1,
    }
    # Unrolled entries of one image are one image with all its captions again.
    train = json.loads((corpus / "captions_train.json").read_text())["data"]
    assert [len(entry["captions"]) for entry in train] == [2] * 6
    assert read_manifest(corpus / "manifests/en_valid_captions.tsv").entries[0].path.startswith("wavs/val/")

    # Without the unrolled files, the nested Karpathy files give the same corpus.
    for split in splits:
        (root / f"SpokenCOCO_{split}_unrolled_karpathy.json").unlink()
    assert prepare(root, "--images", coco, "--out", tmp_path / "nested") == 0
    again = json.loads((tmp_path / "nested/corpus.json").read_text())
    assert again["sources"][0]["options"]["layout"] == "karpathy" and again["captions"] == card["captions"]
    assert (tmp_path / "nested/captions_train.json").read_text() == (
        corpus / "captions_train.json"
    ).read_text()


def test_a_second_language_merges_into_the_same_caption_files_by_image(
    published: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, coco = published
    corpus = tmp_path / "corpus"
    assert prepare(root, "--images", coco, "--out", corpus) == 0
    # A French set with SpokenCOCO's shape in a tree of its own, covering some of the same images (and one
    # image English does not have in this corpus), in the flat form (the entry is the caption).
    french = tmp_path / "french"
    french.mkdir()
    document = nested(french, [("train", 25), ("train", 34)], split="train", prefix="fr")
    flat = {"data": [{"image": e["image"], **c} for e in document["data"] for c in e["captions"]]}
    write_json(french / "fr_train.json", flat)
    write_json(french / "fr_test.json", nested(french, [("val", 42)], split="val", prefix="fr"))
    assert (
        prepare(
            french,
            "--images",
            coco,
            "--out",
            corpus,
            "--language",
            "fr",
            "--split",
            "train=fr_train.json",
            "--split",
            "test=fr_test.json",
        )
        == 0
    )
    train = {e["image_id"]: e for e in json.loads((corpus / "captions_train.json").read_text())["data"]}
    assert len(train) == 4
    assert [c["lang"] for c in train["COCO_train2014_000000000025"]["captions"]] == ["en", "en", "fr", "fr"]
    assert [c["lang"] for c in train["COCO_train2014_000000000009"]["captions"]] == ["en", "en"]
    both = read_caption_set(corpus / "captions_train.json")
    assert both.languages == ["en", "fr"] and len(both.captions) == 12
    card = json.loads((corpus / "corpus.json").read_text())
    assert card["captions"]["train"] == {"images": 4, "captions": {"en": 8, "fr": 4}}
    assert card["captions"]["test"] == {"images": 4, "captions": {"en": 8, "fr": 2}}
    assert [source["options"]["language"] for source in card["sources"]] == ["en", "fr"]
    assert read_manifest(corpus / "manifests/fr_train_captions.tsv").root == french

    # English again: refused without --overwrite; with it, English is replaced and French is kept.
    capsys.readouterr()
    assert prepare(root, "--images", coco, "--out", corpus) == 2
    err = capsys.readouterr().err
    assert "would overwrite" in err and "--overwrite" in err
    assert prepare(root, "--images", coco, "--out", corpus, "--overwrite", "--max-images", "train=2") == 0
    card = json.loads((corpus / "corpus.json").read_text())
    assert card["captions"]["train"]["captions"] == {"en": 4, "fr": 4}
    assert sorted(source["options"]["language"] for source in card["sources"]) == ["en", "fr"]


def test_max_images_and_valid_images_are_seeded_subsets(published: tuple[Path, Path], tmp_path: Path) -> None:
    root, coco = published

    def images(corpus: Path, split: str) -> list[str]:
        return [e["image_id"] for e in json.loads((corpus / f"captions_{split}.json").read_text())["data"]]

    options = ["--images", coco, "--max-images", "train=3,test=2", "--valid-images", "1"]
    for name in ("a", "b"):
        assert prepare(root, *options, "--seed", "4", "--out", tmp_path / name) == 0
    assert images(tmp_path / "a", "train") == images(tmp_path / "b", "train")
    assert len(images(tmp_path / "a", "train")) == 2 and len(images(tmp_path / "a", "valid")) == 1
    assert len(images(tmp_path / "a", "test")) == 2
    chosen = images(tmp_path / "a", "train") + images(tmp_path / "a", "valid")
    order = [f"COCO_train2014_{n:012d}" for n in TRAIN_IMAGES]
    assert images(tmp_path / "a", "train") == sorted(images(tmp_path / "a", "train"), key=order.index)
    assert set(chosen) <= set(order)
    seeds = {tuple(chosen)}
    for seed in range(5, 12):
        assert prepare(root, *options, "--seed", seed, "--out", tmp_path / f"s{seed}") == 0
        seeds.add(tuple(images(tmp_path / f"s{seed}", "train") + images(tmp_path / f"s{seed}", "valid")))
    assert len(seeds) > 1


def _break(root: Path, file: str, change) -> None:
    path = root / file
    document = json.loads(path.read_text())
    change(document)
    write_json(path, document)


def test_bad_inputs_are_named_errors(
    published: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, coco = published
    corpus = tmp_path / "corpus"
    data = json.loads((root / "SpokenCOCO_val.json").read_text())["data"]

    missing = root / data[1]["captions"][0]["wav"]
    missing.unlink()
    assert prepare(root, "--images", coco, "--out", corpus) == 2
    err = capsys.readouterr().err
    assert (
        "SpokenCOCO_val.json: data[1].captions[0]" in err and str(missing) in err and "does not exist" in err
    )
    assert not (corpus / "captions_train.json").exists()  # nothing was written
    # Or leave it out and count it.
    assert prepare(root, "--images", coco, "--out", corpus, "--on-missing", "skip") == 0
    card = json.loads((corpus / "corpus.json").read_text())
    assert card["captions"]["test"]["captions"] == {"en": 7}
    assert card["sources"][0]["options"]["skipped"]["test"]["missing_wav"] == 1

    slow = root / data[2]["captions"][1]["wav"]
    soundfile.write(str(slow), np.zeros(8000, dtype=np.float32), 8000, subtype="PCM_16")
    assert prepare(root, "--images", coco, "--out", tmp_path / "c2", "--on-missing", "skip") == 2
    err = capsys.readouterr().err
    assert "data[2].captions[1]" in err and "8000 Hz, not 16000 Hz" in err and "--on-bad-audio skip" in err

    (coco / coco_image("train", 30)).unlink()
    assert prepare(root, "--images", coco, "--out", tmp_path / "c3") == 2
    err = capsys.readouterr().err
    assert "SpokenCOCO_train.json: data[2]" in err and "COCO_train2014_000000000030.jpg does not exist" in err

    write_json(root / "SpokenCOCO_train.json", [{"image": "x.jpg", "captions": []}])
    assert prepare(root, "--images", coco, "--out", tmp_path / "c4") == 2
    assert 'expected {"data": [...]}' in capsys.readouterr().err

    write_json(
        root / "SpokenCOCO_train.json", {"data": [{"image": "x.jpg", "captions": [{"text": "no wav"}]}]}
    )
    assert prepare(root, "--images", coco, "--out", tmp_path / "c5") == 2
    assert 'data[0].captions[0]: a caption needs a "wav" path' in capsys.readouterr().err

    assert prepare(tmp_path / "nowhere", "--images", coco, "--out", tmp_path / "c6") == 2
    assert "is not a directory" in capsys.readouterr().err
    assert prepare(root, "--images", coco, "--out", tmp_path / "c7", "--language", "en_US") == 2
    assert "--language 'en_US'" in capsys.readouterr().err


def test_splits_that_share_an_image_are_refused(published: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    root, coco = published
    options = ["--images", coco, "--out", tmp_path / "corpus", "--split", "train=SpokenCOCO_val.json"]
    assert prepare(root, *options, "--split", "test=SpokenCOCO_val.json") == 2
    err = capsys.readouterr().err
    assert "would be in both captions_train.json and captions_test.json" in err
