"""Speech–image retrieval: Recall@k known answers, chance levels, per-language scoring and the command."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from vgssl.atomic import atomic_torch_save
from vgssl.audio.io import read_audio, write_wav
from vgssl.cli import main
from vgssl.data.images import PixelImages
from vgssl.model.config import ModelConfig
from vgssl.model.pretrained import CHECKPOINT_FORMAT
from vgssl.model.retrieval import RetrievalEmbeddings, chance_recall, recall_at, retrieval_scores
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


def brute_force_recalls(
    model: VgsModel, captions: Path, *, language: str, ks: tuple[int, ...]
) -> tuple[dict[str, dict[str, float]], float]:
    """Recall@k in % both ways for one language's captions, from scratch: each wav and image embedded alone,
    every rank counted with a loop (a competitor scoring at least as much ranks first); and the smallest gap
    between a right answer's score and any competitor's."""
    root = captions.parent
    model.eval()
    entries = json.loads(captions.read_text(encoding="utf-8"))["data"]
    pairs = [(entry, c) for entry in entries for c in entry["captions"] if c["lang"] == language]
    gallery = sorted({entry["image_id"] for entry, _ in pairs})
    pixels = PixelImages(model.grounding_config.image_size)
    with torch.no_grad():
        image_vectors = {
            entry["image_id"]: model.embed_images(torch.from_numpy(pixels.read(root / entry["image"]))[None])
            for entry in entries
            if entry["image_id"] in gallery
        }
        audio_vectors = [
            model.embed_audio(torch.from_numpy(read_audio(root / c["wav"], sample_rate=16_000))[None])[0]
            for _, c in pairs
        ]
    score = {
        (row, image_id): float(audio_vectors[row] @ image_vectors[image_id][0])
        for row in range(len(pairs))
        for image_id in gallery
    }
    speech_ranks, image_ranks, gaps = [], [], []
    for row, (entry, _) in enumerate(pairs):
        own = score[row, entry["image_id"]]
        others = [score[row, image_id] for image_id in gallery if image_id != entry["image_id"]]
        speech_ranks.append(sum(other >= own for other in others))
        gaps += [abs(own - other) for other in others]
    for image_id in gallery:
        own_rows = [row for row, (entry, _) in enumerate(pairs) if entry["image_id"] == image_id]
        best = max(score[row, image_id] for row in own_rows)
        others = [score[row, image_id] for row in range(len(pairs)) if row not in own_rows]
        image_ranks.append(sum(other >= best for other in others))
        gaps += [abs(best - other) for other in others]

    def recall(ranks: list[int]) -> dict[str, float]:
        return {f"R@{k}": 100.0 * sum(rank < k for rank in ranks) / len(ranks) for k in ks}

    return {"speech_to_image": recall(speech_ranks), "image_to_speech": recall(image_ranks)}, min(gaps)


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
    # The same numbers, computed here one caption at a time (no batching, no padding) and ranked by hand.
    expected, margin = brute_force_recalls(model, captions, language="en", ks=(1, 5, 10))
    assert margin > 1e-4  # the seeded model's scores are far from ties, so batching cannot flip a rank
    for direction, recalls in expected.items():
        assert english[direction] == pytest.approx(recalls), direction
    assert "chance" in capsys.readouterr().out

    assert main(["retrieval", str(tmp_path / "vgs.pt"), str(captions), "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    languages = ["--languages", "fr", "--overwrite"]
    assert main(["retrieval", str(tmp_path / "vgs.pt"), str(captions), "--out", str(out), *languages]) == 0
    assert set(json.loads(out.read_text(encoding="utf-8"))["languages"]) == {"fr"}


def test_the_retrieval_command_scores_planted_embeddings_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Known answers through the whole command: each caption's and image's embedding is planted (a one-hot
    chosen by the test), so a caption sent to the wrong row, a wrong gallery or a tie counted for the query
    changes the numbers. English caption i points at image i; French captions 0 and 1 point at each other's
    image and caption 2 at its own."""
    captions = write_caption_set(tmp_path)
    features = tmp_path / "features"
    features.mkdir()
    for index in range(3):
        np.save(features / f"{index}.npy", np.full(8, index, dtype=np.float32))
    grounding = GroundingConfig(joint_dim=16, image_input="features", feature_dim=8, pool_heads=2)
    model = VgsModel(ModelConfig(**TINY), grounding)
    atomic_torch_save({"format": CHECKPOINT_FORMAT, **model.checkpoint_entries()}, tmp_path / "feat.pt")

    points_at = {"en-0": 0, "en-1": 1, "en-2": 2, "fr-0": 1, "fr-1": 0, "fr-2": 2}
    # Captions are told apart by their number of samples (all different in the caption set).
    by_length = {read_audio(tmp_path / f"audio/{u}.wav", sample_rate=16_000).size: u for u in points_at}
    assert len(by_length) == len(points_at)

    def planted_audio(self: VgsModel, wav: torch.Tensor, padding_mask: torch.Tensor | None = None) -> Tensor:
        lengths = (~padding_mask).sum(1).tolist() if padding_mask is not None else [wav.shape[1]] * len(wav)
        targets = torch.tensor([points_at[by_length[length]] for length in lengths])
        return torch.nn.functional.one_hot(targets, 16).float()

    def planted_images(self: VgsModel, images: Tensor) -> Tensor:
        return torch.nn.functional.one_hot(images[:, 0].round().long(), 16).float()  # feature value = index

    monkeypatch.setattr(VgsModel, "embed_audio", planted_audio)
    monkeypatch.setattr(VgsModel, "embed_images", planted_images)
    out = tmp_path / "R.json"
    argv = [str(tmp_path / "feat.pt"), str(captions), "--out", str(out), "--image-features", str(features)]
    assert main(["retrieval", *argv, "--batch-seconds", "2.5"]) == 0  # several length-sorted batches
    scores = json.loads(out.read_text(encoding="utf-8"))["languages"]

    everything = {"R@1": 100.0, "R@5": 100.0, "R@10": 100.0}
    assert scores["en"]["speech_to_image"] == everything and scores["en"]["image_to_speech"] == everything
    # French: caption 2 ranks its image first; captions 0 and 1 rank theirs behind the image they point at
    # and tied with the third (ties count against the query): rank 3 of 3. Images likewise.
    one_of_three = {"R@1": pytest.approx(100 / 3), "R@5": 100.0, "R@10": 100.0}
    assert scores["fr"]["speech_to_image"] == one_of_three and scores["fr"]["image_to_speech"] == one_of_three
    # Pooled: 4 of 6 captions hit at 1; images 0 and 1 each have a French caption of the other image scoring
    # as high as their best own caption, so only image 2 hits at 1.
    assert scores["all"]["speech_to_image"] == {"R@1": pytest.approx(200 / 3), "R@5": 100.0, "R@10": 100.0}
    assert scores["all"]["image_to_speech"] == one_of_three


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
