"""Grounded (VGS+) training: schedules, loss weighting, caption data, DDP and resumption, and learning."""

import json
import logging
import math
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tiny_models import CPU, TINY_GROUNDING, TINY_MODEL
from vgssl.audio.io import BadAudioError, read_audio, write_wav
from vgssl.cli import main
from vgssl.corpus.build import build_corpus
from vgssl.corpus.spec import make_spec
from vgssl.data.captions import CaptionedImage, MissingCaptionFileError, read_caption_set
from vgssl.data.images import PixelImages
from vgssl.data.manifest import ManifestEntry, write_manifest
from vgssl.model.config import ModelConfig
from vgssl.model.pretrained import load_model
from vgssl.model.retrieval import embed_caption_set, retrieval_scores
from vgssl.model.vgs import GroundingConfig, NotAGroundedCheckpointError, VgsModel, load_vgs_model
from vgssl.study.training import run_control
from vgssl.train import loop, run_data
from vgssl.train.captions import (
    CaptionBatch,
    CaptionDataError,
    CaptionItem,
    CaptionPair,
    CaptionSelection,
    PairBatchSampler,
    collate_captions,
    limit_grounding,
)
from vgssl.train.config import ConfigError, ObjectiveConfig, load_config
from vgssl.train.data import Item, collate_batch
from vgssl.train.gradients import (
    CAPTION_SSL_STREAM,
    GROUNDING_STREAM,
    MASK_STREAM_OFFSET,
    SSL_STREAM,
    micro_batch_seed,
)
from vgssl.train.grounded_step import grounded_gradients
from vgssl.train.loop import Trainer
from vgssl.train.metrics import read_metrics
from vgssl.train.mixture import Utterance
from vgssl.train.objective import LossWeighting, is_interleaved_caption_step, step_kind
from vgssl.train.optimizer import gradient_norms, module_parameters
from vgssl.train.schedule import lr_scale

RATE = 16_000
COLOURS = [(200, 30, 30), (30, 160, 60), (40, 80, 220), (245, 215, 30), (140, 50, 170), (245, 130, 20)]


# --- the schedule and the weights ---------------------------------------------------------------------------


@pytest.mark.parametrize(("fraction", "block"), [(0.3, 100), (0.25, 8), (0.5, 7), (1 / 3, 10)])
def test_interleave_gives_exactly_the_configured_fraction_of_caption_steps(
    fraction: float, block: int
) -> None:
    caption = [
        is_interleaved_caption_step(step, fraction=fraction, block=block, seed=5)
        for step in range(20 * block)
    ]
    for blocks in range(1, 21):
        assert sum(caption[: blocks * block]) == math.floor(fraction * block * blocks + 1e-9)
    # Within a block the count never strays more than one step from the fraction.
    running = np.cumsum(caption)
    assert np.all(np.abs(running - fraction * np.arange(1, len(caption) + 1)) <= fraction * block + 1)
    other_seed = [
        is_interleaved_caption_step(s, fraction=fraction, block=block, seed=6) for s in range(20 * block)
    ]
    assert other_seed != caption and sum(other_seed) == sum(caption)


def test_step_kinds_of_the_three_schedules() -> None:
    assert {step_kind(s, ObjectiveConfig(), seed=0) for s in range(10)} == {"joint"}
    warm = ObjectiveConfig(schedule="ssl-then-joint", audio_only_steps=3)
    assert [step_kind(s, warm, seed=0) for s in range(5)] == ["audio", "audio", "audio", "joint", "joint"]
    interleave = ObjectiveConfig(schedule="interleave", caption_step_fraction=0.5, interleave_block=4)
    kinds = [step_kind(s, interleave, seed=0) for s in range(8)]
    assert kinds.count("captions") == 4 and kinds.count("audio") == 4


def test_uncertainty_weighting_learns_from_the_global_losses() -> None:
    fixed = LossWeighting(ObjectiveConfig(weights={"ssl": 1.0, "caption_ssl": 0.5, "vg": 2.0}))
    assert list(fixed.parameters()) == []
    assert fixed.objective_value({"ssl": 3.0, "vg": 1.0}) == pytest.approx(5.0)

    adaptive = LossWeighting(ObjectiveConfig(weighting="uncertainty", weights={"vg": 2.0}))
    adaptive.set_gradients({"ssl": 3.0, "vg": 0.25})
    grads = {term: parameter.grad for term, parameter in adaptive.log_variances.items()}
    # d/ds (w · exp(-s) · L + s) at s = 0 is 1 - w · L.
    assert grads["ssl"].item() == pytest.approx(1 - 3.0) and grads["vg"].item() == pytest.approx(1 - 0.5)
    assert grads["caption_ssl"] is None  # not in this step: no update
    with torch.no_grad():
        adaptive.log_variances["ssl"].fill_(math.log(3.0))
    assert adaptive.weight("ssl") == pytest.approx(1 / 3)  # the term with the larger loss weighs less


