"""Caption sets (SpokenCOCO JSON), image loading and precomputed image features: reading and bad input."""

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vgssl.audio.io import write_wav
from vgssl.corpus import check_images_command
from vgssl.data.captions import CaptionSetError, MissingCaptionFileError, read_caption_set
from vgssl.data.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FeatureShapeError,
    ImageFeatureStore,
    MissingFeaturesError,
    PixelImages,
    check_features,
)


def write_caption_set(root: Path, *, image_size: int = 32) -> Path:
    """Three images with an English and a French caption each, SpokenCOCO style, paths relative to root."""
    data = []
    for index, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        image_path = f"images/img-{index}.png"
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (image_size, image_size), colour).save(root / image_path)
        captions = []
        for language in ("en", "fr"):
            uttid = f"{language}-{index}"
            write_wav(root / "audio" / f"{uttid}.wav", np.zeros(8000, dtype=np.float32))
            captions.append({"wav": f"audio/{uttid}.wav", "uttid": uttid, "lang": language, "text": "x"})
        data.append({"image": image_path, "image_id": f"img-{index}", "captions": captions})
    path = root / "captions.json"
    path.write_text(json.dumps({"data": data}), encoding="utf-8")
    return path


def edit(path: Path, change) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document["data"])
    path.write_text(json.dumps(document), encoding="utf-8")


def test_a_caption_set_is_read_and_filtered_by_language(tmp_path: Path) -> None:
    path = write_caption_set(tmp_path)
    everything = read_caption_set(path)
    assert [image.image_id for image in everything.images] == ["img-0", "img-1", "img-2"]
    assert everything.languages == ["en", "fr"]
    assert len(everything.captions) == 6
    assert everything.images[1].captions[0].wav == (tmp_path / "audio" / "en-1.wav").resolve()
    french = read_caption_set(path, languages=["fr"])
    assert [caption.uttid for caption in french.captions] == ["fr-0", "fr-1", "fr-2"]
    assert read_caption_set(path, languages=["de"]).images == ()


def test_real_spokencoco_fields_are_optional(tmp_path: Path) -> None:
    path = write_caption_set(tmp_path)

    def strip(data: list) -> None:
        for entry in data:
            del entry["image_id"]
            for caption in entry["captions"]:
                del caption["lang"], caption["uttid"]

    edit(path, strip)
    with pytest.raises(CaptionSetError, match=r"data\[0\]\.captions\[0\] \(image img-0\): .*no \"lang\""):
        read_caption_set(path)
    caption_set = read_caption_set(path, default_language="en")
    assert caption_set.images[0].image_id == "img-0"  # the image file's stem
    assert caption_set.captions[1].uttid == "fr-0"  # the wav's stem
    assert caption_set.languages == ["en"]


def test_a_missing_wav_names_the_entry_or_is_skipped_and_counted(tmp_path: Path) -> None:
    path = write_caption_set(tmp_path)
    (tmp_path / "audio" / "fr-1.wav").unlink()
    with pytest.raises(MissingCaptionFileError, match=r"captions\.json: data\[1\] \(image img-1\).*fr-1"):
        read_caption_set(path)
    caption_set = read_caption_set(path, on_missing="skip")
    assert caption_set.skipped == {"missing_wav": 1, "missing_image": 0}
    assert [caption.uttid for caption in caption_set.images[1].captions] == ["en-1"]
    assert "skipped 1 missing_wav" in caption_set.summary()
    # Outside the wanted languages a missing file does not matter.
    assert read_caption_set(path, languages=["en"]).skipped == {"missing_wav": 0, "missing_image": 0}


def test_a_missing_image_names_the_entry_or_drops_it_with_its_captions(tmp_path: Path) -> None:
    path = write_caption_set(tmp_path)
    (tmp_path / "images" / "img-2.png").unlink()
    with pytest.raises(MissingCaptionFileError, match=r"data\[2\]: the image of entry img-2 does not exist"):
        read_caption_set(path)
    caption_set = read_caption_set(path, on_missing="skip")
    assert caption_set.skipped == {"missing_wav": 0, "missing_image": 1}
    assert [image.image_id for image in caption_set.images] == ["img-0", "img-1"]
    # Models on precomputed features do not need the image files.
    assert len(read_caption_set(path, require_image_files=False).images) == 3


def test_malformed_caption_files_are_refused_with_the_place(tmp_path: Path) -> None:
    path = write_caption_set(tmp_path)
    edit(path, lambda data: data.append(dict(data[0])))
    with pytest.raises(CaptionSetError, match=r"data\[3\]: image id 'img-0' already appears in data\[0\]"):
        read_caption_set(path)
    edit(path, lambda data: data[3].update(image_id="other"))
    with pytest.raises(CaptionSetError, match=r"data\[3\]: caption uttid 'en-0' already appears"):
        read_caption_set(path)
    path.write_text('{"images": []}', encoding="utf-8")
    with pytest.raises(CaptionSetError, match="not a SpokenCOCO-style caption file"):
        read_caption_set(path)
    with pytest.raises(CaptionSetError, match="does not exist"):
        read_caption_set(tmp_path / "nope.json")


