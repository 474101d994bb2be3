"""Scenes of the synthetic corpus: one to three coloured shapes, optionally in a spatial relation.

A scene is made of groups; a group is one or more identical objects (same shape, colour and size), so that
"two red circles" is one group of count two. A scene has one group, two groups in a relation ("a red circle
above a blue square": `groups[0]` stands in `relation` to `groups[1]`), or three single objects listed without
a relation. Keys are language-neutral ("circle", "red", "left_of"); the grammars put them into words.

Positions are object centres as fractions of the image side, y pointing down (the image convention), and every
sampled layout satisfies `relation_holds` for its relation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from vgssl.errors import VgsslError

Shape = Literal["circle", "square", "triangle", "star", "heart", "cross", "diamond", "hexagon"]
Colour = Literal["red", "green", "blue", "yellow", "black", "white", "purple", "orange"]
Size = Literal["small", "big"]
Relation = Literal["above", "below", "left_of", "right_of", "next_to"]

SHAPES: tuple[Shape, ...] = get_args(Shape)
COLOURS: tuple[Colour, ...] = get_args(Colour)
SIZES: tuple[Size, ...] = get_args(Size)
RELATIONS: tuple[Relation, ...] = get_args(Relation)

INVERSE_RELATION: dict[Relation, Relation] = {
    "above": "below",
    "below": "above",
    "left_of": "right_of",
    "right_of": "left_of",
    "next_to": "next_to",
}

# Object radius as a fraction of the image side. Big is almost twice small so that the size word is visible.
RADIUS: dict[Size, float] = {"small": 0.085, "big": 0.15}
MAX_OBJECTS = 3
# Grey level range of the background; far from every object colour, including black and white.
BACKGROUND_GREYS = (110, 170)
# Gap kept between an object and the edge of the cell it is placed in, so neighbouring objects never touch.
_CELL_PADDING = 0.01

Point = tuple[float, float]


class SceneError(VgsslError):
    """A scene (usually read from JSON) breaks the rules of the synthetic corpus."""


@dataclass(frozen=True, order=True)
class Mention:
    """What a caption says about one group: "two small red circles" is (2, "small", "red", "circle")."""

    count: int
    size: Size
    colour: Colour
    shape: Shape


@dataclass(frozen=True)
class SceneDescription:
    """The content every caption of a scene must carry, in a canonical form.

    Paraphrases compare equal: "A below B" is stored as "B above A", "A right of B" as "B left of A", and
    the mentions of symmetric statements ("A next to B", plain lists) are sorted.
    """

    mentions: tuple[Mention, ...]
    relation: Relation | None

    @classmethod
    def from_parts(cls, mentions: Sequence[Mention], relation: Relation | None) -> SceneDescription:
        """Canonicalise: `relation`, when given, holds from `mentions[0]` to `mentions[1]`."""
        ordered = list(mentions)
        if relation is not None and len(ordered) != 2:
            raise SceneError(f"a relation links exactly two mentions, got {len(ordered)} with {relation!r}")
        if relation in ("below", "right_of"):
            ordered.reverse()
            relation = INVERSE_RELATION[relation]
        if relation in (None, "next_to"):
            ordered.sort()
        return cls(tuple(ordered), relation)


@dataclass(frozen=True)
class ObjectGroup:
    """`count` identical objects; `positions` are their centres (fractions of the image side, y down)."""

    shape: Shape
    colour: Colour
    size: Size
    positions: tuple[Point, ...]

    @property
    def count(self) -> int:
        return len(self.positions)

    @property
    def radius(self) -> float:
        return RADIUS[self.size]

    @property
    def mention(self) -> Mention:
        return Mention(self.count, self.size, self.colour, self.shape)

    @property
    def centroid(self) -> Point:
        xs, ys = zip(*self.positions, strict=True)
        return (sum(xs) / len(xs), sum(ys) / len(ys))


@dataclass(frozen=True)
class Scene:
    groups: tuple[ObjectGroup, ...]
    relation: Relation | None  # how groups[0] stands to groups[1]; present exactly when there are two groups
    background_grey: int

    def __post_init__(self) -> None:
        _check_scene(self)

    @property
    def num_objects(self) -> int:
        return sum(group.count for group in self.groups)

    def description(self) -> SceneDescription:
        return SceneDescription.from_parts([group.mention for group in self.groups], self.relation)

    def to_json(self) -> dict[str, Any]:
        return {
            "groups": [
                {
                    "shape": group.shape,
                    "colour": group.colour,
                    "size": group.size,
                    "positions": [list(position) for position in group.positions],
                }
                for group in self.groups
            ],
            "relation": self.relation,
            "background_grey": self.background_grey,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Scene:
        try:
            groups = tuple(
                ObjectGroup(
                    shape=group["shape"],
                    colour=group["colour"],
                    size=group["size"],
                    positions=tuple((float(x), float(y)) for x, y in group["positions"]),
                )
                for group in obj["groups"]
            )
            return cls(groups, obj["relation"], int(obj["background_grey"]))
        except (KeyError, TypeError, ValueError) as error:
            raise SceneError(
                f"malformed scene JSON ({type(error).__name__}: {error}); expected "
                '{"groups": [{"shape", "colour", "size", "positions": [[x, y], ...]}], '
                f'"relation", "background_grey"}}, got {obj!r}'
            ) from None


def _check_scene(scene: Scene) -> None:
    for group in scene.groups:
        for value, allowed in ((group.shape, SHAPES), (group.colour, COLOURS), (group.size, SIZES)):
            if value not in allowed:
                raise SceneError(f"unknown scene key {value!r}; expected one of {', '.join(allowed)}")
        if group.count == 0:
            raise SceneError(f"a {group.colour} {group.shape} group has no positions")
    if not 1 <= scene.num_objects <= MAX_OBJECTS:
        raise SceneError(f"a scene holds 1 to {MAX_OBJECTS} objects, this one holds {scene.num_objects}")
    if scene.relation is not None and scene.relation not in RELATIONS:
        raise SceneError(f"unknown relation {scene.relation!r}; expected one of {', '.join(RELATIONS)}")
    if (scene.relation is not None) != (len(scene.groups) == 2):
        raise SceneError(
            f"a scene with {len(scene.groups)} group(s) must {'' if len(scene.groups) == 2 else 'not '}"
            f"have a relation, found {scene.relation!r}"
        )
    mentions = [(group.size, group.colour, group.shape) for group in scene.groups]
    if len(set(mentions)) != len(mentions):
        raise SceneError(f"two groups of a scene look identical: {mentions}; merge them into one group")
    if not 0 <= scene.background_grey <= 255:
        raise SceneError(f"background_grey must be in 0..255, got {scene.background_grey}")


def relation_holds(subject: ObjectGroup, landmark: ObjectGroup, relation: Relation) -> bool:
    """Whether the layout makes `relation` (subject → landmark) true without ambiguity.

    Every subject object must lie wholly on the stated side of every landmark object, and the centroid offset
    along the stated axis must exceed the offset across it (a shape far to the right and a little higher is
    not "above"). "Next to" means horizontally beside, with the centroids at nearly the same height.
    """
    if relation == "below":
        return relation_holds(landmark, subject, "above")
    if relation == "right_of":
        return relation_holds(landmark, subject, "left_of")
    if relation == "next_to":
        (sx, sy), (lx, ly) = subject.centroid, landmark.centroid
        beside = relation_holds(subject, landmark, "left_of") or relation_holds(landmark, subject, "left_of")
        return beside and abs(sy - ly) <= abs(sx - lx) / 2
    axis = 1 if relation == "above" else 0
    separated = all(
        s[axis] + subject.radius < t[axis] - landmark.radius
        for s in subject.positions
        for t in landmark.positions
    )
    along = landmark.centroid[axis] - subject.centroid[axis]
    across = abs(landmark.centroid[1 - axis] - subject.centroid[1 - axis])
    return separated and across < along


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a scene: one object (25 %), two or three identical objects (15 %), two groups in a relation
    (45 %, one of them possibly a pair) or three different objects (15 %)."""
    kind = rng.choice(4, p=[0.25, 0.15, 0.45, 0.15])
    background_grey = int(rng.integers(BACKGROUND_GREYS[0], BACKGROUND_GREYS[1] + 1))
    counts: tuple[int, ...]
    if kind == 0:
        counts = (1,)
    elif kind == 1:
        counts = (int(rng.integers(2, 4)),)
    elif kind == 2:
        counts = ((1, 1), (1, 1), (2, 1), (1, 2))[int(rng.integers(4))]
    else:
        counts = (1, 1, 1)
    looks = _sample_distinct_looks(rng, len(counts))
    if len(counts) == 2:
        relation: Relation = RELATIONS[int(rng.integers(len(RELATIONS)))]
        groups = _layout_related(rng, looks, counts, relation)
        return Scene(groups, relation, background_grey)
    if len(counts) == 1:
        positions = _place_in_box(rng, (0.0, 0.0, 1.0, 1.0), counts[0], RADIUS[looks[0][2]])
        return Scene((ObjectGroup(*looks[0], positions),), None, background_grey)
    # Three objects: three of the four quadrants, so they never overlap.
    quadrants = rng.permutation(4)[:3]
    groups = tuple(
        ObjectGroup(*look, _place_in_box(rng, _quadrant(int(q)), 1, RADIUS[look[2]]))
        for look, q in zip(looks, quadrants, strict=True)
    )
    return Scene(groups, None, background_grey)


