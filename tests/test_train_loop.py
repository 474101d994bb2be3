"""The training loop end to end on a tiny synthetic corpus: loss normalisation, resumption, DDP, bad input."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from tiny_models import CPU, TINY_MODEL
from vgssl.audio.io import BadAudioError, write_wav
from vgssl.cli import main
from vgssl.data.manifest import ManifestEntry, write_manifest
from vgssl.model import wav2vec2 as wav2vec2_module
from vgssl.model.config import ModelConfig
from vgssl.model.hf import export_to_hf
from vgssl.model.wav2vec2 import Wav2Vec2
from vgssl.train.checkpoint import RunDirConflictError
from vgssl.train.collapse import CollapseError
from vgssl.train.config import ManifestSource, load_config
from vgssl.train.data import AudioDataset, collate_batch, load_split
from vgssl.train.distributed import (
    DistributedContext,
    ReplicaDriftError,
    check_replicas_identical,
    deterministic_kernels,
    resolve_autocast_dtype,
)
from vgssl.train.gradients import (
    MASK_STREAM_OFFSET,
    NonFiniteLossError,
    accumulate_gradients,
    micro_batch_seed,
)
from vgssl.train.loop import Trainer, train
from vgssl.train.metrics import read_metrics
from vgssl.train.schedule import lr_scale

RATE = 16_000


PHONES = [(110, 700), (130, 1200), (150, 300), (200, 2200), (240, 900), (180, 1600)]  # (f0, formant) Hz
WORDS = [[0, 3, 1], [2, 5], [4, 0, 5, 2], [1, 4], [3, 2, 0]]  # fixed phone sequences: context predicts them


def babble(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Speech-like audio: random words, each a fixed sequence of 250 ms harmonic "phones", plus noise."""
    phone_samples = 4000
    t = np.arange(phone_samples) / RATE
    segments = []
    while len(segments) * phone_samples < seconds * RATE:
        for phone in WORDS[rng.integers(len(WORDS))]:
            f0, formant = PHONES[phone]
            tone = np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(2 * np.pi * formant * t)
            segments.append(
                0.2 * tone * np.hanning(phone_samples) + 0.01 * rng.standard_normal(phone_samples)
            )
    return np.concatenate(segments)[: int(seconds * RATE)].astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    lengths = {}
    for language in ("en", "fr"):
        for split, count in (("train", 10), ("valid", 3)):
            entries = []
            for i in range(count):
                path = f"{language}/{split}/{i:02d}.wav"
                audio = babble(rng, rng.uniform(1.0, 2.5))
                write_wav(root / "audio" / path, audio)
                entries.append(ManifestEntry(path, len(audio), language, "s0"))
                lengths[path] = len(audio)
            write_manifest(root / f"{language}_{split}.tsv", "audio", entries)
    (root / "audio" / "broken.wav").write_bytes(b"RIFF\x00\x00 this is not audio")
    entries = [ManifestEntry("broken.wav", 24_000, "en")]
    entries += [
        ManifestEntry(f"en/train/{i:02d}.wav", lengths[f"en/train/{i:02d}.wav"], "en") for i in range(10)
    ]
    write_manifest(root / "en_broken.tsv", "audio", entries)
    return root


