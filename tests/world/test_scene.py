"""Scenes: config validation, sampling invariants, and pictures that agree with the ground truth."""

import random

import numpy as np
import pytest
from PIL import Image

from capcurriculum.world import WorldConfig, position_name, render_scene, sample_scene, save_jpeg
from capcurriculum.world.scene import PALETTE


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", -1),
        ("grid", 4),
        ("image_size", 100),
        ("colors", ["red", "pink"]),
        ("colors", ["red", "red"]),
        ("shapes", []),
        ("sizes", ["huge"]),
        ("min_objects", 0),
        ("max_objects", 10),
        ("max_objects", 1),
        ("scenes", {"train": 5, "test": 5}),
        ("text_math", {"pretrain": 1, "train": -1, "test": 1}),
        ("vis_math", {"pretrain": 1, "train": 1.5, "test": 1}),
        ("perception_per_scene", -1),
    ],
)
def test_bad_config_value_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"WorldConfig\.{field}\b"):
        WorldConfig(**{field: value})


def test_default_config_is_valid_and_cells_match_merged_vision_tokens():
    cfg = WorldConfig()
    assert cfg.image_size // cfg.grid == 32  # patch 16 × spatial merge 2


def test_sampling_is_seeded_and_keeps_one_object_per_cell():
    cfg = WorldConfig(min_objects=2, max_objects=5)
    first = [sample_scene(cfg, f"s{i}", rng) for rng in [random.Random(7)] for i in range(200)]
    again = [sample_scene(cfg, f"s{i}", rng) for rng in [random.Random(7)] for i in range(200)]
    other = [sample_scene(cfg, f"s{i}", rng) for rng in [random.Random(8)] for i in range(200)]
    assert first == again
    assert first != other
    for scene in first:
        cells = [(o.row, o.col) for o in scene.objects]
        assert len(set(cells)) == len(cells)
        assert 2 <= len(cells) <= 5
        assert all(0 <= r < 3 and 0 <= c < 3 for r, c in cells)
    assert {len(s.objects) for s in first} == {2, 3, 4, 5}


def test_position_names_are_distinct_on_both_grids():
    for grid, expected in [(3, 9), (2, 4)]:
        names = {position_name(r, c, grid) for r in range(grid) for c in range(grid)}
        assert len(names) == expected
    assert position_name(0, 0, 3) == "top left"
    assert position_name(1, 1, 3) == "center"
    assert position_name(2, 1, 3) == "bottom"
    assert position_name(1, 2, 3) == "right"


def _nearest(pixel, scene):
    candidates = {**PALETTE, "background": scene.background}
    return min(candidates, key=lambda name: np.abs(np.subtract(candidates[name], pixel)).sum())


@pytest.mark.parametrize("grid", [3, 2])
def test_pictures_match_ground_truth(tmp_path, grid):
    cfg = WorldConfig(grid=grid, image_size=32 * grid, max_objects=grid * grid, min_objects=1)
    rng = random.Random(3)
    cell = 32
    for i in range(60):
        scene = sample_scene(cfg, f"s{i}", rng)
        path = tmp_path / scene.image_file
        save_jpeg(render_scene(scene, cfg.image_size), path)
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.size == (cfg.image_size, cfg.image_size)
            pixels = np.asarray(image.convert("RGB")).astype(int)
        for row in range(grid):
            for col in range(grid):
                block = pixels[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell]
                centre = block[cell // 2, cell // 2]
                obj = scene.at(row, col)
                if obj is None:
                    # the whole cell is plain background, within JPEG noise
                    assert np.abs(block - np.array(scene.background)).max() <= 12, (scene.id, row, col)
                else:
                    assert _nearest(centre, scene) == obj.color, (scene.id, obj)
                    assert np.abs(centre - np.array(PALETTE[obj.color])).max() <= 25, (scene.id, obj)
                    # large objects cover more of their cell than small ones
                    covered = (np.abs(block - np.array(scene.background)).sum(axis=2) > 60).mean()
                    assert (covered > 0.28) if obj.size == "large" else (0.04 < covered < 0.22), (
                        obj,
                        covered,
                    )
