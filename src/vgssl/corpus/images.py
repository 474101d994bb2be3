"""Render a scene as an RGB image with Pillow.

Objects are drawn without anti-aliasing, so every object's palette colour appears exactly in the image, on a
grey background with a gentle vertical gradient (the scene's `background_grey` ± `_GRADIENT`). Rendering is a
pure function of the scene and the image size.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from vgssl.corpus.scenes import Colour, Scene, Shape

PALETTE: dict[Colour, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (245, 215, 30),
    "black": (15, 15, 15),
    "white": (250, 250, 250),
    "purple": (140, 50, 170),
    "orange": (245, 130, 20),
}
_GRADIENT = 12  # grey levels between the middle and either edge of the background


def render_scene(scene: Scene, *, size: int = 128) -> Image.Image:
    """Draw `scene` on a `size` × `size` RGB image."""
    rows = scene.background_grey + np.linspace(-_GRADIENT, _GRADIENT, size)
    background = np.repeat(rows.round().astype(np.uint8)[:, None], size, axis=1)
    image = Image.fromarray(np.stack([background] * 3, axis=-1), mode="RGB")
    draw = ImageDraw.Draw(image)
    for group in scene.groups:
        radius = group.radius * size
        for x, y in group.positions:
            _draw_shape(draw, group.shape, x * size, y * size, radius, PALETTE[group.colour])
    return image


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: Shape, x: float, y: float, r: float, fill: tuple[int, int, int]
) -> None:
    draw.polygon([(x + r * u, y + r * v) for u, v in _OUTLINES[shape]], fill=fill)


def _ring(radii: list[float], *, shift: float = 0.0) -> tuple[tuple[float, float], ...]:
    """Unit-radius vertices at the given radii, evenly spaced in angle, the first pointing straight up."""
    step = 2 * math.pi / len(radii)
    return tuple(
        (radius * math.sin(i * step), shift - radius * math.cos(i * step)) for i, radius in enumerate(radii)
    )


def _heart() -> tuple[tuple[float, float], ...]:
    # The classic parametric heart spans 34 units across and about 30 from the tip to the lobes.
    points = []
    for t in np.linspace(0, 2 * math.pi, 72, endpoint=False):
        u = 16 * math.sin(t) ** 3
        v = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        points.append((u / 17, -(v + 2.5) / 17))
    return tuple(points)


def _cross() -> tuple[tuple[float, float], ...]:
    arm, reach = 0.32, 0.9
    quarter = [(arm, reach), (arm, arm), (reach, arm), (reach, -arm), (arm, -arm), (arm, -reach)]
    return tuple(quarter + [(-u, -v) for u, v in quarter])


# Outlines of each shape centred on the origin and fitting the unit circle (y pointing down). A square of the
# full radius looks much bigger than the circle, so it is shrunk to a similar area.
_OUTLINES: dict[Shape, tuple[tuple[float, float], ...]] = {
    "circle": _ring([1.0] * 64),
    "square": ((-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)),
    "triangle": _ring([1.0] * 3, shift=0.15),
    "star": _ring([1.0, 0.42] * 5),
    "heart": _heart(),
    "cross": _cross(),
    "diamond": ((0.0, -1.0), (0.65, 0.0), (0.0, 1.0), (-0.65, 0.0)),
    "hexagon": _ring([1.0] * 6),
}