def write_config(corpus: Path, directory: Path, **changes: dict) -> Path:
    """A tiny run's config; `changes` update its sections ({"optim": {"accumulation": 2}}) or set keys."""
    config = {
        "run_dir": str(directory / "run"),
        "max_steps": 6,
        "model": dict(TINY_MODEL),
        "data": {
            "train": [{"manifest": str(corpus / "en_train.tsv")}, {"manifest": str(corpus / "fr_train.tsv")}],
            "max_seconds": 2.0,
            "batch_seconds": 6.0,
        },
        "optim": {"lr": 0.002, "warmup_steps": 2},
        "checkpoint": {"every": 2, "keep_last": 2},
        "logging": {"every": 1, "valid_every": 3, "tensorboard": False, "progress": False},
    }
    for key, value in changes.items():
        if isinstance(value, dict):
            config[key] = {**config.get(key, {}), **value}
        else:
            config[key] = value
    path = directory / "train.yaml"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def final_parameters(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_accumulated_micro_batches_equal_one_forward_of_the_concatenated_batch(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The oracle is the model run ONCE on all four utterances padded into one batch: no micro-batch seeds,
    no loss sums. Masks and negatives are drawn per utterance from generators seeded by the utterance itself
    (the real masking and sampling code), so they are the same wherever the utterance sits; no dropout and an
    argmax quantizer remove the other draws. The diversity term is off: its perplexity is a per-batch
    quantity, so only the contrastive term is exactly the big batch's (the next test covers diversity)."""
    split = load_split(
        [ManifestSource(manifest=corpus / "en_train.tsv")], min_seconds=1.0, sample_rate=RATE, split="t"
    )
    dataset = AudioDataset(
        split.utterances, max_samples=40_000, seed=0, sample_rate=RATE, on_wrong_sample_rate="fail"
    )
    utterances = [dataset[index] for index in range(4)]
    micro_batches = [collate_batch(utterances[:1]), collate_batch(utterances[1:])]
    big_batch = collate_batch(utterances)
    real_mask, real_negatives = wav2vec2_module.compute_span_mask, wav2vec2_module.sample_negatives

    def own_generator(offset: int, value: torch.Tensor) -> torch.Generator:
        return torch.Generator().manual_seed(offset + int(value))

    def mask_per_utterance(
        lengths: torch.Tensor, num_frames: int, *, generator: object = None, **options: object
    ) -> torch.Tensor:
        del generator  # the trainer's per-micro-batch generator: replaced by one per utterance
        return torch.cat(
            [real_mask(n[None], num_frames, generator=own_generator(1000, n), **options) for n in lengths]
        )

    def negatives_per_utterance(masked_counts: torch.Tensor, num_negatives: int) -> torch.Tensor:
        return torch.cat(
            [real_negatives(n[None], num_negatives, generator=own_generator(2000, n)) for n in masked_counts]
        )

    monkeypatch.setattr(wav2vec2_module, "compute_span_mask", mask_per_utterance)
    monkeypatch.setattr(wav2vec2_module, "sample_negatives", negatives_per_utterance)
    deterministic = {"dropout": 0.0, "attention_dropout": 0.0, "diversity_weight": 0.0}
    torch.manual_seed(0)
    model = Wav2Vec2(ModelConfig(**{**TINY_MODEL, **deterministic})).train()
    model.quantizer.eval()  # argmax codes: the Gumbel noise would depend on the frame's place in the batch

    totals = accumulate_gradients(model, micro_batches, seed=7, step=3, context=CPU, autocast_dtype=None)
    accumulated = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    model.zero_grad()
    output = model(big_batch.wav, big_batch.padding_mask)
    assert totals["num_masked"] == int(output.num_masked) and totals["micro_batches"] == 2
    assert totals["contrastive"] == pytest.approx(float(output.losses["ssl/contrastive"].detach()), rel=1e-5)
    assert float(output.losses["ssl/diversity"].detach()) == 0.0 == totals["diversity"]
    (sum(output.losses.values()) / output.num_masked).backward()  # contrastive only: diversity is × 0
    assert set(accumulated) == {name for name, p in model.named_parameters() if p.grad is not None}
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(accumulated[name], parameter.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert accumulated["quantizer.codebook"].abs().sum() > 0 and accumulated["mask_embedding"].abs().sum() > 0


def test_accumulated_gradients_are_the_loss_sums_over_the_global_masked_count(corpus: Path) -> None:
    """With the diversity term on: each micro-batch's loss sum (its diversity from its own perplexity) over
    the masked frames of all micro-batches, not the mean of per-micro-batch means."""
    split = load_split(
        [ManifestSource(manifest=corpus / "en_train.tsv")], min_seconds=1.0, sample_rate=RATE, split="t"
    )
    dataset = AudioDataset(
        split.utterances, max_samples=40_000, seed=0, sample_rate=RATE, on_wrong_sample_rate="fail"
    )
    micro_batches = [collate_batch([dataset[0]]), collate_batch([dataset[1], dataset[2], dataset[3]])]
    torch.manual_seed(0)
    model = Wav2Vec2(ModelConfig(**TINY_MODEL)).train()

    totals = accumulate_gradients(model, micro_batches, seed=7, step=3, context=CPU, autocast_dtype=None)
    accumulated = {name: p.grad.clone() for name, p in model.named_parameters()}

    # By hand: each micro-batch's loss sum (same seeds, so the same masks, negatives and dropout), their total
    # divided by the total masked count.
    sums, counts = [], []
    for index, batch in enumerate(micro_batches):
        torch.manual_seed(micro_batch_seed(7, 3, index))
        masks = torch.Generator().manual_seed(micro_batch_seed(7, 3, index, stream=MASK_STREAM_OFFSET))
        time_mask = model.span_mask(batch.wav, batch.padding_mask, generator=masks)
        output = model(batch.wav, batch.padding_mask, time_mask=time_mask)
        sums.append(sum(output.losses.values()))
        counts.append(output.num_masked)
    assert counts[0] != counts[1] and totals["num_masked"] == sum(counts)
    model.zero_grad()
    (sum(sums) / sum(counts)).backward(retain_graph=True)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(accumulated[name], parameter.grad, rtol=1e-4, atol=1e-7, msg=name)

    # Averaging per-micro-batch means instead (the classic mistake) gives other gradients.
    model.zero_grad()
    (sums[0] / counts[0] / 2 + sums[1] / counts[1] / 2).backward()
    assert not torch.allclose(accumulated["quantizer.codebook"], model.quantizer.codebook.grad, rtol=1e-3)


def test_a_rerun_is_bit_identical_and_deterministic_kernels_change_nothing_on_cpu(
    corpus: Path, tmp_path: Path
) -> None:
    """What the report's reproducibility statement promises: same config, seed and threads, same weights; the
    `deterministic: true` switch (meant for CUDA) is on during its run and restored after it."""
    config = write_config(corpus, tmp_path, max_steps=4)
    for run in ("first", "again"):
        assert main(["train", str(config), "--run-dir", str(tmp_path / run)]) == 0
    assert (
        main(["train", str(config), "--run-dir", str(tmp_path / "det"), "--set", "deterministic=true"]) == 0
    )
    first = final_parameters(tmp_path / "first")
    for run in ("again", "det"):
        other = final_parameters(tmp_path / run)
        assert all(torch.equal(first[name], other[name]) for name in first), run
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic_kernels(True):
        assert torch.are_deterministic_algorithms_enabled() and os.environ["CUBLAS_WORKSPACE_CONFIG"]
    assert not torch.are_deterministic_algorithms_enabled() and "CUBLAS_WORKSPACE_CONFIG" not in os.environ


def test_resumed_run_equals_uninterrupted_run(corpus: Path, tmp_path: Path) -> None:
    # 6 steps cross an epoch boundary (about 5 batches per epoch); the stop at step 3 is mid-epoch.
    config = write_config(
        corpus,
        tmp_path,
        data={"valid": [{"manifest": str(corpus / "en_valid.tsv")}]},
        logging={"tensorboard": True},
    )
    assert main(["train", str(config), "--run-dir", str(tmp_path / "straight")]) == 0
    assert main(["train", str(config), "--run-dir", str(tmp_path / "resumed"), "--stop-at", "3"]) == 0
    assert main(["train", str(config), "--run-dir", str(tmp_path / "resumed"), "--stop-at", "3"]) == 0
    assert torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=True)["step"] == 3
    assert main(["train", str(config), "--run-dir", str(tmp_path / "resumed")]) == 0

    straight, resumed = final_parameters(tmp_path / "straight"), final_parameters(tmp_path / "resumed")
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
    checkpoints = sorted(path.name for path in (tmp_path / "resumed/checkpoints").iterdir())
    assert checkpoints == ["best.pt", "last.pt", "step_00000004.pt", "step_00000006.pt"]

    def losses(run: str) -> list[tuple[str, int, float]]:
        return [(r["split"], r["step"], r["loss"]) for r in read_metrics(tmp_path / run / "metrics.jsonl")]

    assert losses("resumed") == losses("straight")
    assert [step for split, step, _ in losses("straight") if split == "valid"] == [3, 6]
    record = read_metrics(tmp_path / "straight" / "metrics.jsonl")[0]
    assert {
        "contrastive",
        "diversity",
        "code_perplexity",
        "prob_perplexity",
        "accuracy",
        "temp",
        "gnorm",
        "lr",
    } | {
        "fraction_masked",
        "audio_seconds_per_second",
    } <= set(record)
    assert any((tmp_path / "straight" / "tensorboard").iterdir())


def test_a_finished_run_exits_zero_and_a_changed_config_is_refused(corpus: Path, tmp_path: Path) -> None:
    config = write_config(corpus, tmp_path, max_steps=2, precision="bf16")  # bf16 autocast works on a CPU too
    assert main(["train", str(config)]) == 0
    mtime = (tmp_path / "run/checkpoints/last.pt").stat().st_mtime_ns
    assert main(["train", str(config)]) == 0
    assert (tmp_path / "run/checkpoints/last.pt").stat().st_mtime_ns == mtime
    assert "already finished at step 2" in (tmp_path / "run" / "train.log").read_text()

    changed = load_config(write_config(corpus, tmp_path, max_steps=2, precision="bf16", optim={"lr": 0.01}))
    with pytest.raises(
        RunDirConflictError, match=r"optim.lr: 0.002 in the run, 0.01 now\n.*another --run-dir"
    ):
        train(changed)


def test_auto_precision_is_bf16_on_a_cpu_only_where_the_cpu_has_native_bf16() -> None:
    cpu = torch.device("cpu")
    flags = Path("/proc/cpuinfo").read_text(encoding="utf-8") if Path("/proc/cpuinfo").is_file() else ""
    native = any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))
    # bf16 is emulated (about 10x slower than fp32) where the CPU lacks it, so auto must not pick it there
    assert resolve_autocast_dtype("auto", cpu) == (torch.bfloat16 if native else None)
    assert resolve_autocast_dtype("fp32", cpu) is None
    assert resolve_autocast_dtype("bf16", cpu) == torch.bfloat16  # asked for: honoured, with a warning
    assert resolve_autocast_dtype("auto", torch.device("cuda")) == torch.bfloat16


