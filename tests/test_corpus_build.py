"""The built-in corpus, end to end on the tiny preset: outputs, determinism, speakers, items, captions."""

from __future__ import annotations

import filecmp
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from vgssl.corpus.acoustics import AcousticsConfig
from vgssl.corpus.build import build_corpus
from vgssl.corpus.card import IncompleteCorpusError, read_card
from vgssl.corpus.items import frame_count
from vgssl.corpus.spec import CorpusSpecError, make_spec
from vgssl.data.manifest import read_manifest
from vgssl.errors import OutputExistsError

# Every utterance is speed-perturbed and half get disfluent pauses, on top of the default noise, reverb and
# timbre: planted features giving 0 % ABX then proves the alignments stay exact under every transform.
STRESSED = AcousticsConfig(speed_probability=1.0, pause_probability=0.5)


def _build(path: Path, **options: object) -> Path:
    spec = make_spec(tiny=True, acoustics=STRESSED, **options)
    build_corpus(spec, path, workers=2, progress=False, log=lambda _: None)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("corpus") / "tiny")


def _all_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_same_seed_gives_identical_files_and_another_seed_differs(corpus: Path, tmp_path: Path) -> None:
    again = _build(tmp_path / "again")
    files = _all_files(corpus)
    assert files == _all_files(again)
    differing = [
        f for f in files if f.name != "corpus.json" and not filecmp.cmp(corpus / f, again / f, False)
    ]
    assert differing == []
    card, card_again = read_card(corpus), read_card(again)
    card.pop("build"), card_again.pop("build")
    assert card == card_again

    other = _build(tmp_path / "other", seed=1)
    wavs = [f for f in files if f.suffix == ".wav"]
    assert not all((other / f).exists() and filecmp.cmp(corpus / f, other / f, False) for f in wavs)


def test_manifests_match_the_audio_and_speakers_are_disjoint(corpus: Path) -> None:
    card = read_card(corpus)
    train_ids = {s["id"] for s in card["speakers"]["train"]}
    test_ids = {s["id"] for s in card["speakers"]["test"]}
    assert train_ids and test_ids and not train_ids & test_ids
    for language in ("en", "fr"):
        test = read_manifest(corpus / "manifests" / f"{language}_test.tsv")
        assert {e.speaker for e in test.entries} == test_ids  # every language has every test speaker
        for split in ("train", "valid"):
            manifest = read_manifest(corpus / "manifests" / f"{language}_{split}.tsv")
            assert {e.speaker for e in manifest.entries} <= train_ids
        for entry in test.entries[:5]:
            audio, rate = soundfile.read(test.audio_path(entry))
            assert rate == 16_000 and len(audio) == entry.num_samples and entry.language == language


def test_alignments_are_contiguous_and_inside_the_audio(corpus: Path) -> None:
    for line in (corpus / "alignments" / "fr_test.jsonl").read_text().splitlines():
        utt = json.loads(line)
        phones = utt["phones"]
        duration = utt["num_samples"] / utt["sample_rate"]
        assert phones[0][0] == 0.0 and phones[-1][1] == pytest.approx(duration, abs=1e-3)
        assert all(a[1] == pytest.approx(b[0]) for a, b in itertools.pairwise(phones))
        assert all(on < off for on, off, _ in phones)
        assert all(0 <= on < off <= duration + 1e-3 for on, off, _ in utt["words"])


def test_captions_reference_existing_files_in_every_language(corpus: Path) -> None:
    spec = read_card(corpus)["spec"]
    for split in ("train", "valid", "test"):
        data = json.loads((corpus / f"captions_{split}.json").read_text())["data"]
        assert data
        for entry in data:
            assert (corpus / entry["image"]).is_file()
            languages = sorted(c["lang"] for c in entry["captions"])
            assert languages == sorted(["en", "fr"] * spec["captions_per_image"])
            assert all((corpus / c["wav"]).is_file() for c in entry["captions"])


def _planted_features(corpus: Path, root: Path, *, permute: bool, split: str = "test") -> None:
    """Per frame, a one-hot of the phone at the frame's centre (0.01 + 0.02 i s), from the alignments."""
    rng = np.random.default_rng(0)
    for language in ("en", "fr"):
        lines = (corpus / "alignments" / f"{language}_{split}.jsonl").read_text().splitlines()
        utterances = [json.loads(line) for line in lines]
        inventory = sorted({p[2] for u in utterances for p in u["phones"]})
        for utt in utterances:
            index = {phone: i for i, phone in enumerate(inventory)}
            if permute:  # labels shuffled per file: same statistics, no phonetic information
                index = dict(zip(inventory, rng.permutation(len(inventory)).tolist(), strict=True))
            centres = 0.01 + 0.02 * np.arange(frame_count(utt["num_samples"]))
            features = torch.zeros(len(centres), len(inventory))
            for frame, t in enumerate(centres):
                phone = next((p[2] for p in utt["phones"] if p[0] <= t < p[1]), utt["phones"][-1][2])
                features[frame, index[phone]] = 1.0
            path = root / utt["wav"].removesuffix(".wav")
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(features, path.with_suffix(".pt"))


