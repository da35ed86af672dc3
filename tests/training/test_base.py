import pytest

from capcurriculum.sampling.world_data import WorldData
from capcurriculum.training.base import evaluate_capabilities


def test_perception_is_also_reported_per_question_type_and_the_types_add_up(world, processor, model):
    metrics, _ = evaluate_capabilities(model, processor, WorldData(*world), n=24)
    for cap in ("perc_image", "perc_caption"):
        types = sorted({k.split("/")[1] for k in metrics if k.startswith(f"{cap}/") and k.endswith("/acc")
                        and k.count("/") == 2})
        assert len(types) >= 3, types
        n = sum(metrics[f"{cap}/{t}/n"] for t in types)
        assert n == metrics[f"{cap}/n"]
        weighted = sum(metrics[f"{cap}/{t}/acc"] * metrics[f"{cap}/{t}/n"] for t in types) / n
        assert weighted == pytest.approx(metrics[f"{cap}/acc"])
        assert all(0.0 <= metrics[f"{cap}/{t}/no_look"] <= 1.0 for t in types)
    assert not [k for k in metrics if k.startswith("text_math/") and k.count("/") == 2]