def test_the_model_learns_within_a_hundred_steps(corpus: Path, tmp_path: Path) -> None:
    """A falling loss alone is no proof: the initial loss (2.8 nats) sits above uniform guessing, ln(K + 1) =
    2.40, so merely calibrating the logits takes 0.4 nats off, and a codebook that shrinks to a few codes
    drives the loss (and the "accuracy") towards perfect, since a negative with the positive's codes cannot
    compete. So: the loss must end below guessing, the accuracy well above chance and rising, and the code
    perplexity must stay high (measured here: loss 2.20, accuracy 0.21 against 0.11 at the start, code
    perplexity at least 21 of G·V = 32)."""
    config = write_config(
        corpus, tmp_path, max_steps=100, checkpoint={"every": 100}, optim={"warmup_steps": 10, "lr": 0.005}
    )
    assert main(["train", str(config)]) == 0
    records = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["split"] == "train"]
    assert len(records) == 100
    losses, accuracy = [r["loss"] for r in records], [r["accuracy"] for r in records]
    negatives, codebook = TINY_MODEL["num_negatives"], 2 * TINY_MODEL["codebook_entries"]  # G = 2 groups
    assert np.mean(losses[-20:]) < np.mean(losses[:3]) - 0.1
    assert np.mean(losses[-20:]) < math.log(negatives + 1) - 0.1  # below uniform guessing
    assert np.mean(accuracy[-20:]) > 1.5 / (negatives + 1)  # chance: 1 / (K + 1)
    assert np.mean(accuracy[-20:]) > np.mean(accuracy[:10]) + 0.05
    assert min(r["code_perplexity"] for r in records[-20:]) > codebook / 2