# --- caption data -------------------------------------------------------------------------------------------


def fake_pairs(lengths_seconds: list[float]) -> CaptionSelection:
    image = CaptionedImage(image_id="x", image=Path("x.png"), captions=())
    pairs = tuple(
        CaptionPair(Utterance(f"c{i}", Path(f"c{i}.wav"), round(s * RATE), "en", "test"), image)
        for i, s in enumerate(lengths_seconds)
    )
    return CaptionSelection(pairs, sum(lengths_seconds), {}, {}, RATE)


def test_limited_grounding_keeps_the_configured_share_of_the_training_audio() -> None:
    selection = fake_pairs([2.0] * 100)  # 200 s of captions
    limited = limit_grounding(selection, grounded_fraction=0.25, audio_seconds=300.0, seed=0)
    # 25 % of (captions + 300 s) means 100 s of captions: 50 pairs of 2 s.
    assert len(limited.pairs) == 50 and limited.grounded_fraction(300.0) == pytest.approx(0.25)
    assert [p.utterance.utt_id for p in limited.pairs] != [f"c{i}" for i in range(50)]  # a random subset
    assert limit_grounding(selection, grounded_fraction=None, audio_seconds=300.0, seed=0) is selection
    everything = limit_grounding(selection, grounded_fraction=0.9, audio_seconds=300.0, seed=0)
    assert len(everything.pairs) == 100  # not enough captions: all of them
    assert everything.to_json(300.0)["grounded_fraction_of_training_audio"] == pytest.approx(0.4)


def test_caption_batches_are_full_disjoint_between_ranks_and_resumable() -> None:
    samplers = [PairBatchSampler(23, pairs_per_batch=4, seed=1, rank=rank, world_size=2) for rank in (0, 1)]
    epoch = [sampler.rank_batches(0) for sampler in samplers]
    assert [len(batches) for batches in epoch] == [2, 2]  # 5 full batches, cut to a multiple of 2 ranks
    assert all(len(batch) == 4 for batches in epoch for batch in batches)
    flat = [index for batches in epoch for batch in batches for index in batch]
    assert len(set(flat)) == 16
    assert samplers[0].rank_batches(1) != epoch[0]  # a new permutation every epoch
    samplers[0].set_epoch(0, start=1)
    assert list(samplers[0]) == epoch[0][1:] and len(samplers[0]) == 1
    with pytest.raises(CaptionDataError, match=r"lower captions\.pairs_per_batch"):
        PairBatchSampler(7, pairs_per_batch=4, seed=1, world_size=2)


def caption_batch(rng: np.random.Generator, image_ids: list[str]) -> object:
    items = [
        CaptionItem(
            Item(f"u{i}", (0.1 * rng.standard_normal(int(RATE * rng.uniform(0.6, 1.0)))).astype(np.float32)),
            rng.standard_normal((3, 32, 32)).astype(np.float32),
            image_id,
        )
        for i, image_id in enumerate(image_ids)
    ]
    return collate_captions(items)