def _sample_distinct_looks(rng: np.random.Generator, n: int) -> list[tuple[Shape, Colour, Size]]:
    looks: list[tuple[Shape, Colour, Size]] = []
    while len(looks) < n:
        look = (
            SHAPES[int(rng.integers(len(SHAPES)))],
            COLOURS[int(rng.integers(len(COLOURS)))],
            SIZES[int(rng.integers(len(SIZES)))],
        )
        if look not in looks:
            looks.append(look)
    return looks


def _layout_related(
    rng: np.random.Generator,
    looks: list[tuple[Shape, Colour, Size]],
    counts: tuple[int, ...],
    relation: Relation,
) -> tuple[ObjectGroup, ObjectGroup]:
    """Put the subject and the landmark in opposite halves, redrawing until the relation is unambiguous."""
    halves = {
        "above": ((0.0, 0.0, 1.0, 0.5), (0.0, 0.5, 1.0, 1.0)),
        "left_of": ((0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0)),
    }
    # "Next to" is laid out as left of or right of, with the centroids at nearly the same height.
    canonical = relation
    if relation == "next_to":
        canonical = "left_of" if rng.random() < 0.5 else "right_of"
    if canonical in ("below", "right_of"):
        landmark_box, subject_box = halves[INVERSE_RELATION[canonical]]
    else:
        subject_box, landmark_box = halves[canonical]
    # A draw is accepted with probability 0.5 to 1 (measured per relation and count), so this ends quickly.
    while True:
        subject, landmark = (
            ObjectGroup(*look, _place_in_box(rng, box, count, RADIUS[look[2]]))
            for look, box, count in zip(looks, (subject_box, landmark_box), counts, strict=True)
        )
        if relation_holds(subject, landmark, relation):
            return subject, landmark


