import json
from collections import Counter
from itertools import combinations

import numpy as np
import pytest

from vgssl.corpus.images import PALETTE, render_scene
from vgssl.corpus.scenes import (
    COLOURS,
    RELATIONS,
    SHAPES,
    Mention,
    ObjectGroup,
    Scene,
    SceneDescription,
    SceneError,
    relation_holds,
    sample_scene,
)


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    rng = np.random.default_rng(7)
    return [sample_scene(rng) for _ in range(2000)]


def test_sampled_scenes_cover_every_kind_and_key(scenes: list[Scene]) -> None:
    kinds = Counter(
        (len(scene.groups), scene.relation is not None, max(g.count for g in scene.groups))
        for scene in scenes
    )
    assert set(kinds) == {
        (1, False, 1),
        (1, False, 2),
        (1, False, 3),
        (2, True, 1),
        (2, True, 2),
        (3, False, 1),
    }
    groups = [group for scene in scenes for group in scene.groups]
    assert {g.shape for g in groups} == set(SHAPES) and len(SHAPES) >= 6
    assert {g.colour for g in groups} == set(COLOURS) and len(COLOURS) >= 8
    assert {g.size for g in groups} == {"small", "big"}
    assert {scene.relation for scene in scenes} == {None, *RELATIONS}
    assert all(1 <= scene.num_objects <= 3 for scene in scenes)


def test_positions_agree_with_the_relation(scenes: list[Scene]) -> None:
    for scene in scenes:
        if scene.relation is None:
            continue
        subject, landmark = scene.groups
        (sx, sy), (lx, ly) = subject.centroid, landmark.centroid
        # y points down in image coordinates.
        expected = {
            "above": sy < ly and abs(sx - lx) < ly - sy,
            "below": sy > ly and abs(sx - lx) < sy - ly,
            "left_of": sx < lx and abs(sy - ly) < lx - sx,
            "right_of": sx > lx and abs(sy - ly) < sx - lx,
            "next_to": abs(sy - ly) <= abs(sx - lx) / 2,
        }[scene.relation]
        assert expected, scene
        assert relation_holds(subject, landmark, scene.relation)


def test_objects_lie_inside_the_image_and_never_overlap(scenes: list[Scene]) -> None:
    for scene in scenes:
        objects = [(x, y, g.radius) for g in scene.groups for x, y in g.positions]
        for x, y, r in objects:
            assert r <= x <= 1 - r and r <= y <= 1 - r
        for (x1, y1, r1), (x2, y2, r2) in combinations(objects, 2):
            # Every shape fits its axis-aligned box of half-side r; boxes must be disjoint.
            assert abs(x1 - x2) >= r1 + r2 or abs(y1 - y2) >= r1 + r2


def test_sampling_is_deterministic_for_a_seed() -> None:
    first = [sample_scene(np.random.default_rng(3)) for _ in range(5)]
    again = [sample_scene(np.random.default_rng(3)) for _ in range(5)]
    assert first == again
    assert sample_scene(np.random.default_rng(4)) != first[0]


def test_json_round_trip(scenes: list[Scene]) -> None:
    for scene in scenes[:200]:
        assert Scene.from_json(json.loads(json.dumps(scene.to_json()))) == scene


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda obj: obj["groups"][0].update(shape="dog"), "unknown scene key 'dog'"),
        (lambda obj: obj.update(relation="above"), "must not have a relation"),
        (lambda obj: obj["groups"][0].pop("colour"), "malformed scene JSON"),
    ],
)
def test_bad_scene_json_is_rejected(change, message: str) -> None:
    obj = Scene((ObjectGroup("circle", "red", "small", ((0.5, 0.5),)),), None, 140).to_json()
    change(obj)
    with pytest.raises(SceneError, match=message):
        Scene.from_json(obj)


def test_description_is_canonical_across_paraphrases() -> None:
    red = Mention(1, "small", "red", "circle")
    blue = Mention(2, "big", "blue", "square")
    assert SceneDescription.from_parts([red, blue], "below") == SceneDescription.from_parts(
        [blue, red], "above"
    )
    assert SceneDescription.from_parts([red, blue], "right_of") == SceneDescription.from_parts(
        [blue, red], "left_of"
    )
    assert SceneDescription.from_parts([red, blue], "next_to") == SceneDescription.from_parts(
        [blue, red], "next_to"
    )
    assert SceneDescription.from_parts([red, blue], "above") != SceneDescription.from_parts(
        [blue, red], "above"
    )


def test_rendering_is_deterministic_rgb_of_the_requested_size(scenes: list[Scene]) -> None:
    image = render_scene(scenes[0], size=96)
    assert image.mode == "RGB" and image.size == (96, 96)
    assert image.tobytes() == render_scene(scenes[0], size=96).tobytes()


def test_different_scenes_render_differently(scenes: list[Scene]) -> None:
    distinct = {scene for scene in scenes[:150]}
    renders = {render_scene(scene, size=64).tobytes() for scene in distinct}
    assert len(renders) == len(distinct)


def test_objects_are_drawn_in_their_colour_at_their_position(scenes: list[Scene]) -> None:
    size = 128
    for scene in scenes[:200]:
        pixels = np.asarray(render_scene(scene, size=size))
        for group in scene.groups:
            colour = PALETTE[group.colour]
            for x, y in group.positions:
                assert tuple(pixels[int(y * size), int(x * size)]) == colour, (scene, group)
            painted = np.all(pixels == colour, axis=-1).sum()
            # Every shape covers over a quarter of its bounding box (the star, the thinnest, about 31 %).
            assert painted >= 0.25 * group.count * (2 * group.radius * size) ** 2
        background = pixels[0, 0]
        assert tuple(background) not in PALETTE.values()


def test_big_objects_cover_more_pixels_than_small_ones() -> None:
    for shape in SHAPES:
        areas = {}
        for size in ("small", "big"):
            scene = Scene((ObjectGroup(shape, "red", size, ((0.5, 0.5),)),), None, 140)
            areas[size] = np.all(np.asarray(render_scene(scene)) == PALETTE["red"], axis=-1).sum()
        assert areas["big"] > 2.5 * areas["small"], shape