def test_two_gloo_ranks_equal_one_process_with_accumulation(corpus: Path, tmp_path: Path) -> None:
    # Layer drop on: FACTS saw it make transformers' DDP replicas drift; ours must stay identical.
    model = {**TINY_MODEL, "layer_drop": 0.3}
    distributed = write_config(corpus, tmp_path / "ddp", max_steps=3, model=model, checkpoint={"every": 3})
    single = write_config(
        corpus,
        tmp_path / "single",
        max_steps=3,
        model=model,
        checkpoint={"every": 3},
        optim={"accumulation": 2},
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "vgssl", "train", str(distributed)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, env={**os.environ})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the model replicas of all 2 ranks are identical" in (tmp_path / "ddp/run/train.log").read_text()
    assert main(["train", str(single)]) == 0

    # Adam hides a constant gradient factor in the weights, but not in the logged gradient norm and loss.
    for key in ("gnorm", "loss", "accuracy", "code_perplexity"):
        logged = [
            [r[key] for r in read_metrics(tmp_path / run / "run/metrics.jsonl")] for run in ("ddp", "single")
        ]
        assert logged[0] == pytest.approx(logged[1], rel=1e-4), key
    two_ranks, one_rank = final_parameters(tmp_path / "ddp/run"), final_parameters(tmp_path / "single/run")
    for name in one_rank:
        torch.testing.assert_close(two_ranks[name], one_rank[name], rtol=1e-4, atol=1e-5, msg=name)