@pytest.mark.parametrize("speaker", ["within", "across"])
def test_planted_phone_features_give_zero_abx_error_and_shuffled_ones_chance(
    corpus: Path, tmp_path: Path, speaker: str
) -> None:
    from fastabx import zerospeech_abx

    planted, shuffled = tmp_path / "planted", tmp_path / "shuffled"
    _planted_features(corpus, planted, permute=False)
    _planted_features(corpus, shuffled, permute=True)
    for language in ("en", "fr"):
        item = corpus / "items" / f"{language}_test_phoneme.item"
        options = {"speaker": speaker, "context": "within", "frequency": 50, "seed": 0}
        options |= {"max_size_group": 10, "max_x_across": 5}
        assert zerospeech_abx(item, planted, **options) == 0.0
        triphone = corpus / "items" / f"{language}_test_triphone.item"
        assert zerospeech_abx(triphone, planted, **options) < 0.03
        assert 0.35 < zerospeech_abx(item, shuffled, **options) < 0.65


def test_valid_items_refer_to_existing_valid_speech_of_train_speakers(corpus: Path) -> None:
    card = read_card(corpus)
    train_ids = {s["id"] for s in card["speakers"]["train"]}
    for language in ("en", "fr"):
        manifest = read_manifest(corpus / "manifests" / f"{language}_valid.tsv")
        samples = {entry.key: entry.num_samples for entry in manifest.entries}
        info = card["languages"][language]
        assert info["speech_speakers"]["valid"] == len({e.speaker for e in manifest.entries}) >= 2
        for flavour in ("phoneme", "triphone"):
            lines = (corpus / "items" / f"{language}_valid_{flavour}.item").read_text().splitlines()
            assert lines[0] == "#file onset offset #phone prev-phone next-phone speaker"
            rows = [line.split() for line in lines[1:]]
            assert len(rows) == info["valid_items"][flavour] > 0
            assert {row[0] for row in rows} <= set(samples)
            assert all(row[0].startswith(f"{language}/valid/") for row in rows)
            assert all(
                (corpus / "audio" / f"{row[0]}.wav").is_file() for row in {r[0]: r for r in rows}.values()
            )
            assert all(0 <= float(row[1]) < float(row[2]) <= samples[row[0]] / 16_000 for row in rows)
            assert {row[6] for row in rows} <= train_ids and len({row[6] for row in rows}) >= 2
    assert "items/{lang}_{valid,test}_{phoneme,triphone}.item" in card["layout"]["items"]


def test_planted_features_give_zero_abx_error_on_the_valid_items(corpus: Path, tmp_path: Path) -> None:
    from fastabx import zerospeech_abx

    _planted_features(corpus, tmp_path, permute=False, split="valid")
    for language in ("en", "fr"):
        item = corpus / "items" / f"{language}_valid_phoneme.item"
        options = {"speaker": "across", "context": "any", "frequency": 50, "seed": 0}
        assert zerospeech_abx(item, tmp_path, max_size_group=10, max_x_across=5, **options) == 0.0


def test_language_items_cover_both_languages_and_all_test_speakers(corpus: Path) -> None:
    rows = [line.split() for line in (corpus / "items" / "test_language.item").read_text().splitlines()[1:]]
    card = read_card(corpus)
    assert {row[3] for row in rows} == {"en", "fr"}
    assert {row[4] for row in rows} == {s["id"] for s in card["speakers"]["test"]}
    assert all(0.4 <= float(row[2]) - float(row[1]) <= 1.2 for row in rows)


def test_refuses_a_non_empty_output_and_an_interrupted_build_has_no_card(
    corpus: Path, tmp_path: Path
) -> None:
    with pytest.raises(OutputExistsError, match="--overwrite"):
        _build(corpus)
    half_built = tmp_path / "half"
    (half_built / "audio").mkdir(parents=True)
    with pytest.raises(IncompleteCorpusError, match="vgssl synth"):
        read_card(half_built)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"train_speakers": 0}, "--train-speakers"),
        ({"hours": -1.0}, "--hours"),
        ({"captions_per_image": 0}, "--captions-per-image"),
    ],
)
def test_nonsensical_numbers_fail_before_any_work(options: dict, fragment: str) -> None:
    with pytest.raises(CorpusSpecError, match=fragment):
        make_spec(tiny=True, **options)


def test_card_states_the_corpus_difficulty_and_transforms(corpus: Path) -> None:
    card = read_card(corpus)
    assert card["spec"]["acoustics"]["speed_probability"] == 1.0
    for language in ("en", "fr"):
        scores = card["difficulty"][language]
        assert 0 < scores["within_speaker"] < 50 and 0 < scores["across_speaker"] < 50
    speeds = [
        json.loads(line)["acoustics"]["speed_factor"]
        for line in (corpus / "alignments" / "en_train.jsonl").read_text().splitlines()
    ]
    assert all(0.9 <= s <= 1.1 for s in speeds) and len(set(speeds)) > 1
