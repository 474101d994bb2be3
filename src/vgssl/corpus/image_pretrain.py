"""A small CNN trained on labelled scenes: the built-in corpus's stand-in for a pretrained object detector.

FaST-VGS+ grounds speech in a frozen, pretrained image representation (Faster R-CNN region features). The
synthetic corpus has no such encoder, so `SceneEncoder` is trained here, with supervised targets read off
the scene labels, on scenes of its own (see `vgssl.corpus.image_features` for where they come from).

Targets, image level: what a caption names. A scene's groups go into up to `SLOTS` slots in a *spatial* order
that the image shows — two related groups top-to-bottom ("above") or left-to-right ("left of", "next to"),
otherwise the reading order of their quadrants — and each slot has four classification heads (shape, colour,
size, count, each with a "none" class for an empty slot). A relation head says how slot 0 stands to slot 1
(none, above, left_of, next_to) and an auxiliary head the number of groups. Together the heads determine the
scene's canonical `SceneDescription` (`decode_description`), so "the description is predicted exactly" is an
accuracy with a meaning, and an embedding from which linear heads read the description is what caption
retrieval needs.

Targets, region level (a detector's anchors): each cell of the `grid` × `grid` map predicts whether an object
is centred in it and that object's shape, colour and size. Without them the shapes are learnt very slowly.

Network: four blocks of [3 × 3 convolution, batch norm (not on the first, widest map, where it costs the
most), ReLU, 2 × 2 max pooling]: strided convolutions instead of pooling lose the small shapes' outlines
(measured: shape accuracy stayed at chance). At 48 px this leaves a 3 × 3 map whose 9 cells are the *region*
features; a linear layer + ReLU on the flattened map is the *pooled* embedding that the heads read. Batch norm
is harmless here: the encoder is trained once, in one process, then frozen.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgssl.corpus.scenes import (
    COLOURS,
    SHAPES,
    SIZES,
    Mention,
    ObjectGroup,
    Relation,
    Scene,
    SceneDescription,
    SceneError,
)
from vgssl.data.images import IMAGENET_MEAN, IMAGENET_STD

SLOTS = 3
MAX_COUNT = 3
RELATION_CLASSES = ("none", "above", "left_of", "next_to")
# Class 0 of every slot head is "no object in this slot".
SLOT_HEADS: tuple[tuple[str, int], ...] = (
    ("shape", 1 + len(SHAPES)),
    ("colour", 1 + len(COLOURS)),
    ("size", 1 + len(SIZES)),
    ("count", 1 + MAX_COUNT),
)
HEADS: tuple[tuple[str, int], ...] = (
    *((f"slot{slot}_{name}", classes) for slot in range(SLOTS) for name, classes in SLOT_HEADS),
    ("relation", len(RELATION_CLASSES)),
    ("groups", SLOTS),  # auxiliary: 1, 2 or 3 groups (class = number - 1), which tells a list from a relation
)
HEAD_INDEX = {name: index for index, (name, _) in enumerate(HEADS)}


def _spatial_slots(scene: Scene) -> tuple[list[ObjectGroup], str]:
    """The scene's groups in spatial order, and the relation of slot 0 to slot 1."""
    groups = list(scene.groups)
    if scene.relation is None:
        # One group, or three single objects in three different quadrants: reading order of the quadrants.
        def quadrant(group: ObjectGroup) -> int:
            x, y = group.centroid
            return 2 * int(y >= 0.5) + int(x >= 0.5)

        return sorted(groups, key=quadrant), "none"
    if scene.relation in ("above", "below"):
        return sorted(groups, key=lambda group: group.centroid[1]), "above"
    return sorted(groups, key=lambda group: group.centroid[0]), (
        "next_to" if scene.relation == "next_to" else "left_of"
    )


def scene_targets(scene: Scene) -> np.ndarray:
    """The class index of every head in `HEADS` for `scene`, as an int64 vector."""
    slots, relation = _spatial_slots(scene)
    targets: list[int] = []
    for slot in range(SLOTS):
        if slot < len(slots):
            group = slots[slot]
            targets += [
                1 + SHAPES.index(group.shape),
                1 + COLOURS.index(group.colour),
                1 + SIZES.index(group.size),
                group.count,
            ]
        else:
            targets += [0] * len(SLOT_HEADS)
    targets += [RELATION_CLASSES.index(relation), len(slots) - 1]
    return np.asarray(targets, dtype=np.int64)


CELL_HEADS: tuple[tuple[str, int], ...] = (
    ("shape", len(SHAPES)),
    ("colour", len(COLOURS)),
    ("size", len(SIZES)),
)
CELL_LABELS = 1 + sum(classes for _, classes in CELL_HEADS)  # objectness, then each head's classes


