"""Negatives from every rank: the differentiable all-gather and the gathered margin-InfoNCE on 2 gloo ranks.

Two ranks holding B_0 + B_1 pairs must give the loss sums and, after DDP's average and the trainer's
world_size / global-pairs scale, the parameter gradients of one process holding all the pairs.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from tiny_models import CPU
from tiny_models import TINY_MODEL as SHARED_TINY_MODEL
from vgssl.model.config import ModelConfig
from vgssl.model.gather import GatherShapeError, all_gather_rows, gather_layout, process_rank_and_world
from vgssl.model.grounding import margin_info_nce
from vgssl.model.vgs import GroundingConfig, VgsModel
from vgssl.train.captions import CaptionBatch, CaptionItem, collate_captions
from vgssl.train.data import Item
from vgssl.train.distributed import DistributedContext
from vgssl.train.gradients import accumulate_grounding_gradients

NO_DROPOUT = {"dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "feature_dropout": 0.0}
TINY_MODEL = SHARED_TINY_MODEL | {"num_negatives": 5} | NO_DROPOUT
FEATURE_DIM = 8
MARGIN, SCALE = 1.0, 6.0
TINY_GROUNDING = {
    "joint_dim": 16,
    "pool_heads": 2,
    "image_input": "features",
    "feature_dim": FEATURE_DIM,
    "dropout": 0.0,
    "margin": MARGIN,
}
SAMPLES = 4_000  # equal lengths: no padding, so a pair's embeddings do not depend on its batch-mates
# The model computes its embeddings and the loss in fp32 and its gradients reach ~100: measured agreement
# between 2 ranks and 1 process is ~2e-6 of a tensor's largest entry (1e-14 with everything in fp64).
RELATIVE = 1e-5

# The fixed batches: image ids per rank (a duplicate within a rank; in the trainer cases the per-batch group
# ids [0, 1, 0] repeat on both ranks for different images).
TRAINER_CASES = {"equal": (["a", "b", "a"], ["c", "d", "c"]), "unequal": (["a", "b", "c", "a"], ["d", "e"])}
# Global image ids, image 1 on both ranks, image 0 twice on rank 0.
GLOBAL_GROUPS = ([0, 1, 2, 0], [1, 3])
# Loss-level cases: per-rank group ids; 7 appears on both ranks (and twice on rank 1).
LOSS_GROUPS = {"unequal": ([7, 1], [7, 2, 3, 7]), "empty_rank": ([7, 1, 7, 2], [])}
EMBED_DIM = 5


def tiny_model() -> VgsModel:
    torch.manual_seed(0)
    return VgsModel(ModelConfig(**TINY_MODEL), GroundingConfig(**TINY_GROUNDING))


def fixed_pairs(count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(123)
    wav = (0.1 * rng.standard_normal((count, SAMPLES))).astype(np.float32)
    return wav, rng.standard_normal((count, FEATURE_DIM)).astype(np.float32)


def caption_batch(image_ids: list[str], first: int, total: int) -> CaptionBatch:
    """Pairs `first` … `first + len(image_ids)` of the fixed pairs, collated as the trainer does."""
    wav, features = fixed_pairs(total)
    items = [
        CaptionItem(Item(f"u{first + i}", wav[first + i]), features[first + i], image_id)
        for i, image_id in enumerate(image_ids)
    ]
    return collate_captions(items)


def fixed_embeddings(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    audio = F.normalize(torch.randn(count, EMBED_DIM, generator=generator), dim=-1)
    return audio, F.normalize(torch.randn(count, EMBED_DIM, generator=generator), dim=-1)


def grounding_phase(
    model: torch.nn.Module, batch: CaptionBatch, context: DistributedContext
) -> dict[str, float]:
    """The trainer's grounding phase on one micro-batch: forward, backward, DDP average, global scale."""
    return accumulate_grounding_gradients(
        model, [batch], seed=0, step=0, context=context, autocast_dtype=None
    )


def named_gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


# --- the two ranks ------------------------------------------------------------------------------------------


