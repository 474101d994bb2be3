"""Speech–image retrieval: Recall@k known answers, chance levels, per-language scoring and the command."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vgssl.atomic import atomic_torch_save
from vgssl.cli import main
from vgssl.corpus.audio import write_wav
from vgssl.evaluate.retrieval import RetrievalEmbeddings, chance_recall, recall_at, retrieval_scores
from vgssl.model.config import ModelConfig
from vgssl.model.pretrained import CHECKPOINT_FORMAT
from vgssl.model.vgs import GroundingConfig, VgsModel
from vgssl.model.wav2vec2 import Wav2Vec2

TINY = {"dim": 32, "layers": 2, "heads": 2, "ffn_dim": 64, "pos_conv_kernel": 16, "pos_conv_groups": 4}


def test_recall_in_both_directions_on_a_known_score_matrix() -> None:
    # Captions 0 and 1 describe image 0, caption 2 image 1, caption 3 image 2.
    similarity = torch.tensor(
        [
            [0.9, 0.1, 0.2],  # its image first
            [0.3, 0.5, 0.1],  # its image second
            [0.2, 0.4, 0.6],  # its image second
            [0.1, 0.2, 0.7],  # its image first
        ]
    )
    scores = recall_at(similarity, torch.tensor([0, 0, 1, 2]), ks=(1, 2))
    assert scores["speech_to_image"] == {"R@1": 50.0, "R@2": 100.0}
    # Image 0 matches caption 0 (its best caption, 0.9, tops the column); image 1's caption 2 (0.4) is
    # beaten by caption 1 (0.5); image 2's caption 3 (0.7) tops its column.
    assert scores["image_to_speech"]["R@1"] == pytest.approx(200 / 3)
    assert scores["image_to_speech"]["R@2"] == 100.0


def test_ties_count_against_the_query() -> None:
    scores = recall_at(torch.ones(4, 4), torch.arange(4), ks=(1, 3, 4))
    assert scores["speech_to_image"] == {"R@1": 0.0, "R@3": 0.0, "R@4": 100.0}
    assert scores["image_to_speech"] == {"R@1": 0.0, "R@3": 0.0, "R@4": 100.0}


def test_chance_levels_are_exact_and_match_random_rankings() -> None:
    caption_image = torch.tensor([0, 0, 1, 2])  # 4 captions, 3 images
    chance = chance_recall(caption_image, 3, ks=(1, 2))
    assert chance["speech_to_image"] == pytest.approx({"R@1": 100 / 3, "R@2": 200 / 3})
    # Image 0 has 2 of 4 captions: 1/2 at k=1, 1 - C(2,2)/C(4,2) = 5/6 at k=2; the others 1/4 and 1/2.
    assert chance["image_to_speech"] == pytest.approx({"R@1": 100 / 3, "R@2": 100 * 11 / 18})

    generator = torch.Generator().manual_seed(0)
    trials = [recall_at(torch.rand(4, 3, generator=generator), caption_image, ks=(1, 2)) for _ in range(3000)]
    for direction in ("speech_to_image", "image_to_speech"):
        for k in ("R@1", "R@2"):
            mean = np.mean([trial[direction][k] for trial in trials])
            assert mean == pytest.approx(chance[direction][k], abs=2.0)


def test_each_language_is_scored_against_the_images_it_describes() -> None:
    images = torch.eye(4)
    # English captions describe images 0-2, French ones images 2-3; every caption points at its image.
    caption_image = torch.tensor([0, 1, 2, 2, 3])
    embeddings = RetrievalEmbeddings(
        audio=images[caption_image],
        images=images,
        caption_image=caption_image,
        caption_languages=("en", "en", "en", "fr", "fr"),
    )
    scores = retrieval_scores(embeddings)
    assert (scores["en"]["captions"], scores["en"]["images"]) == (3, 3)
    assert (scores["fr"]["captions"], scores["fr"]["images"]) == (2, 2)
    assert (scores["all"]["captions"], scores["all"]["images"]) == (5, 4)
    assert scores["fr"]["speech_to_image"]["R@1"] == 100.0
    assert scores["fr"]["chance"]["speech_to_image"]["R@1"] == 50.0
    assert scores["all"]["chance"]["speech_to_image"]["R@1"] == 25.0


def write_caption_set(root: Path) -> Path:
    data = []
    rng = np.random.default_rng(0)
    for index in range(3):
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 40), (80 * index, 0, 0)).save(root / "images" / f"{index}.png")
        captions = []
        for language in ("en", "fr"):
            uttid = f"{language}-{index}"
            audio = 0.1 * rng.standard_normal(int(16_000 * rng.uniform(0.5, 1.5))).astype(np.float32)
            write_wav(root / "audio" / f"{uttid}.wav", audio)
            captions.append({"wav": f"audio/{uttid}.wav", "uttid": uttid, "lang": language})
        data.append({"image": f"images/{index}.png", "image_id": str(index), "captions": captions})
    path = root / "captions.json"
    path.write_text(json.dumps({"data": data}), encoding="utf-8")
    return path


def test_the_retrieval_command_writes_recalls_and_chance_per_language(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    captions = write_caption_set(tmp_path)
    torch.manual_seed(0)
    model = VgsModel(ModelConfig(**TINY), GroundingConfig(joint_dim=16, image_size=32, pool_heads=2))
    atomic_torch_save({"format": CHECKPOINT_FORMAT, **model.checkpoint_entries()}, tmp_path / "vgs.pt")
    out = tmp_path / "R.json"
    assert main(["retrieval", str(tmp_path / "vgs.pt"), str(captions), "--out", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["format"] == "vgssl-retrieval-v1" and result["image_input"] == "pixels"
    assert set(result["languages"]) == {"en", "fr", "all"}
    english = result["languages"]["en"]
    assert (english["captions"], english["images"]) == (3, 3)
    assert english["chance"]["speech_to_image"]["R@1"] == pytest.approx(100 / 3)
    assert english["speech_to_image"]["R@10"] == 100.0  # three images: all of them are in any top 10
    assert 0.0 <= english["image_to_speech"]["R@1"] <= 100.0
    assert "chance" in capsys.readouterr().out

    assert main(["retrieval", str(tmp_path / "vgs.pt"), str(captions), "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    languages = ["--languages", "fr", "--overwrite"]
    assert main(["retrieval", str(tmp_path / "vgs.pt"), str(captions), "--out", str(out), *languages]) == 0
    assert set(json.loads(out.read_text(encoding="utf-8"))["languages"]) == {"fr"}


def test_retrieval_refuses_audio_only_models_and_feature_models_without_features(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    captions = write_caption_set(tmp_path)
    audio = Wav2Vec2(ModelConfig(**TINY))
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "model_config": audio.config.model_dump(),
        "model": audio.state_dict(),
    }
    atomic_torch_save(checkpoint, tmp_path / "ssl.pt")
    assert (
        main(["retrieval", str(tmp_path / "ssl.pt"), str(captions), "--out", str(tmp_path / "R.json")]) == 2
    )
    assert "audio-only model" in capsys.readouterr().err

    grounding = GroundingConfig(joint_dim=16, image_input="features", feature_dim=8, pool_heads=2)
    model = VgsModel(ModelConfig(**TINY), grounding)
    atomic_torch_save({"format": CHECKPOINT_FORMAT, **model.checkpoint_entries()}, tmp_path / "feat.pt")
    assert (
        main(["retrieval", str(tmp_path / "feat.pt"), str(captions), "--out", str(tmp_path / "R.json")]) == 2
    )
    assert "pass --image-features DIR" in capsys.readouterr().err
    features = tmp_path / "features"
    features.mkdir()
    for index in range(3):
        np.save(features / f"{index}.npy", np.full(8, index, dtype=np.float32))
    argv = [
        str(tmp_path / "feat.pt"),
        str(captions),
        "--out",
        str(tmp_path / "R.json"),
        "--image-features",
        str(features),
    ]
    assert main(["retrieval", *argv]) == 0
    assert json.loads((tmp_path / "R.json").read_text(encoding="utf-8"))["image_input"] == "features"