def test_images_of_another_size_are_resized_and_that_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_caption_set(tmp_path, image_size=48)
    Image.new("RGB", (60, 40), (255, 0, 0)).save(tmp_path / "images" / "img-0.png")  # not even square
    caption_set = read_caption_set(path)
    images = PixelImages(32)
    with caplog.at_level(logging.INFO, logger="vgssl.data.images"):
        pixels = [images.load(image) for image in caption_set.images]
    assert all(array.shape == (3, 32, 32) and array.dtype == np.float32 for array in pixels)
    resized = [record for record in caplog.records if "resized to 32 x 32" in record.getMessage()]
    assert len(resized) == 1 and "is 60 x 40" in resized[0].getMessage()
    # Pure green, standardised with the ImageNet statistics, comes back exactly.
    expected = (np.array([0.0, 1.0, 0.0], dtype=np.float32) - IMAGENET_MEAN) / IMAGENET_STD
    assert np.allclose(pixels[1][:, 5, 7], expected, atol=1e-5)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vgssl.data.images"):
        PixelImages(48).load(caption_set.images[1])
    assert not caplog.records  # the right size: nothing to say


@pytest.mark.parametrize("layout", ["npy files", "pt files", "matrix"])
def test_precomputed_features_in_both_layouts(tmp_path: Path, layout: str) -> None:
    caption_set = read_caption_set(write_caption_set(tmp_path), require_image_files=False)
    features = {f"img-{i}": np.full(6, i, dtype=np.float32) for i in range(3)}
    store_dir = tmp_path / "features"
    store_dir.mkdir()
    if layout == "matrix":
        np.save(store_dir / "features.npy", np.stack(list(features.values()))[::-1])
        (store_dir / "index.txt").write_text("img-2\nimg-1\nimg-0\n", encoding="utf-8")
    else:
        for image_id, vector in features.items():
            if layout == "npy files":
                np.save(store_dir / f"{image_id}.npy", vector)
            else:
                torch.save(torch.from_numpy(vector), store_dir / f"{image_id}.pt")
    store = ImageFeatureStore(store_dir, dim=6)
    assert store.layout == ("matrix" if layout == "matrix" else "files")
    for image in caption_set.images:
        assert np.array_equal(store.load(image), features[image.image_id])
    check = check_features(caption_set, store)
    assert check.complete and check.found == 3 and check.shape == (6,)


def test_a_feature_dimension_that_does_not_match_the_config_is_an_error(tmp_path: Path) -> None:
    np.save(tmp_path / "features.npy", np.zeros((3, 2048), dtype=np.float32))
    (tmp_path / "index.txt").write_text("a\nb\nc\n", encoding="utf-8")
    with pytest.raises(
        FeatureShapeError, match=r"dimension 2048 but the model expects 512 \(grounding.feature_dim\)"
    ):
        ImageFeatureStore(tmp_path, dim=512)
    assert ImageFeatureStore(tmp_path, dim=2048).read("b").shape == (2048,)

    files = tmp_path / "files"
    files.mkdir()
    np.save(files / "a.npy", np.zeros((36, 16), dtype=np.float32))  # region features
    np.save(files / "b.npy", np.zeros((10, 16), dtype=np.float32))
    store = ImageFeatureStore(files, dim=16)
    assert store.read("a").shape == (36, 16)
    with pytest.raises(
        FeatureShapeError, match=r"b\.npy: features of shape \(10, 16\), but earlier .* \(36, 16\)"
    ):
        store.read("b")
    with pytest.raises(MissingFeaturesError, match="no features for image c"):
        store.read("c")


def test_a_matrix_needs_an_index_of_the_same_length(tmp_path: Path) -> None:
    np.save(tmp_path / "features.npy", np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(MissingFeaturesError, match="has no index"):
        ImageFeatureStore(tmp_path)
    (tmp_path / "index.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(MissingFeaturesError, match=r"lists 2 image ids but .* has 3 rows"):
        ImageFeatureStore(tmp_path)


def run_check(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    check_images_command.add_arguments(parser)
    return check_images_command.run(parser.parse_args(argv))


def test_check_images_reports_what_training_would_find(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_caption_set(tmp_path, image_size=40)
    assert run_check([str(path), "--image-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "3 images" in out and "40x40: 3" in out and "3 images are not 32x32 and will be resized" in out

    (tmp_path / "images" / "img-1.png").write_bytes(b"not a png")
    (tmp_path / "audio" / "en-0.wav").unlink()
    assert run_check([str(path)]) == 1
    out = capsys.readouterr().out
    assert "cannot read image" in out and "img-1" in out and "skipped 1 missing_wav" in out

    features = tmp_path / "features"
    features.mkdir()
    for image_id in ("img-0", "img-2"):
        np.save(features / f"{image_id}.npy", np.zeros(8, dtype=np.float32))
    assert run_check([str(path), "--image-features", str(features), "--dim", "8", "--languages", "fr"]) == 1
    assert "2 of 3 images" in (out := capsys.readouterr().out) and "img-1" in out
    with pytest.raises(FeatureShapeError, match="dimension 8 but the model expects 4"):
        run_check([str(path), "--image-features", str(features), "--dim", "4"])
