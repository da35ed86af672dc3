import pytest
import torch

from capcurriculum.models import build_processor, build_tiny_model, tiny_config, train_tokenizer
from capcurriculum.models.init import world_texts
from capcurriculum.sampling.vision_probe import (
    EMPTY,
    cell_labels,
    check_alignment,
    probe_metrics,
    probe_tower,
)
from capcurriculum.world.build import build_world
from capcurriculum.world.scene import WorldConfig


@pytest.fixture(scope="module")
def probe_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe_world")
    cfg = WorldConfig(seed=11, scenes={"pretrain": 4, "train": 2, "test": 150},
                      text_math={"pretrain": 4, "train": 2, "test": 2},
                      vis_math={"pretrain": 4, "train": 2, "test": 2}, perception_per_scene=1)
    build_world(cfg, root / "raw", root / "world", progress=False)
    processor = build_processor(train_tokenizer(world_texts(root / "raw", root / "world"), vocab_size=300),
                                image_size=96)
    return root / "raw", processor


def test_cell_labels_are_row_major_with_empty_cells():
    truth = {"grid": 3, "image_size": 96, "objects": [
        {"row": 0, "col": 2, "color": "red", "shape": "cross", "size": "small"},
        {"row": 2, "col": 1, "color": "blue", "shape": "circle", "size": "large"}]}
    cells = cell_labels(truth)
    assert len(cells) == 9
    assert cells[2] == {"cell": "2", "occupied": "yes", "color": "red", "shape": "cross", "size": "small"}
    assert cells[7]["shape"] == "circle" and cells[7]["size"] == "large"
    assert [(c["occupied"], c["color"]) for i, c in enumerate(cells) if i not in (2, 7)] == [("no", EMPTY)] * 7


def test_a_grid_that_does_not_match_the_merged_tokens_is_refused(probe_world):
    _, processor = probe_world
    model = build_tiny_model(tiny_config(processor.tokenizer), seed=0)
    check_alignment(model, {"grid": 3, "image_size": 96})
    with pytest.raises(ValueError, match="4x4 grid"):
        check_alignment(model, {"grid": 4, "image_size": 96})


def test_a_random_tower_carries_cell_colour_shape_and_size(probe_world):
    raw, processor = probe_world
    model = build_tiny_model(tiny_config(processor.tokenizer), seed=0)
    probes = probe_tower(model, processor, raw, n_images=150)
    for attribute in ("cell", "occupied", "color", "size"):
        assert probes[attribute]["acc"] > 0.9, (attribute, probes[attribute])
    assert probes["shape"]["acc"] > probes["shape"]["chance"] + 0.2, probes["shape"]
    assert probes["cell"]["n"] == 45 * 9  # 30% of 150 scenes held out, 9 tokens each
    assert 45 * 2 <= probes["color"]["n"] <= 45 * 5  # only the held-out scenes' objects (2-5 a scene)


def test_a_tower_whose_output_carries_nothing_probes_at_the_majority_rate(probe_world):
    raw, processor = probe_world
    model = build_tiny_model(tiny_config(processor.tokenizer), seed=0)
    with torch.no_grad():  # the merger's last layer emits its bias only: every token is the same
        model.model.visual.merger.linear_fc2.weight.zero_()
    probes = probe_tower(model, processor, raw, n_images=150)
    for attribute in ("cell", "occupied", "color", "shape"):
        assert probes[attribute]["acc"] == pytest.approx(probes[attribute]["chance"], abs=0.02), probes[attribute]


def test_probe_metrics_are_flat_and_a_corpus_without_ground_truth_is_reported_skipped(probe_world, tmp_path):
    raw, processor = probe_world
    model = build_tiny_model(tiny_config(processor.tokenizer), seed=0)
    metrics = probe_metrics(model, processor, raw, n_images=20)
    assert {f"vision_probe/{a}/{k}" for a in ("cell", "color") for k in ("acc", "chance", "n")} <= set(metrics)
    assert probe_metrics(model, processor, tmp_path, n_images=20) == {"vision_probe/skipped": 1.0}