def _quadrant(index: int) -> tuple[float, float, float, float]:
    x0, y0 = 0.5 * (index % 2), 0.5 * (index // 2)
    return (x0, y0, x0 + 0.5, y0 + 0.5)


def _place_in_box(
    rng: np.random.Generator, box: tuple[float, float, float, float], count: int, radius: float
) -> tuple[Point, ...]:
    """Cut `box` into `count` cells along its longer side and draw one centre per cell, inside the cell."""
    x0, y0, x1, y1 = box
    along_x = (x1 - x0) >= (y1 - y0)
    step = ((x1 - x0) if along_x else (y1 - y0)) / count
    positions = []
    for cell in range(count):
        if along_x:
            cx0, cx1, cy0, cy1 = x0 + cell * step, x0 + (cell + 1) * step, y0, y1
        else:
            cx0, cx1, cy0, cy1 = x0, x1, y0 + cell * step, y0 + (cell + 1) * step
        positions.append((_draw_inside(rng, cx0, cx1, radius), _draw_inside(rng, cy0, cy1, radius)))
    return tuple(positions)


def _draw_inside(rng: np.random.Generator, low: float, high: float, radius: float) -> float:
    # The smallest cell (a third of the side) is wider than a big object plus padding on both sides.
    margin = radius + _CELL_PADDING
    return float(rng.uniform(low + margin, high - margin))