def reference_mask(model: VgsModel, wav: torch.Tensor, padding: torch.Tensor, index: int, stream: int):
    """The documented rule: a micro-batch's span mask comes from a generator of its own seed stream."""
    seed = micro_batch_seed(3, 7, index, stream=stream + MASK_STREAM_OFFSET)
    return model.audio.span_mask(wav, padding, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("audio_pass", ["unmasked", "masked"])
def test_a_grounded_step_is_the_gradient_of_the_weighted_sum_of_normalised_losses(audio_pass: str) -> None:
    rng = np.random.default_rng(0)
    audio = [collate_batch([Item("a", rng.standard_normal(20_000).astype(np.float32) * 0.1)])]
    captions = [caption_batch(rng, ["p", "q", "p"]), caption_batch(rng, ["r", "s"])]
    assert captions[0].image_groups.tolist() == [0, 1, 0]
    torch.manual_seed(0)
    grounding_config = GroundingConfig(**TINY_GROUNDING, audio_pass=audio_pass)
    model = VgsModel(ModelConfig(**TINY_MODEL), grounding_config)
    weighting = LossWeighting(ObjectiveConfig(weights={"ssl": 0.5, "caption_ssl": 2.0, "vg": 3.0}))
    totals = grounded_gradients(
        model, weighting, audio_batches=audio, caption_batches=captions, seed=3, step=7, context=CPU,
        autocast_dtype=None, measure=module_parameters(model),
    )  # fmt: skip
    combined = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    # The collapsed loss: pairs of image p have 1 negative, the others 2 (q) or 1 (r, s): ln(1 + n · e).
    assert totals.grounding["collapsed"] == pytest.approx(4 * math.log(1 + math.e) + math.log(1 + 2 * math.e))
    # The heads get the grounding term's gradient only; the encoder gets all three.
    head = torch.cat([p.grad.flatten() for p in model.audio_head.parameters() if p.grad is not None])
    caption_terms = ["caption_ssl", "vg"] if audio_pass == "unmasked" else ["caption_ssl+vg"]
    assert totals.grad_norms[f"{caption_terms[-1]}/audio_head"] == pytest.approx(float(head.norm()), rel=1e-5)
    assert {f"{term}/audio_encoder" for term in ["ssl", *caption_terms]} <= set(totals.grad_norms)
    assert "ssl/audio_head" not in totals.grad_norms

    # The same loss in one expression, with the same seeds (so the same masks and dropout).
    model.zero_grad()
    torch.manual_seed(micro_batch_seed(3, 7, 0, stream=SSL_STREAM))
    mask = reference_mask(model, audio[0].wav, audio[0].padding_mask, 0, SSL_STREAM)
    out = model(audio[0].wav, audio[0].padding_mask, time_mask=mask)
    loss = 0.5 * sum(out.losses.values()) / out.num_masked
    sums, counts, grounding = [], [], []
    for index, batch in enumerate(captions):
        torch.manual_seed(micro_batch_seed(3, 7, index, stream=CAPTION_SSL_STREAM))
        mask = reference_mask(model, batch.audio.wav, batch.audio.padding_mask, index, CAPTION_SSL_STREAM)
        if audio_pass == "masked":  # one pass, both losses
            out = model(batch.audio.wav, batch.audio.padding_mask, time_mask=mask, images=batch.images,
                        image_groups=batch.image_groups)  # fmt: skip
            grounding.append(sum(out.losses.values()))
            out = out.ssl
        else:
            out = model(batch.audio.wav, batch.audio.padding_mask, time_mask=mask)
        sums.append(sum(out.losses.values()))
        counts.append(out.num_masked)
    loss = loss + 2.0 * sum(sums) / sum(counts)
    for index, batch in enumerate(captions if audio_pass == "unmasked" else []):
        torch.manual_seed(micro_batch_seed(3, 7, index, stream=GROUNDING_STREAM))
        out = model(batch.audio.wav, batch.audio.padding_mask, mask=False, images=batch.images,
                    image_groups=batch.image_groups)  # fmt: skip
        grounding.append(sum(out.losses.values()))
    loss = loss + 3.0 * sum(grounding) / 5  # five pairs
    loss.backward()
    assert totals.losses["vg"] == pytest.approx(sum(grounding).item() / 5, rel=1e-5)
    assert totals.losses["caption_ssl"] == pytest.approx((sum(sums) / sum(counts)).item(), rel=1e-5)
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(combined[name], parameter.grad, rtol=1e-4, atol=1e-5, msg=name)
    assert set(combined) == {name for name, p in model.named_parameters() if p.grad is not None}


def test_masked_pass_grounding_at_weight_zero_is_the_caption_ssl_step() -> None:
    """With w_vg = 0, the one-pass phase gives the SSL-only pass's loss, statistics and encoder gradient."""
    rng = np.random.default_rng(1)
    captions = [caption_batch(rng, ["p", "q", "r"]), caption_batch(rng, ["s", "t"])]
    results = {}
    for audio_pass in ("masked", "unmasked"):
        torch.manual_seed(0)
        model = VgsModel(ModelConfig(**TINY_MODEL), GroundingConfig(**TINY_GROUNDING, audio_pass=audio_pass))
        weighting = LossWeighting(ObjectiveConfig(weights={"ssl": 1.0, "caption_ssl": 1.0, "vg": 0.0}))
        totals = grounded_gradients(
            model, weighting, audio_batches=[], caption_batches=captions, seed=5, step=2, context=CPU,
            autocast_dtype=None,
        )  # fmt: skip
        encoder = {name: p.grad.clone() for name, p in model.audio.named_parameters() if p.grad is not None}
        results[audio_pass] = (totals, encoder)
    (masked, masked_grads), (unmasked, unmasked_grads) = results["masked"], results["unmasked"]
    assert masked.losses["caption_ssl"] == unmasked.losses["caption_ssl"]
    assert masked.captions == unmasked.captions
    assert masked_grads.keys() == unmasked_grads.keys()
    for name, gradient in masked_grads.items():
        torch.testing.assert_close(gradient, unmasked_grads[name], rtol=1e-5, atol=1e-7, msg=name)


def test_the_alpha_form_equals_the_weighted_sum_it_replaces() -> None:
    for alpha in (0.0, 0.1, 0.5, 1.0):
        weighting = LossWeighting(ObjectiveConfig(weights={"alpha": alpha}))
        explicit = LossWeighting(
            ObjectiveConfig(weights={"ssl": 1 - alpha, "caption_ssl": 1 - alpha, "vg": alpha})
        )
        losses = {"ssl": 3.7, "caption_ssl": 3.9, "vg": 2.5}
        assert {t: weighting.weight(t) for t in losses} == {t: explicit.weight(t) for t in losses}
        assert weighting.objective_value(losses) == pytest.approx(alpha * 2.5 + (1 - alpha) * (3.7 + 3.9))
    with pytest.raises(ValueError, match="alpha sets every weight; remove vg"):
        ObjectiveConfig(weights={"alpha": 0.5, "vg": 0.2})


# --- end to end ---------------------------------------------------------------------------------------------


def tone(rng: np.random.Generator, seconds: float, frequency: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * frequency * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Audio-only speech, and images of a coloured square whose captions are tones of that colour's pitch."""
    root = tmp_path_factory.mktemp("grounded")
    rng = np.random.default_rng(0)
    for language in ("en", "fr"):
        for split, count in (("train", 8), ("valid", 2)):
            entries = []
            for i in range(count):
                path = f"{language}/{split}/{i:02d}.wav"
                audio = tone(rng, rng.uniform(1.2, 2.0), rng.uniform(100, 1000))
                write_wav(root / "audio" / path, audio)
                entries.append(ManifestEntry(path, len(audio), language, "s0"))
            write_manifest(root / f"{language}_{split}.tsv", "audio", entries)
    for split, first, count in (("train", 0, 12), ("valid", 12, 3)):
        data = []
        for index in range(first, first + count):
            colour = COLOURS[index % len(COLOURS)]
            (root / "images").mkdir(exist_ok=True)
            pixels = rng.integers(90, 170, (40, 40, 3), dtype=np.uint8)  # a textured grey background
            pixels[8 + index % 3 * 8 : 24 + index % 3 * 8, 10:30] = colour
            Image.fromarray(pixels).save(root / "images" / f"{index}.png")
            captions = []
            for language in ("en", "fr"):
                wav = f"captions/{language}-{index}.wav"
                write_wav(root / wav, tone(rng, rng.uniform(1.1, 1.6), 200 + 100 * (index % len(COLOURS))))
                captions.append({"wav": wav, "uttid": f"{language}-{index}", "lang": language})
            data.append({"image": f"images/{index}.png", "image_id": f"img-{index}", "captions": captions})
        (root / f"captions_{split}.json").write_text(json.dumps({"data": data}), encoding="utf-8")
    return root


def write_config(corpus: Path, directory: Path, **changes: object) -> Path:
    config = {
        "run_dir": str(directory / "run"),
        "max_steps": 6,
        "model": dict(TINY_MODEL),
        "data": {
            "train": [{"manifest": str(corpus / "en_train.tsv")}, {"manifest": str(corpus / "fr_train.tsv")}],
            "valid": [{"manifest": str(corpus / "en_valid.tsv")}],
            "max_seconds": 2.0,
            "batch_seconds": 6.0,
        },
        "optim": {"lr": 0.002, "warmup_steps": 2},
        "checkpoint": {"every": 3, "keep_last": 2},
        "logging": {"every": 1, "valid_every": 3, "tensorboard": False, "progress": False},
        "grounding": dict(TINY_GROUNDING),
        "captions": {
            "train": [{"captions": str(corpus / "captions_train.json")}],
            "valid": {"captions": str(corpus / "captions_valid.json")},
            "pairs_per_batch": 4,
        },
    }
    for key, value in changes.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    path = directory / "train.yaml"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_a_grounded_run_trains_and_resumes_under_two_gloo_ranks(corpus: Path, tmp_path: Path) -> None:
    objective = {"schedule": "interleave", "caption_step_fraction": 0.5, "interleave_block": 4}
    objective["weighting"] = "uncertainty"
    # Negatives from the rank's own micro-batch, as one process accumulating two micro-batches has them.
    grounding = {"gather_negatives": False}
    distributed = write_config(corpus, tmp_path / "ddp", objective=objective, grounding=grounding)
    single = write_config(
        corpus, tmp_path / "single", objective=objective, optim={"accumulation": 2}, grounding=grounding
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "vgssl", "train", str(distributed)]
    for stop in (["--stop-at", "3"], []):
        result = subprocess.run(
            command + stop, capture_output=True, text=True, timeout=300, env={**os.environ}
        )
        assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "ddp/run/train.log").read_text()
    assert "resumed from" in log and "at step 3" in log
    assert "the model replicas of all 2 ranks are identical" in log
    assert main(["train", str(single)]) == 0

    # Two ranks, stopped and resumed, equal one process accumulating two micro-batches per step: every rank
    # took the same step kinds (a disagreement would deadlock or change the numbers).
    records = {run: read_metrics(tmp_path / run / "run/metrics.jsonl") for run in ("ddp", "single")}
    train_records = {run: [r for r in records[run] if r["split"] == "train"] for run in records}
    for key in ("loss", "gnorm", "caption_step", "weight_vg"):
        logged = [[r[key] for r in train_records[run]] for run in ("ddp", "single")]
        assert logged[0] == pytest.approx(logged[1], rel=1e-4), key
    caption_steps = [r["caption_step"] for r in train_records["ddp"]]
    assert caption_steps == [
        float(is_interleaved_caption_step(s, fraction=0.5, block=4, seed=0)) for s in range(6)
    ]
    assert sum(caption_steps[:4]) == 2
    two_ranks = torch.load(tmp_path / "ddp/run/checkpoints/last.pt", weights_only=True)
    one_rank = torch.load(tmp_path / "single/run/checkpoints/last.pt", weights_only=True)
    # Adam divides by the gradient's running size: rounding noise in gradients that are zero in exact
    # arithmetic (an attention key bias) moves a weight by about lr · noise / eps, hence the 1e-4 tolerance.
    for part in ("model", "grounding", "loss_weighting"):
        for name in one_rank[part]:
            torch.testing.assert_close(
                two_ranks[part][name], one_rank[part][name], rtol=1e-4, atol=1e-4, msg=name
            )

    # The grounded share of the audio is reported, retrieval is logged, and the checkpoint reads both ways.
    last = train_records["ddp"][-1]
    assert 0.0 < last["grounded_fraction_so_far"] < 1.0
    valid = [r for r in records["ddp"] if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [3, 6] and "all/speech_to_image_R@1" in valid[0]
    selection = json.loads((tmp_path / "ddp/run/selection.json").read_text())
    assert selection["captions"]["pairs"] == 24 and selection["captions"]["images"] == 12
    assert isinstance(load_vgs_model(tmp_path / "ddp/run"), VgsModel)
    assert load_model(tmp_path / "ddp/run").config.dim == TINY_MODEL["dim"]


def test_ssl_then_joint_warms_up_on_audio_and_limits_the_grounded_share(corpus: Path, tmp_path: Path) -> None:
    config = write_config(
        corpus,
        tmp_path,
        max_steps=4,
        objective={"schedule": "ssl-then-joint", "audio_only_steps": 2},
        captions={"grounded_fraction": 0.25},
    )
    assert main(["train", str(config)]) == 0
    records = [r for r in read_metrics(tmp_path / "run/metrics.jsonl") if r["split"] == "train"]
    assert [r["caption_step"] for r in records] == [0.0, 0.0, 1.0, 1.0]
    assert [r["grounded_fraction"] > 0 for r in records] == [False, False, True, True]
    assert "vg_loss" in records[2] and "caption_contrastive" in records[2] and "contrastive" in records[0]
    captions = json.loads((tmp_path / "run/selection.json").read_text())["captions"]
    # One caption more than the budget at most: 1.1-1.6 s captions against about 25 s of audio-only speech.
    assert 0.25 <= captions["grounded_fraction_of_training_audio"] < 0.30
    assert captions["pairs"] < 24
    assert "has an image" in (tmp_path / "run/train.log").read_text()


def without_grounding(path: Path, directory: Path) -> Path:
    """The caption-speech control of the VGS+ config at `path`: the same config without grounding."""
    config = yaml.safe_load(path.read_text())
    del config["grounding"]
    del config["captions"]["valid"]  # retrieval needs the grounding branch
    config["run_dir"] = str(directory / "run")
    directory.mkdir(parents=True, exist_ok=True)
    control = directory / "train.yaml"
    control.write_text(yaml.safe_dump(config))
    return control


def test_the_caption_speech_control_hears_the_vgs_captions_without_images(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objective = {"schedule": "interleave", "caption_step_fraction": 0.5, "interleave_block": 4}
    grounded = write_config(
        corpus, tmp_path / "vgs", max_steps=5, objective=objective, captions={"grounded_fraction": 0.3}
    )
    control = without_grounding(grounded, tmp_path / "control")
    assert load_config(control).is_caption_control and not load_config(control).is_grounded
    assert (
        run_control(load_config(control)) == "caption-speech" and run_control(load_config(grounded)) is None
    )

    heard: dict[str, list[list[str]]] = {"vgs": [], "control": []}

    def recording(run: str) -> Callable[[Sequence[CaptionItem]], CaptionBatch]:
        def collate(items: Sequence[CaptionItem]) -> CaptionBatch:
            batch = collate_captions(items)
            heard[run].append(batch.audio.utt_ids)
            return batch

        return collate

    monkeypatch.setattr(run_data, "collate_captions", recording("vgs"))
    assert main(["train", str(grounded)]) == 0

    def no_images(*_: object) -> None:
        raise AssertionError("the control read an image")

    monkeypatch.setattr(PixelImages, "load", no_images)
    monkeypatch.setattr(run_data, "collate_captions", recording("control"))
    assert main(["train", str(control)]) == 0

    # The same caption utterances, in the same batches, at the same steps.
    assert heard["vgs"] and heard["control"] == heard["vgs"]
    runs = {"vgs": tmp_path / "vgs/run", "control": tmp_path / "control/run"}
    selections = {run: json.loads((path / "selection.json").read_text()) for run, path in runs.items()}
    assert selections["vgs"]["captions"].pop("heard_with_images") is True
    assert selections["control"]["captions"].pop("heard_with_images") is False
    assert selections["control"] == selections["vgs"]
    ids = {run: (path / "caption_utterances.txt").read_text().split() for run, path in runs.items()}
    assert ids["control"] == ids["vgs"] and 0 < len(ids["vgs"]) < 24
    assert selections["vgs"]["captions"]["pairs"] == len(ids["vgs"])

    records = {
        run: [r for r in read_metrics(path / "metrics.jsonl") if r["split"] == "train"]
        for run, path in runs.items()
    }
    assert [r["caption_step"] for r in records["control"]] == [r["caption_step"] for r in records["vgs"]]
    assert not any(key.startswith(("vg_", "grad_norm/vg/")) for r in records["control"] for key in r)
    # Before the first update both models are the same audio encoder on the same crops and masks.
    first = {run: records[run][0] for run in runs}
    for key in ("contrastive", "caption_contrastive"):
        if key in first["vgs"]:
            assert first["control"][key] == pytest.approx(first["vgs"][key], rel=1e-5), key
    assert records["control"][-1]["caption_speech_fraction_so_far"] == pytest.approx(
        records["vgs"][-1]["grounded_fraction_so_far"]
    )

    # The control's checkpoints are an audio-only model's, and count the caption speech apart.
    states = {run: torch.load(path / "checkpoints/last.pt", weights_only=True) for run, path in runs.items()}
    assert "grounding" not in states["control"] and "grounding_config" not in states["control"]
    assert set(states["control"]["model"]) == set(states["vgs"]["model"])
    assert states["control"]["seconds_seen"]["caption_speech"] == pytest.approx(
        states["vgs"]["seconds_seen"]["captions"]
    )
    assert states["control"]["seconds_seen"]["captions"] == 0.0  # nothing heard with an image
    assert states["control"]["seconds_seen"]["audio"] == pytest.approx(states["vgs"]["seconds_seen"]["audio"])
    assert states["control"]["best"]["criterion"] == "ssl_loss"
    assert load_model(runs["control"]).config.dim == TINY_MODEL["dim"]
    with pytest.raises(NotAGroundedCheckpointError):
        load_vgs_model(runs["control"])


def test_best_follows_valid_retrieval_and_head_schedules_resume_exactly(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changes = {
        "optim": {"lr": 0.002, "warmup_steps": 2, "head_lr": 0.0005, "head_warmup_steps": 4},
        "logging": {"every": 2, "valid_every": 2, "tensorboard": False, "progress": False},
    }
    config = write_config(corpus, tmp_path, **changes)
    calls = []

    def counting(parts: dict[str, list[torch.nn.Parameter]]) -> dict[str, float]:
        calls.append(len(parts))
        return gradient_norms(parts)

    monkeypatch.setattr(loop, "gradient_norms", counting)
    assert main(["train", str(config), "--run-dir", str(tmp_path / "straight")]) == 0
    assert len(calls) == 3  # per-part gradient norms on the three logging steps only
    for stop in (["--stop-at", "3"], []):
        assert main(["train", str(config), "--run-dir", str(tmp_path / "resumed"), *stop]) == 0
    assert "resumed from" in (tmp_path / "resumed/train.log").read_text()

    states = {
        run: torch.load(tmp_path / run / "checkpoints/last.pt", weights_only=True)
        for run in ("straight", "resumed")
    }
    for part in ("model", "grounding"):
        for name, value in states["straight"][part].items():
            assert torch.equal(value, states["resumed"][part][name]), name
    records = {run: read_metrics(tmp_path / run / "metrics.jsonl") for run in states}

    def comparable(run: str) -> list[dict]:
        # The stop logs its own (shorter) interval, so the resumed run's record at step 4 covers fewer steps.
        kept = [r for r in records[run] if r["split"] == "valid" or r["step"] in (2, 6)]
        return [{k: v for k, v in r.items() if k != "audio_seconds_per_second"} for r in kept]

    assert comparable("resumed") == comparable("straight")

    # Each role's learning rate follows its own schedule (logged as interval means, like every value).
    train_records = [r for r in records["straight"] if r["split"] == "train"]
    for record in train_records:
        updates = [record["step"] - 2, record["step"] - 1]
        for key, peak, warmup in (("lr", 0.002, 2), ("lr_head", 0.0005, 4)):
            expected = [
                peak * lr_scale(u, warmup_steps=warmup, total_steps=6, decay="linear") for u in updates
            ]
            assert record[key] == pytest.approx(sum(expected) / 2), (key, record["step"])
        parts = ("audio_encoder", "audio_head", "image_encoder", "log_logit_scale")
        assert {f"grad_norm/{part}" for part in parts} <= set(record)
        assert {
            "grad_norm/vg/audio_encoder",
            "grad_norm/ssl/audio_encoder",
            "grad_norm/vg/audio_head",
        } <= set(record)
        # Four pairs per batch, each image with up to two captions: 1 to 3 negatives per pair.
        low, high = 2 * math.log(1 + math.e), 2 * math.log(1 + 3 * math.e)
        assert low <= record["vg_collapsed_loss"] <= high

    # best.pt is the checkpoint with the best valid retrieval: mean R@10, then mean R@1, ties to the later.
    valid = [r for r in records["straight"] if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [2, 4, 6]

    def score(record: dict) -> tuple[float, float]:
        return tuple(
            (record[f"all/speech_to_image_R@{k}"] + record[f"all/image_to_speech_R@{k}"]) / 2 for k in (10, 1)
        )

    best_step = max(valid, key=lambda r: (score(r), r["step"]))["step"]
    for run in states:
        best = torch.load(tmp_path / run / "checkpoints/best.pt", weights_only=True)
        assert best["step"] == best_step and best["best"]["step"] == best_step
        assert best["best"]["criterion"] == "retrieval"
        assert tuple(best["best"]["value"]) == pytest.approx(
            score(valid[[r["step"] for r in valid].index(best_step)])
        )
    assert all(r["best_by/retrieval"] == pytest.approx(score(r)[0]) for r in valid)

    # A one-language valid set has no pooled ("all") scores: its language's are the pooled ones.
    english = write_config(corpus, tmp_path / "en", max_steps=2, captions={"languages": ["en"]}, **changes)
    assert main(["train", str(english)]) == 0
    (valid,) = [r for r in read_metrics(tmp_path / "en/run/metrics.jsonl") if r["split"] == "valid"]
    assert "all/speech_to_image_R@10" not in valid
    best = torch.load(tmp_path / "en/run/checkpoints/best.pt", weights_only=True)["best"]
    assert best["value"][1] == pytest.approx(
        (valid["en/speech_to_image_R@1"] + valid["en/image_to_speech_R@1"]) / 2
    )

    # With best_by: ssl_loss, best.pt follows the SSL validation loss instead.
    ssl = write_config(corpus, tmp_path / "ssl", checkpoint={"best_by": "ssl_loss"}, **changes)
    assert main(["train", str(ssl)]) == 0
    valid = [r for r in read_metrics(tmp_path / "ssl/run/metrics.jsonl") if r["split"] == "valid"]
    lowest = min(valid, key=lambda r: r["loss"])
    best = torch.load(tmp_path / "ssl/run/checkpoints/best.pt", weights_only=True)
    assert best["step"] == lowest["step"] and best["best"] == {
        "criterion": "ssl_loss",
        "value": [pytest.approx(lowest["loss"])],
        "step": lowest["step"],
    }


def test_grounded_configs_are_checked_as_a_whole(corpus: Path, tmp_path: Path) -> None:
    config = yaml.safe_load(write_config(corpus, tmp_path).read_text())
    cases = [
        (
            {k: v for k, v in config.items() if k != "captions"},
            "needs both a grounding section and a captions",
        ),
        (
            {**config, "grounding": {**config["grounding"], "image_input": "features", "feature_dim": 8}},
            "needs captions.image_features",
        ),
        ({**config, "grounding": {**config["grounding"], "tap_layer": 3}}, "tap_layer=3 does not exist"),
        (
            {k: v for k, v in config.items() if k not in ("grounding", "captions")} | {"objective": {}},
            "objective applies to runs with captions only",
        ),
        ({**config, "objective": {"schedule": "sometimes"}}, "objective.schedule"),
        (
            {k: v for k, v in config.items() if k != "grounding"},
            "captions.valid is for speech–image retrieval, which a run without grounding cannot do",
        ),
        (
            {
                **config,
                "captions": {**config["captions"], "valid": None},
                "checkpoint": {"best_by": "retrieval"},
            },
            r"best_by: retrieval needs valid captions \(captions.valid\)",
        ),
        (
            {k: v for k, v in config.items() if k not in ("grounding", "captions")}
            | {"checkpoint": {"best_by": "retrieval"}},
            "best_by: retrieval needs a grounded run",
        ),
    ]
    for raw, message in cases:
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(raw))
        with pytest.raises(ConfigError, match=message):
            load_config(path)


def test_a_missing_caption_file_stops_the_run_or_is_skipped_and_counted(corpus: Path, tmp_path: Path) -> None:
    broken = tmp_path / "captions.json"
    document = json.loads((corpus / "captions_train.json").read_text())
    document["data"][3]["captions"][1]["wav"] = "captions/nowhere.wav"
    for entry in document["data"]:
        entry["image"] = str(corpus / entry["image"])
        for caption in entry["captions"]:
            caption["wav"] = str(corpus / caption["wav"])
    broken.write_text(json.dumps(document))
    captions = {"train": [{"captions": str(broken)}]}
    with pytest.raises(MissingCaptionFileError, match=r"data\[3\] \(image img-3\): the wav of caption fr-3"):
        Trainer(load_config(write_config(corpus, tmp_path / "fail", captions=captions)), CPU)
    skipping = write_config(corpus, tmp_path / "skip", captions={**captions, "on_missing": "skip"})
    Trainer(load_config(skipping), CPU)
    selection = json.loads((tmp_path / "skip/run/selection.json").read_text())
    assert selection["captions"]["skipped"]["missing_wav"] == 1 and selection["captions"]["pairs"] == 23


def test_an_unreadable_caption_wav_is_skipped_with_a_log_line_and_counted(
    corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "captions.json"
    document = json.loads((corpus / "captions_train.json").read_text())
    for entry in document["data"]:
        entry["image"] = str(corpus / entry["image"])
        for caption in entry["captions"]:
            caption["wav"] = str(corpus / caption["wav"])
    noise = tmp_path / "noise.wav"
    noise.write_bytes(np.random.default_rng(0).bytes(4000))
    document["data"][2]["captions"][0]["wav"] = str(noise)
    uttid = document["data"][2]["captions"][0].get("uttid", "noise")
    broken.write_text(json.dumps(document))
    captions = {"train": [{"captions": str(broken)}]}
    with pytest.raises(BadAudioError, match=rf"cannot read caption {uttid} of image"):
        Trainer(
            load_config(
                write_config(corpus, tmp_path / "fail", captions=captions, data={"on_bad_audio": "fail"})
            ),
            CPU,
        )
    with caplog.at_level(logging.WARNING, logger="vgssl.train.captions"):
        Trainer(load_config(write_config(corpus, tmp_path / "skip", captions=captions)), CPU)
    assert any(
        f"skipping caption {uttid} of image" in r.getMessage() and "noise.wav" in r.getMessage()
        for r in caplog.records
    )
    selection = json.loads((tmp_path / "skip/run/selection.json").read_text())
    assert selection["captions"]["skipped"]["unreadable_wav"] == 1 and selection["captions"]["pairs"] == 23


# --- learning -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "corpus"
    build_corpus(make_spec(tiny=True), root, workers=2, progress=False, log=lambda _: None)
    return root


@pytest.mark.slow
def test_speech_to_image_retrieval_beats_chance_after_a_short_cpu_training(tiny_corpus: Path) -> None:
    """The grounding branch and the image CNN learn to pair the tiny corpus's 48 training captions (24 images,
    English and French) with their images within 60 steps, on top of a FROZEN randomly initialised SSL
    encoder (for speed: its features stay fixed; the trainer tests above exercise the full model)."""
    captions = read_caption_set(tiny_corpus / "captions_train.json")
    images = PixelImages(64)
    pixels = torch.from_numpy(np.stack([images.load(image) for image in captions.images]))
    waves = [torch.from_numpy(read_audio(caption.wav)) for caption in captions.captions]
    image_of = {image.image_id: row for row, image in enumerate(captions.images)}
    groups = torch.tensor([image_of[caption.image_id] for caption in captions.captions])
    torch.manual_seed(0)
    grounding = GroundingConfig(
        joint_dim=64, pooling="attention", image_size=64, image_channels=(16, 32, 64), dropout=0.0
    )
    model = VgsModel(ModelConfig(**{**TINY_MODEL, "layers": 1, "pos_conv_kernel": 16}), grounding)
    model.audio.requires_grad_(False)
    model.audio.eval()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    before = retrieval_scores(embed_caption_set(model, captions, images, device=torch.device("cpu")))["all"]
    for _ in range(60):
        batch = torch.randperm(len(waves), generator=generator)[:16].tolist()
        longest = max(waves[i].numel() for i in batch)
        wav = torch.zeros(len(batch), longest)
        padding = torch.ones(len(batch), longest, dtype=torch.bool)
        for row, i in enumerate(batch):
            wav[row, : waves[i].numel()], padding[row, : waves[i].numel()] = waves[i], False
        output = model(wav, padding, images=pixels[groups[batch]], image_groups=groups[batch])
        optimizer.zero_grad()
        (sum(output.losses.values()) / len(batch)).backward()
        optimizer.step()
    after = retrieval_scores(embed_caption_set(model, captions, images, device=torch.device("cpu")))["all"]
    chance = after["chance"]["speech_to_image"]
    assert (after["images"], chance["R@10"], chance["R@1"]) == (
        24,
        pytest.approx(100 * 10 / 24),
        pytest.approx(100 / 24),
    )
    # Chance is 41.7 % at R@10 and 4.2 % at R@1; an untrained model sits near it, a trained one far above.
    assert before["speech_to_image"]["R@10"] < 70.0
    assert after["speech_to_image"]["R@10"] >= chance["R@10"] + 35.0
    assert after["speech_to_image"]["R@1"] >= chance["R@1"] + 20.0
    assert after["image_to_speech"]["R@10"] >= after["chance"]["image_to_speech"]["R@10"] + 35.0