def _rank_main(rank: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=2, timeout=timedelta(seconds=60)
    )
    results: dict[str, Any] = {}
    context = DistributedContext(rank=rank, local_rank=rank, world_size=2, device=torch.device("cpu"))

    # The trainer's own grounding phase on a DDP model, per-batch group ids from `collate_captions`.
    for name, ids in TRAINER_CASES.items():
        first, total = len(ids[0]) * rank, len(ids[0]) + len(ids[1])
        model = tiny_model()
        network = DistributedDataParallel(model, find_unused_parameters=True)
        totals = grounding_phase(network, caption_batch(ids[rank], first, total), context)
        results[f"trainer/{name}"] = {"totals": totals, "gradients": named_gradients(model)}

    # Global image ids (one image on both ranks), the DDP model's forward and the trainer's scaling.
    sizes = [len(groups) for groups in GLOBAL_GROUPS]
    first, total = sum(sizes[:rank]), sum(sizes)
    wav, features = (torch.from_numpy(x[first : first + sizes[rank]]) for x in fixed_pairs(total))
    model = tiny_model()
    network = DistributedDataParallel(model, find_unused_parameters=True)
    output = network(
        wav, None, images=features, image_groups=torch.tensor(GLOBAL_GROUPS[rank]), global_image_groups=True
    )
    sum(output.losses.values()).backward()
    for parameter in model.parameters():
        if parameter.grad is not None:
            parameter.grad.mul_(2 / total)  # `_scale_gradients`: world_size / global pairs
    results["global"] = {
        "losses": {key: value.item() for key, value in output.losses.items()},
        "gradients": named_gradients(model),
    }

    # The loss alone on fixed embeddings, both readings of the group ids.
    for name, groups in LOSS_GROUPS.items():
        first, total = len(groups[0]) * rank, len(groups[0]) + len(groups[1])
        audio, images = (
            x[first : first + len(groups[rank])].clone().requires_grad_() for x in fixed_embeddings(total)
        )
        for global_groups in (False, True):
            scale = torch.tensor(SCALE, requires_grad=True)
            result = margin_info_nce(
                audio, images, torch.tensor(groups[rank], dtype=torch.long), margin=MARGIN,
                logit_scale=scale, gather=True, global_groups=global_groups,
            )  # fmt: skip
            (result.audio_to_image + 2 * result.image_to_audio).backward()
            results[f"loss/{name}/{'global' if global_groups else 'local'}"] = {
                "audio_to_image": result.audio_to_image.item(),
                "image_to_audio": result.image_to_audio.item(),
                "correct": (result.correct_audio_to_image.item(), result.correct_image_to_audio.item()),
                "audio": audio.grad.clone(),
                "images": images.grad.clone(),
                "scale": scale.grad.clone(),
            }
            audio.grad, images.grad = None, None

    # Rows of different shapes: every rank raises, none waits.
    try:
        gather_layout(torch.zeros(2, 4 + rank))
        results["shape_error"] = None
    except GatherShapeError as error:
        results["shape_error"] = str(error)

    torch.save(results, Path(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("gather")
    processes = mp.spawn(_rank_main, args=(str(directory / "store"), str(directory)), nprocs=2, join=False)
    deadline = time.monotonic() + 300
    while not processes.join(timeout=2):
        if time.monotonic() > deadline:
            for process in processes.processes:
                process.kill()
            pytest.fail("the two gloo ranks did not finish: a collective was left waiting")
    return [torch.load(directory / f"rank{rank}.pt", weights_only=False) for rank in (0, 1)]


def assert_rounding_close(actual: torch.Tensor, expected: torch.Tensor, *, name: str = "") -> None:
    """Equal up to fp32 rounding: |Δ| ≤ RELATIVE · the expected tensor's largest entry (at least 1)."""
    largest = expected.abs().max().item() if expected.numel() else 0.0
    bound = RELATIVE * max(1.0, largest)
    torch.testing.assert_close(actual, expected, rtol=0.0, atol=bound, msg=name or None)


def assert_gradients_match(two_ranks: dict[str, torch.Tensor], one_process: dict[str, torch.Tensor]) -> None:
    assert two_ranks.keys() == one_process.keys()
    for name, gradient in one_process.items():
        assert_rounding_close(two_ranks[name], gradient, name=name)


@pytest.mark.parametrize("case", sorted(TRAINER_CASES))
def test_two_ranks_train_as_one_process_holding_every_pair(ranks: list[dict[str, Any]], case: str) -> None:
    ids = TRAINER_CASES[case]
    total = len(ids[0]) + len(ids[1])
    model = tiny_model()
    one = grounding_phase(model, caption_batch(ids[0] + ids[1], 0, total), CPU)
    two = ranks[0][f"trainer/{case}"]["totals"]
    assert two == ranks[1][f"trainer/{case}"]["totals"]  # the trainer's totals are global
    assert two["num_pairs"] == one["num_pairs"] == total
    for key in ("audio_to_image", "image_to_audio"):
        assert two[key] == pytest.approx(one[key], rel=1e-6, abs=1e-6), key
    for key in ("correct_audio_to_image", "correct_image_to_audio"):  # accuracy · pairs: floats
        assert round(two[key]) == round(one[key]), key
    gradients = named_gradients(model)
    assert_gradients_match(ranks[0][f"trainer/{case}"]["gradients"], gradients)
    assert_gradients_match(ranks[1][f"trainer/{case}"]["gradients"], gradients)


def test_global_image_ids_exclude_the_same_image_on_another_rank(ranks: list[dict[str, Any]]) -> None:
    groups = GLOBAL_GROUPS[0] + GLOBAL_GROUPS[1]
    wav, features = (torch.from_numpy(x) for x in fixed_pairs(len(groups)))
    model = tiny_model()
    output = model(wav, None, images=features, image_groups=torch.tensor(groups))
    (sum(output.losses.values()) / len(groups)).backward()
    for key, value in output.losses.items():
        summed = ranks[0]["global"]["losses"][key] + ranks[1]["global"]["losses"][key]
        assert summed == pytest.approx(value.item(), rel=1e-6), key
    assert_gradients_match(ranks[0]["global"]["gradients"], named_gradients(model))


def reference_rows(
    audio: torch.Tensor, images: torch.Tensor, groups: list[int], scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair losses of both directions written out pair by pair: pair i's candidates are its own image
    (once, with the margin) and every pair of another image."""
    logits = scale * audio @ images.T
    audio_to_image, image_to_audio = [], []
    for i in range(len(groups)):
        kept = [j for j in range(len(groups)) if j == i or groups[j] != groups[i]]
        assert kept.count(i) == 1
        for rows, scores in ((audio_to_image, logits[i]), (image_to_audio, logits[:, i])):
            candidates = torch.stack([scores[j] - (MARGIN if j == i else 0.0) for j in kept])
            rows.append(torch.logsumexp(candidates, 0) - (scores[i] - MARGIN))
    return torch.stack(audio_to_image), torch.stack(image_to_audio)


@pytest.mark.parametrize("case", sorted(LOSS_GROUPS))
@pytest.mark.parametrize("scope", ["local", "global"])
def test_negatives_never_hold_the_positive_nor_the_same_image_on_any_rank(
    ranks: list[dict[str, Any]], case: str, scope: str
) -> None:
    per_rank = LOSS_GROUPS[case]
    sizes = [len(groups) for groups in per_rank]
    # Per-rank ids: an equal id on the other rank is another image, so it stays a negative.
    offset = 0 if scope == "global" else 1000
    groups = per_rank[0] + [group + offset for group in per_rank[1]]
    audio, images = (x.clone().requires_grad_() for x in fixed_embeddings(len(groups)))
    scale = torch.tensor(SCALE, requires_grad=True)
    audio_to_image, image_to_audio = reference_rows(audio, images, groups, scale)
    (audio_to_image.sum() + 2 * image_to_audio.sum()).backward()
    rows = torch.arange(len(groups)).split(sizes)
    results = [ranks[rank][f"loss/{case}/{scope}"] for rank in (0, 1)]
    for rank, result in enumerate(results):
        assert result["audio_to_image"] == pytest.approx(audio_to_image[rows[rank]].sum().item(), abs=1e-5)
        assert result["image_to_audio"] == pytest.approx(image_to_audio[rows[rank]].sum().item(), abs=1e-5)
        # The gather's backward brings every rank's loss to this rank's rows.
        assert_rounding_close(result["audio"], audio.grad[rows[rank]])
        assert_rounding_close(result["images"], images.grad[rows[rank]])
    assert_rounding_close(results[0]["scale"] + results[1]["scale"], scale.grad)
    # ... and the gathered loss is the plain one over all pairs.
    plain = margin_info_nce(audio, images, torch.tensor(groups), margin=MARGIN, logit_scale=SCALE)
    assert sum(r["audio_to_image"] for r in results) == pytest.approx(plain.audio_to_image.item(), abs=1e-5)
    assert sum(r["correct"][0] for r in results) == plain.correct_audio_to_image.item()
    assert sum(r["correct"][1] for r in results) == plain.correct_image_to_audio.item()


def test_the_cross_rank_exclusion_changes_the_loss(ranks: list[dict[str, Any]]) -> None:
    local, shared = (ranks[0][f"loss/unequal/{scope}"]["audio_to_image"] for scope in ("local", "global"))
    assert local != pytest.approx(shared, abs=1e-4)


def test_rows_of_different_shapes_fail_on_every_rank(ranks: list[dict[str, Any]]) -> None:
    for result in ranks:
        assert result["shape_error"] is not None
        assert "rank 0: 4 values in 1 dims, rank 1: 5 values in 1 dims" in result["shape_error"]


# --- one process --------------------------------------------------------------------------------------------


def test_without_a_process_group_the_gather_is_the_identity() -> None:
    assert process_rank_and_world() == (0, 1)
    rows = torch.randn(3, 4, requires_grad=True)
    layout = gather_layout(rows)
    assert (layout.rank, layout.sizes, layout.offset, layout.total) == (0, (3,), 0, 3)
    assert all_gather_rows(rows, layout) is rows
    with pytest.raises(GatherShapeError, match="holds 2 rows but its layout says 3"):
        all_gather_rows(rows[:2], layout)


def test_a_one_rank_process_group_gathers_nothing(tmp_path: Path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        audio, images = (x.requires_grad_() for x in fixed_embeddings(4))
        groups = torch.tensor([0, 1, 0, 2])
        rows = torch.cat([audio, images], dim=1)
        assert all_gather_rows(rows, gather_layout(rows)) is rows
        gathered = margin_info_nce(audio, images, groups, margin=MARGIN, logit_scale=SCALE, gather=True)
        (gathered.audio_to_image + gathered.image_to_audio).backward()
        gathered_grads = audio.grad.clone(), images.grad.clone()
    finally:
        dist.destroy_process_group()
    audio.grad, images.grad = None, None
    plain = margin_info_nce(audio, images, groups, margin=MARGIN, logit_scale=SCALE)
    (plain.audio_to_image + plain.image_to_audio).backward()
    assert torch.equal(gathered.audio_to_image, plain.audio_to_image)
    assert torch.equal(gathered.image_to_audio, plain.image_to_audio)
    assert torch.equal(gathered_grads[0], audio.grad) and torch.equal(gathered_grads[1], images.grad)


def test_in_one_process_gathering_negatives_changes_nothing() -> None:
    wav, features = (torch.from_numpy(x) for x in fixed_pairs(5))
    groups = torch.tensor([0, 1, 0, 2, 3])
    runs = []
    for gather in (True, False):
        model = tiny_model()
        model.grounding_config = model.grounding_config.model_copy(update={"gather_negatives": gather})
        output = model(wav, None, images=features, image_groups=groups)
        sum(output.losses.values()).backward()
        runs.append((output.losses, named_gradients(model)))
    (gathered, gathered_grads), (plain, plain_grads) = runs
    assert GroundingConfig().gather_negatives
    for key in plain:
        assert torch.equal(gathered[key], plain[key]), key
    assert gathered_grads.keys() == plain_grads.keys()
    for name in plain_grads:
        assert torch.equal(gathered_grads[name], plain_grads[name]), name
