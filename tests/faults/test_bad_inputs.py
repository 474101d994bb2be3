"""Inputs that used to crash deep inside a library now fail with a named error saying file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from vgssl.cli import main
from vgssl.data.items import ItemFileError, item_keys, read_item_file
from vgssl.train.config import ConfigError, load_config

HEADER = "#file onset offset #phone prev-phone next-phone speaker\n"


def test_a_tab_separated_item_file_is_refused_with_its_line(tmp_path: Path, capsys) -> None:
    items = tmp_path / "test.item"
    items.write_text(HEADER + "a 0.1 0.2 p b c s1\n" + "a\t0.3\t0.4\tp\tb\tc\ts1\n", encoding="utf-8")
    with pytest.raises(ItemFileError, match=rf"{items}:3: the fields are separated by tabs"):
        item_keys(items)
    with pytest.raises(ItemFileError, match=r":3: the fields are separated by tabs"):
        list(read_item_file(items).rows())
    header_tabs = tmp_path / "tabs.item"
    header_tabs.write_text(HEADER.replace(" ", "\t"), encoding="utf-8")
    with pytest.raises(ItemFileError, match=r"tabs.item:1: the fields are separated by tabs"):
        read_item_file(header_tabs)
    # The command that reads it says so too, as a one-line error with exit status 2.
    assert main(["extract", "mfcc", str(items), str(tmp_path / "out")]) == 2
    assert "test.item:3: the fields are separated by tabs" in capsys.readouterr().err


def test_a_config_that_is_not_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_bytes(b"run_dir: run\nmax_steps: 3\n# caf\xe9 in latin-1\n")
    with pytest.raises(ConfigError, match=rf"{config}:3: not UTF-8 text \(byte 0xe9"):
        load_config(config)


def test_an_item_past_the_end_of_its_audio_is_named_by_extract(tmp_path: Path, capsys) -> None:
    import numpy as np

    from vgssl.audio.io import write_wav

    write_wav(tmp_path / "audio" / "en" / "u1.wav", np.zeros(3 * 16000, dtype=np.float32))
    items = tmp_path / "items" / "test.item"
    items.parent.mkdir()
    items.write_text(HEADER + "en/u1 0.10 0.20 p b c s1\n" + "en/u1 99.40 99.50 p b c s1\n", encoding="utf-8")
    assert main(["extract", "mfcc", str(items), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "test.item:3: item of en/u1 ends at 99.50 s" in error and "lasts 3.000 s" in error
    assert not (tmp_path / "out").exists()  # refused before any work
    items.write_text(HEADER + "en/u1 0.10 0.20 p b c s1\n" + "en/u1 2.90 3.005 p b c s1\n", encoding="utf-8")
    assert main(["extract", "mfcc", str(items), str(tmp_path / "out")]) == 0  # within half a frame: fine


def test_a_truncated_wav_behind_an_intact_header_is_named_not_trained_on(tmp_path: Path) -> None:
    import numpy as np

    from vgssl.audio.io import BadAudioError, write_wav
    from vgssl.train.data import AudioDataset, check_problems, collate_batch
    from vgssl.train.mixture import Utterance

    def utterance(name: str, samples: int, claimed: int) -> Utterance:
        write_wav(tmp_path / f"{name}.wav", 0.1 * np.ones(samples, dtype=np.float32))
        return Utterance(utt_id=name, path=tmp_path / f"{name}.wav", num_samples=claimed, language="en",
                         source="train.tsv")  # fmt: skip

    dataset = AudioDataset(
        [utterance("whole", 16000, 16000), utterance("cut", 12000, 35521)],
        max_samples=64000, seed=0, sample_rate=16000, on_wrong_sample_rate="resample",
    )  # fmt: skip
    assert dataset[0].problem is None and len(dataset[0].audio) == 16000
    problem = dataset[1].problem
    assert problem is not None and problem.kind == "length" and dataset[1].audio is None
    assert "cut.wav holds 12000 samples at 16000 Hz, but train.tsv says 35521" in problem.message
    batch = collate_batch([dataset[0], dataset[1]])
    assert batch.utt_ids == ["whole"]  # skipped (and logged) under on_bad_audio: skip
    with pytest.raises(BadAudioError, match="truncated or the manifest is stale"):
        check_problems(batch, on_bad_audio="fail")


def test_a_stereo_file_whose_channels_cancel_is_flagged_silent(tmp_path: Path) -> None:
    import numpy as np
    import soundfile

    from vgssl.train.data import AudioDataset
    from vgssl.train.mixture import Utterance

    tone = 0.3 * np.sin(np.arange(16000) / 5.0).astype(np.float32)
    soundfile.write(tmp_path / "cancel.wav", np.stack([tone, -tone], axis=1), 16000, subtype="FLOAT")
    soundfile.write(tmp_path / "left.wav", np.stack([tone, 0 * tone], axis=1), 16000, subtype="FLOAT")
    utterances = [
        Utterance(
            utt_id=name, path=tmp_path / f"{name}.wav", num_samples=16000, language="en", source="m.tsv"
        )
        for name in ("cancel", "left")
    ]
    dataset = AudioDataset(
        utterances,
        max_samples=64000, seed=0, sample_rate=16000, on_wrong_sample_rate="resample",
    )  # fmt: skip
    assert dataset[0].problem is not None and dataset[0].problem.kind == "silent"
    assert "cancel.wav is silent" in dataset[0].problem.message
    assert dataset[1].problem is None  # one silent channel is not a silent file


def test_a_missing_audio_file_says_file_not_found(tmp_path: Path) -> None:
    from vgssl.audio.io import BadAudioError, read_audio

    with pytest.raises(BadAudioError, match=rf"audio file not found: {tmp_path / 'gone.wav'}$"):
        read_audio(tmp_path / "gone.wav")
    # The trainer names the manifest line and the utterance too.
    from vgssl.data.manifest import ManifestEntry, write_manifest
    from vgssl.train.config import ManifestSource
    from vgssl.train.data import AudioDataset, load_split

    manifest = tmp_path / "train.tsv"
    write_manifest(
        manifest, tmp_path, [ManifestEntry("here.wav", 16000, "en"), ManifestEntry("gone.wav", 16000, "en")]
    )
    split = load_split([ManifestSource(manifest=manifest)], min_seconds=0.1, sample_rate=16000, split="train")
    gone = next(u for utterances in split.pool.values() for u in utterances if u.utt_id == "gone")
    dataset = AudioDataset(
        [gone], max_samples=16000, seed=0, sample_rate=16000, on_wrong_sample_rate="resample"
    )
    problem = dataset[0].problem
    assert problem is not None and problem.kind == "unreadable" and problem.utt_id == "gone"
    assert problem.message == f"audio file not found: {tmp_path / 'gone.wav'} ({manifest}:3)"


def test_extracting_a_header_only_manifest_is_an_error(tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "empty.tsv"
    manifest.write_text(f"{tmp_path}\n", encoding="utf-8")
    assert main(["extract", "mfcc", str(manifest), str(tmp_path / "out")]) == 2
    assert "lists no audio" in capsys.readouterr().err
    assert not (tmp_path / "out" / "features.json").exists()


def test_abx_out_and_its_csv_twin_are_one_output(tmp_path: Path) -> None:
    from vgssl.errors import OutputExistsError
    from vgssl.evaluate.abx_command import check_output

    out = tmp_path / "new.json"
    check_output(out, overwrite=False)
    out.with_suffix(".csv").write_text("kept\n")
    with pytest.raises(OutputExistsError, match=r"new.csv exist\(s\); --out writes new.json and new.csv"):
        check_output(out, overwrite=False)
    check_output(out, overwrite=True)


def test_the_missing_language_hint_names_the_config_key(tmp_path: Path) -> None:
    import json

    from vgssl.data.captions import CaptionSetError, read_caption_set

    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"data": [{"image": "a.png", "captions": [{"wav": "a.wav"}]}]}))
    with pytest.raises(CaptionSetError, match=r"captions\.train\[i\]\.language"):
        read_caption_set(captions, require_image_files=False)


def test_check_images_reads_the_caption_audio_too(tmp_path: Path, capsys) -> None:
    import json

    import numpy as np
    from PIL import Image

    from vgssl.audio.io import write_wav

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    write_wav(tmp_path / "good.wav", 0.1 * np.ones(16000, dtype=np.float32))
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    captions = [{"wav": name, "lang": "en"} for name in ("good.wav", "noise.wav")]
    (tmp_path / "c.json").write_text(json.dumps({"data": [{"image": "a.png", "captions": captions}]}))
    assert main(["check-images", str(tmp_path / "c.json")]) == 1
    printed = capsys.readouterr().out
    assert "cannot read caption audio" in printed and "noise.wav" in printed
    assert "caption audio: 1 of 2 readable" in printed and printed.rstrip().endswith("1 problem(s)")


def test_the_wrong_dimension_error_names_the_odd_file_even_when_it_is_read_first(tmp_path: Path) -> None:
    import torch

    from vgssl.evaluate.abx import BadFeaturesError, CheckedFeatureLoader, FrameNeed

    layer = tmp_path / "0"
    layer.mkdir()
    for name, dim in (("a", 39), ("b", 20), ("c", 20), ("d", 20)):
        torch.save(torch.zeros(10, dim), layer / f"{name}.pt")
    loader = CheckedFeatureLoader(layer, {key: FrameNeed(frames=1, offset=0.01) for key in "abcd"})
    loader(layer / "a.pt")  # the odd one happens to be read first
    with pytest.raises(BadFeaturesError, match=r"a\.pt has dimension 39, but the other files of .* have 20"):
        loader(layer / "b.pt")
