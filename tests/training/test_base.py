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


def test_a_lineage_filter_is_the_policys_saved_step_measured_like_a_base(processor, model, tmp_path):
    """base@policy keeps the steps the lineage filters name under checkpoints/; base@filter_small copies its step
    out byte for byte and measures it as any base; a step base@policy did not keep fails naming the key."""
    from omegaconf import OmegaConf

    from capcurriculum.models.tiny import save_pretrained_dir
    from capcurriculum.training.base import build_base, checkpoint_dir

    init = tmp_path / "init" / "policy"
    save_pretrained_dir(model, processor, init)
    cfg = OmegaConf.create({
        "seed": 0, "raw": {"on_error": "raise"}, "base": {"eval_n": 4, "pretrain": {"policy": {
            "steps": 3, "batch_size": 4, "lr": 3e-3, "warmup_steps": 1, "threads": 1,
            "mixture": {"perc_image": 1.0, "text_math": 1.0}}}},
        "models": {"policy": {"kind": "tiny"}, "filter_small": {"kind": "lineage", "step": 2},
                   "filter_large": {"kind": "lineage", "step": 3}}})
    from capcurriculum.world.build import build_world
    from capcurriculum.world.scene import WorldConfig

    raw, world_dir = tmp_path / "raw", tmp_path / "world"   # the vision probe needs >= 10 test scenes
    build_world(WorldConfig(seed=3, scenes={"pretrain": 24, "train": 4, "test": 12},
                            text_math={"pretrain": 24, "train": 4, "test": 8},
                            vis_math={"pretrain": 24, "train": 4, "test": 8}, perception_per_scene=3),
                raw, world_dir, progress=False)
    policy = tmp_path / "base" / "policy"
    build_base(cfg, "policy", init_dir=init, raw_dir=raw, world_dir=world_dir, out_dir=policy, checkpoints=[2])
    assert sorted(p.name for p in (policy / "checkpoints").iterdir()) == ["step_2"]
    assert (policy / "config.json").is_file() and (policy / "eval" / "heldout.jsonl").is_file()

    small = tmp_path / "base" / "filter_small"
    metrics = build_base(cfg, "filter_small", init_dir=policy, raw_dir=raw, world_dir=world_dir, out_dir=small)
    saved = checkpoint_dir(policy, 2) / "model.safetensors"
    assert (small / "model.safetensors").read_bytes() == saved.read_bytes()
    assert (policy / "model.safetensors").read_bytes() != saved.read_bytes()
    assert metrics["lineage/step"] == 2 and metrics["pretrain/seconds"] == 0.0
    assert 0.0 <= metrics["perc_image/acc"] <= 1.0 and metrics["perc_image/n"] > 0

    with pytest.raises(FileNotFoundError, match=r"models.filter_large.step: 3: .* not among the policy's saved "
                                                r"pre-training steps \(step_2\)"):
        build_base(cfg, "filter_large", init_dir=policy, raw_dir=raw, world_dir=world_dir,
                   out_dir=tmp_path / "base" / "filter_large")
