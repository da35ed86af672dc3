"""Drawing a scene: each object centred in its grid cell, flat fill, no anti-aliasing or outline.

Rendering is a pure function of the scene (its seeded tint included), so a seed fixes every byte.
"""

from __future__ import annotations

import os

from PIL import Image, ImageDraw

from .scene import PALETTE, SIZE_FRACTION, Scene, WorldObject

JPEG_QUALITY = 95  # DOCCI ships JPEGs; 95 with 4:4:4 chroma keeps the fills within a few levels


def render_scene(scene: Scene, image_size: int) -> Image.Image:
    image = Image.new("RGB", (image_size, image_size), scene.background)
    draw = ImageDraw.Draw(image)
    cell = image_size // scene.grid
    for obj in scene.objects:
        _draw_object(draw, obj, cell)
    return image


def save_jpeg(image: Image.Image, path: str | os.PathLike) -> None:
    # Chroma subsampling would smear a 14-px shape's colour into the background; keep full chroma.
    image.save(path, format="JPEG", quality=JPEG_QUALITY, subsampling=0)


def _draw_object(draw: ImageDraw.ImageDraw, obj: WorldObject, cell: int) -> None:
    side = round(cell * SIZE_FRACTION[obj.size])
    x0 = obj.col * cell + (cell - side) // 2
    y0 = obj.row * cell + (cell - side) // 2
    x1, y1 = x0 + side - 1, y0 + side - 1
    fill = PALETTE[obj.color]
    if obj.shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    elif obj.shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) / 2, y0)], fill=fill)
    elif obj.shape == "cross":
        arm = max(1, round(side / 3))
        offset = (side - arm) // 2
        draw.rectangle((x0, y0 + offset, x1, y0 + offset + arm - 1), fill=fill)
        draw.rectangle((x0 + offset, y0, x0 + offset + arm - 1, y1), fill=fill)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")