def _check_drift(rank: int, store: str, perturb: bool, results: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    torch.manual_seed(0)
    module = torch.nn.Linear(4, 3)
    if perturb and rank == 1:
        module.bias.data[0] += 1e-6
    context = DistributedContext(rank=rank, local_rank=rank, world_size=2, device=torch.device("cpu"))
    try:
        check_replicas_identical(module, context)
        outcome = "identical"
    except ReplicaDriftError as error:
        outcome = str(error)
    Path(results, f"{rank}.txt").write_text(outcome)
    dist.destroy_process_group()


def test_replica_drift_is_detected_on_every_rank(tmp_path: Path) -> None:
    mp.spawn(_check_drift, args=(str(tmp_path / "store"), True, str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        assert (tmp_path / f"{rank}.txt").read_text().startswith("1 of 2 ranks hold parameters that differ")


def test_bad_audio_is_skipped_by_name_or_stops_the_run(corpus: Path, tmp_path: Path) -> None:
    sources = [{"manifest": str(corpus / "en_broken.tsv")}, {"manifest": str(corpus / "fr_train.tsv")}]
    skipping = write_config(corpus, tmp_path / "skip", max_steps=8, data={"train": sources})
    assert main(["train", str(skipping)]) == 0
    log = (tmp_path / "skip/run/train.log").read_text()
    assert "skipping unreadable audio (1 so far on this rank): cannot read audio file" in log
    assert "broken.wav" in log and "skipped 1 unreadable files in all: broken" in log

    failing = write_config(
        corpus, tmp_path / "fail", max_steps=8, data={"train": sources, "on_bad_audio": "fail"}
    )
    with pytest.raises(BadAudioError, match=r"broken.wav.*\(utterance broken\)"):
        train(load_config(failing))


def test_non_finite_loss_names_the_step_and_the_utterances(corpus: Path) -> None:
    split = load_split(
        [ManifestSource(manifest=corpus / "fr_train.tsv")], min_seconds=1.0, sample_rate=RATE, split="t"
    )
    dataset = AudioDataset(
        split.utterances, max_samples=32_000, seed=0, sample_rate=RATE, on_wrong_sample_rate="fail"
    )
    model = Wav2Vec2(ModelConfig(**TINY_MODEL))
    with torch.no_grad():
        model.project_context.weight[0, 0] = math.inf
    batch = collate_batch([dataset[2], dataset[5]])
    with pytest.raises(
        NonFiniteLossError, match=r"step 5 in batches with utterances \[rank 0: fr/train/02, fr/train/05"
    ):
        accumulate_gradients(model, [batch], seed=0, step=4, context=CPU, autocast_dtype=None)


def test_collapse_stops_the_run(corpus: Path, tmp_path: Path) -> None:
    # A floor ratio above any possible perplexity makes every step look collapsed.
    config = write_config(corpus, tmp_path, collapse={"patience": 2, "perplexity_floor_ratio": 1000.0})
    with pytest.raises(CollapseError, match="codebook collapse at step 2"):
        train(load_config(config))


def test_initialisation_from_a_transformers_checkpoint(corpus: Path, tmp_path: Path) -> None:
    conv_model = {
        **TINY_MODEL,
        "frontend": "conv",
        "conv_layers": [[32, 10, 5], [32, 8, 4], [32, 4, 4], [32, 2, 4]],
    }
    torch.manual_seed(123)
    source = Wav2Vec2(ModelConfig(**conv_model))
    export_to_hf(source, tmp_path / "hf")
    config = load_config(write_config(corpus, tmp_path, model=conv_model, init_from_hf=str(tmp_path / "hf")))
    trainer = Trainer(config, CPU)
    initialised = trainer.model.state_dict()
    encoder = [name for name in initialised if not name.startswith(("quantizer.", "project_"))]
    for name in encoder:
        assert torch.equal(initialised[name], source.state_dict()[name]), name
    torch.manual_seed(config.seed)
    fresh = Wav2Vec2(config.model).state_dict()  # what the trainer would have started from
    assert not all(torch.equal(fresh[name], source.state_dict()[name]) for name in encoder)


def test_a_finished_run_extends_to_more_steps_on_the_new_schedule(corpus: Path, tmp_path: Path) -> None:
    short = write_config(corpus, tmp_path, max_steps=4, checkpoint={"every": 4, "keep_last": 2})
    assert main(["train", str(short)]) == 0
    four = final_parameters(tmp_path / "run")
    # Another change than a larger max_steps is still a different run; so is a shorter one.
    for change in (["--set", "optim.lr=0.001"], ["--max-steps", "3"]):
        assert main(["train", str(short), *change]) == 2
    assert main(["train", str(short), "--max-steps", "7"]) == 0

    run = tmp_path / "run"
    assert yaml.safe_load((run / "config.yaml").read_text())["max_steps"] == 7
    assert "extending" in (run / "train.log").read_text()
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 7 and state["train_config"]["max_steps"] == 7
    assert any(not torch.equal(four[name], state["model"][name]) for name in four)
    # The learning rate of each new update follows the 7-step schedule from where the run stood, not the
    # finished 4-step one (which ended at 0).
    records = [r for r in read_metrics(run / "metrics.jsonl") if r["split"] == "train"]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6, 7]
    for record in records[4:]:
        expected = 0.002 * lr_scale(record["step"] - 1, warmup_steps=2, total_steps=7, decay="linear")
        assert record["lr"] == pytest.approx(expected, rel=1e-6)
    assert records[4]["lr"] > 0.0


def test_the_gumbel_floor_is_reached_at_the_asked_fraction_of_training(corpus: Path, tmp_path: Path) -> None:
    model = {**TINY_MODEL, "gumbel_temperature": [2.0, 0.5, 0.999995]}
    config = load_config(
        write_config(corpus, tmp_path, max_steps=1000, model=model, optim={"gumbel_floor_at": 0.25})
    )
    start, end, decay = config.trained_model.gumbel_temperature
    assert (start, end) == (2.0, 0.5)
    assert start * decay**250 == pytest.approx(end, rel=1e-9)
    assert start * decay**249 > end
    unset = load_config(write_config(corpus, tmp_path / "plain", max_steps=1000, model=model))
    assert unset.trained_model.gumbel_temperature == (2.0, 0.5, 0.999995)  # the model section's own decay
    encoder = Wav2Vec2(config.trained_model)
    for step, temperature in ((0, 2.0), (125, 1.0), (250, 0.5), (900, 0.5)):
        encoder.set_num_updates(step)
        assert encoder.quantizer.temperature == pytest.approx(temperature, rel=1e-6)


def test_a_second_trainer_on_one_run_dir_fails_at_once(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from vgssl.locks import exclusive_lock

    config = write_config(corpus, tmp_path, max_steps=2)
    with exclusive_lock(tmp_path / "run", job="trainer"):
        assert main(["train", str(config)]) == 2
    assert f"in use by another trainer (PID {os.getpid()})" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert main(["train", str(config)]) == 0  # the lock is not in the way of the run's own files