def cell_targets(scene: Scene, grid: int = 3) -> np.ndarray:
    """(grid * grid, 3) int64: 1 + the shape, colour and size index of the object centred in each cell of a
    `grid` × `grid` partition of the image (row-major), 0 for a cell without one; a detector's anchors. Of
    two objects centred in one cell (rare) the later group's is kept."""
    out = np.zeros((grid * grid, len(CELL_HEADS)), dtype=np.int64)
    for group in scene.groups:
        labels = (1 + SHAPES.index(group.shape), 1 + COLOURS.index(group.colour), 1 + SIZES.index(group.size))
        for x, y in group.positions:
            out[min(int(y * grid), grid - 1) * grid + min(int(x * grid), grid - 1)] = labels
    return out


def cell_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Objectness BCE over all cells plus, over the cells holding an object, the mean CE of each cell head."""
    occupied = targets[..., 0] > 0
    parts = logits.split([1, *(classes for _, classes in CELL_HEADS)], dim=-1)
    loss = F.binary_cross_entropy_with_logits(parts[0].squeeze(-1), occupied.float())
    if occupied.any():
        for head, part in enumerate(parts[1:]):
            loss = loss + F.cross_entropy(part[occupied], targets[..., head][occupied] - 1)
    return loss


def decode_description(targets: Sequence[int]) -> SceneDescription | None:
    """The description that a vector of head classes states, or None if the heads contradict each other."""
    mentions = []
    for slot in range(SLOTS):
        shape, colour, size, count = (int(v) for v in targets[slot * 4 : slot * 4 + 4])
        if (shape, colour, size, count) == (0, 0, 0, 0):
            continue
        if 0 in (shape, colour, size, count):
            return None
        mentions.append(Mention(count, SIZES[size - 1], COLOURS[colour - 1], SHAPES[shape - 1]))
    relation = RELATION_CLASSES[int(targets[HEAD_INDEX["relation"]])]
    try:
        return SceneDescription.from_parts(mentions, None if relation == "none" else cast(Relation, relation))
    except SceneError:
        return None


class SceneEncoder(nn.Module):
    """(B, 3, S, S) standardised pixels -> regions (B, R, C), pooled (B, D) and the heads' logits."""

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 64, 128),
        embed_dim: int = 384,
        *,
        embed_layers: int = 1,
        grid: int = 3,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        in_channels = 3
        for index, width in enumerate(channels):
            blocks.append(nn.Conv2d(in_channels, width, kernel_size=3, padding=1, bias=index == 0))
            if index > 0:
                blocks.append(nn.BatchNorm2d(width))
            blocks += [nn.ReLU(), nn.MaxPool2d(2)]
            in_channels = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(grid)  # a no-op at 48 px, where four blocks give 3 × 3 already
        layers: list[nn.Module] = [nn.Linear(in_channels * grid * grid, embed_dim), nn.ReLU()]
        for _ in range(1, embed_layers):
            layers += [nn.Linear(embed_dim, embed_dim), nn.ReLU()]
        self.embed = nn.Sequential(*layers)
        self.heads = nn.Linear(embed_dim, sum(classes for _, classes in HEADS))
        self.cell_head = nn.Linear(in_channels, CELL_LABELS)  # per region: the object centred in that cell

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Regions (B, R, C), the pooled embedding (B, D) and the slot heads' logits."""
        grid = self.pool(self.features(images.contiguous(memory_format=torch.channels_last)))
        pooled = self.embed(grid.flatten(1))
        return grid.flatten(2).transpose(1, 2), pooled, self.heads(pooled)


def head_losses(logits: Tensor, targets: Tensor) -> Tensor:
    """The sum over heads of each head's mean cross-entropy."""
    losses = [
        F.cross_entropy(part, targets[:, head])
        for head, part in enumerate(logits.split([classes for _, classes in HEADS], dim=1))
    ]
    return torch.stack(losses).sum()


def predict(logits: Tensor) -> Tensor:
    """The most likely class of every head: (B, len(HEADS)) int64."""
    return torch.stack([part.argmax(1) for part in logits.split([c for _, c in HEADS], dim=1)], dim=1)


