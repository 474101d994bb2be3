from pathlib import Path

import numpy as np
import torch

from vgssl.cli import main
from vgssl.evaluate.results import read_result

LANGUAGES = ("en", "fr")
SPEAKERS = ("s1", "s2", "s3")


def language_corpus(root: Path, *, encode_language: bool) -> Path:
    """Segments of two languages by three speakers; features carry a speaker offset and random content.

    With `encode_language`, one extra dimension holds +1 in English and −1 in French on every frame.
    """
    rng = np.random.default_rng(0)
    speaker_offset = {s: rng.normal(0, 1.0, 8) for s in SPEAKERS}
    rows = ["#file onset offset #language speaker length"]
    for language in LANGUAGES:
        for speaker in SPEAKERS:
            for index in range(6):
                key = f"{language}/{speaker}/u{index}"
                frames = 120
                content = rng.normal(0, 1.0, (frames, 8)) + speaker_offset[speaker]
                marker = np.full((frames, 1), (1.0 if language == "en" else -1.0) if encode_language else 0.0)
                features = torch.tensor(np.hstack([content, 3.0 * marker]), dtype=torch.float32)
                (root / "features" / "0" / language / speaker).mkdir(parents=True, exist_ok=True)
                torch.save(features, root / "features" / "0" / f"{key}.pt")
                for span, (onset, offset) in enumerate([(0.1, 0.7), (0.8, 1.4), (1.5, 2.3)]):
                    rows.append(f"{key} {onset} {offset} {language} {speaker} d{span}")
    item = root / "items" / "test_language.item"
    item.parent.mkdir(parents=True)
    item.write_text("\n".join(rows) + "\n")
    return item


def _error(tmp_path: Path, *, encode_language: bool) -> float:
    item = language_corpus(tmp_path, encode_language=encode_language)
    out = tmp_path / "lang.json"
    assert main(["abx-lang", str(tmp_path / "features"), str(item), "--out", str(out), "--quiet"]) == 0
    result = read_result(out)
    assert result.task == "language" and result.labels == ["en", "fr"] and result.language is None
    assert result.conventions.alignment == "none (segments are mean-pooled)"
    assert "duration bin" in result.content_control
    (score,) = result.scores
    assert (score.speaker, score.context) == ("across", None)
    assert sorted(zip(score.cells.a, score.cells.b, strict=True)) == [("en", "fr"), ("fr", "en")]
    return score.error


def test_language_abx_is_zero_on_features_that_encode_the_language(tmp_path: Path) -> None:
    assert _error(tmp_path, encode_language=True) == 0.0


def test_language_abx_is_chance_on_features_without_language_information(tmp_path: Path) -> None:
    assert 40.0 < _error(tmp_path, encode_language=False) < 60.0
