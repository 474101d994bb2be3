"""How hard a corpus's phone ABX task is: the MFCC-39 baseline (per-utterance normalised) on its test items.

Every corpus states its own difficulty in its card, so a study on it knows how much room models have to
differ. Clean espeak speech gives MFCC 0.3-0.4 % within and 1.2-2.4 % across speaker (FACTS.md), far easier
than real speech (ZeroSpeech 2021 MFCC on LibriSpeech dev-clean: about 11 % within, 20 % across).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from vgssl.audio.features import mfcc
from vgssl.audio.io import read_audio
from vgssl.data.manifest import read_manifest

CONDITIONS = {"within_speaker": "within", "across_speaker": "across"}


def mfcc_phone_abx(corpus: str | os.PathLike[str], languages: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Triphone-item phone ABX error (%) of normalised MFCC-39, within context, per language and speaker."""
    from fastabx import zerospeech_abx

    corpus = Path(corpus)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="vgssl-difficulty-") as features_dir:
        for language in languages:
            manifest = read_manifest(corpus / "manifests" / f"{language}_test.tsv")
            for entry in manifest.entries:
                wav = torch.from_numpy(read_audio(manifest.audio_path(entry)))
                path = Path(features_dir) / f"{entry.key}.pt"
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(mfcc(wav, normalize=True).contiguous(), path)
            item = corpus / "items" / f"{language}_test_triphone.item"
            results[language] = {
                name: round(
                    100
                    * zerospeech_abx(
                        item,
                        features_dir,
                        speaker=mode,
                        context="within",
                        distance="angular",
                        frequency=50,
                        max_size_group=10,
                        max_x_across=5,
                        seed=0,
                    ),
                    3,
                )
                for name, mode in CONDITIONS.items()
            }
    return results