def standardise(images: np.ndarray) -> Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 with the ImageNet statistics, as `PixelImages` does."""
    pixels = torch.from_numpy(images).float().div_(255.0)
    mean, std = torch.from_numpy(IMAGENET_MEAN), torch.from_numpy(IMAGENET_STD)
    return ((pixels - mean) / std).permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class PretrainSettings:
    """The encoder's size and its optimisation. One pass over many scenes beats several over fewer (the
    scenes are free to draw, and measured at equal compute the held-out accuracy is higher)."""

    channels: tuple[int, ...] = (16, 32, 64, 128)
    embed_dim: int = 384
    embed_layers: int = 1
    grid: int = 3  # side of the region grid (the map is average-pooled to it): 3 at 48 px
    epochs: int = 1
    cell_weight: float = 2.0  # weight of the per-region loss (0: image-level heads only)
    batch_size: int = 64
    learning_rate: float = 5e-3
    weight_decay: float = 1e-4


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run torch on `count` threads inside the block, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class Accuracy:
    """Held-out accuracy of the heads and of the whole description, with the majority-class baselines."""

    description: float
    heads: dict[str, float]
    chance_description: float
    chance_heads: dict[str, float]

    @property
    def mean_head(self) -> float:
        return sum(self.heads.values()) / len(self.heads)

    @property
    def chance_mean_head(self) -> float:
        return sum(self.chance_heads.values()) / len(self.chance_heads)

    def to_json(self) -> dict[str, object]:
        return {
            "description_exact": round(self.description, 4),
            "mean_head": round(self.mean_head, 4),
            "heads": {name: round(value, 4) for name, value in self.heads.items()},
            "chance": {
                "rule": "predict the training images' most frequent class of each head, and their most "
                "frequent description",
                "description_exact": round(self.chance_description, 4),
                "mean_head": round(self.chance_mean_head, 4),
            },
        }


Renderer = Callable[[Sequence[Scene]], np.ndarray]  # scenes -> (N, S, S, 3) uint8 images


def train_encoder(
    scenes: Sequence[Scene],
    render: Renderer,
    *,
    seed: int,
    settings: PretrainSettings = PretrainSettings(),
    log: Callable[[str], None] = lambda _: None,
) -> tuple[SceneEncoder, list[float]]:
    """Train a `SceneEncoder` on `scenes`, drawn by `render` batch by batch (rendering is cheaper than keeping
    the pixels of tens of thousands of images); deterministic in `seed`, and the global torch random state is
    left as it was. Returns the model (in eval mode) and the mean training loss of each epoch.
    """
    targets = torch.from_numpy(np.stack([scene_targets(scene) for scene in scenes]))
    cells = torch.from_numpy(np.stack([cell_targets(scene, settings.grid) for scene in scenes]))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SceneEncoder(
            settings.channels, settings.embed_dim, embed_layers=settings.embed_layers, grid=settings.grid
        )
        model = model.to(memory_format=torch.channels_last)
        generator = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.AdamW(
            model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        steps_per_epoch = math.ceil(len(scenes) / settings.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, settings.learning_rate, total_steps=settings.epochs * steps_per_epoch, pct_start=0.15
        )
        losses = []
        model.train()
        for epoch in range(settings.epochs):
            order = torch.randperm(len(scenes), generator=generator)
            total = 0.0
            for start in range(0, len(scenes), settings.batch_size):
                batch = order[start : start + settings.batch_size]
                regions, _, logits = model(standardise(render([scenes[i] for i in batch.tolist()])))
                loss = head_losses(logits, targets[batch])
                if settings.cell_weight > 0:
                    loss = loss + settings.cell_weight * cell_loss(model.cell_head(regions), cells[batch])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss.detach()) * len(batch)
            losses.append(total / len(scenes))
            log(f"image encoder epoch {epoch + 1}/{settings.epochs}: loss {losses[-1]:.3f}")
    model.eval()
    return model, losses


@torch.no_grad()
def encode(model: SceneEncoder, images: np.ndarray, *, batch_size: int = 256) -> tuple[np.ndarray, ...]:
    """Regions (N, R, C), pooled (N, D) and predicted head classes (N, len(HEADS)) of uint8 images."""
    model.eval()
    regions, pooled, predicted = [], [], []
    for start in range(0, len(images), batch_size):
        grid, vector, logits = model(standardise(images[start : start + batch_size]))
        regions.append(grid.numpy())
        pooled.append(vector.numpy())
        predicted.append(predict(logits).numpy())
    return (
        np.concatenate(regions).astype(np.float32),
        np.concatenate(pooled).astype(np.float32),
        np.concatenate(predicted),
    )


def accuracy(predicted: np.ndarray, targets: np.ndarray, train_targets: np.ndarray) -> Accuracy:
    """Held-out accuracy of `predicted` against `targets`; the baselines predict the training majority."""
    descriptions = [decode_description(row) for row in targets]
    guessed = [decode_description(row) for row in predicted]
    train_descriptions = Counter(decode_description(row) for row in train_targets)
    majority_description = train_descriptions.most_common(1)[0][0]
    heads, chance = {}, {}
    for head, (name, _) in enumerate(HEADS):
        heads[name] = float(np.mean(predicted[:, head] == targets[:, head]))
        majority = Counter(train_targets[:, head].tolist()).most_common(1)[0][0]
        chance[name] = float(np.mean(targets[:, head] == majority))
    return Accuracy(
        description=float(np.mean([g == d for g, d in zip(guessed, descriptions, strict=True)])),
        heads=heads,
        chance_description=float(np.mean([d == majority_description for d in descriptions])),
        chance_heads=chance,
    )
