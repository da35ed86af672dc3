"""The two perception nodes on a tiny world with untrained tiny models, bad inputs included."""

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from capcurriculum.config import ConfigError, compose
from capcurriculum.io import read_jsonl
from capcurriculum.models import build_processor, build_tiny_model, save_pretrained_dir, tiny_config, train_tokenizer
from capcurriculum.models.init import world_texts
from capcurriculum.perception.pipeline import generate_candidates, run_filter
from capcurriculum.world.build import build_world
from capcurriculum.world.scene import WorldConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("perc")
    raw, world, models = root / "raw", root / "world", root / "models"
    build_world(WorldConfig(seed=5, scenes={"pretrain": 0, "train": 6, "test": 0},
                            text_math={"pretrain": 0, "train": 0, "test": 0},
                            vis_math={"pretrain": 0, "train": 0, "test": 0}, perception_per_scene=2),
                raw, world, progress=False)
    processor = build_processor(train_tokenizer(world_texts(raw, world), vocab_size=400))
    for i, role in enumerate(("policy", "filter_small", "filter_large")):
        save_pretrained_dir(build_tiny_model(tiny_config(processor.tokenizer), seed=i), processor, models / role)
    cfg = compose(["profile=smoke", "perception.generation.llm.max_captions=2",
                   "perception.generation.llm.sampling.max_new_tokens=8",
                   "perception.filter.sampling.max_new_tokens=6",
                   "perception.generation.template_per_scene=null"], config_dir=ROOT / "conf")
    cfg.perception.generation.llm.model = str(models / "policy")
    return cfg, raw, world, models, root


def test_candidates_count_garbage_and_keep_it(setup):
    cfg, raw, world, models, root = setup
    m = generate_candidates(cfg, raw, world, root / "qa")
    assert m["llm_captions"] == 2
    # An untrained model writes garbage: both outputs are unparseable, kept for inspection.
    assert m["unparseable_outputs"] == 2 and len(read_jsonl(root / "qa/unparseable.jsonl")) == 2
    assert m["candidates"] == m["candidates/template"] == 12


def test_filter_survives_an_undecodable_image_and_counts_it(setup):
    cfg, raw, world, models, root = setup
    if not (root / "qa/candidates.jsonl").exists():
        generate_candidates(cfg, raw, world, root / "qa")
    candidates = read_jsonl(root / "qa/candidates.jsonl")
    bad_image = raw / "images" / candidates[0]["image"]
    bad_image.write_bytes(b"not a jpeg")
    cfg = cfg.copy()
    cfg.perception.filter.audit_max_dropped = 5
    m = run_filter(cfg, root / "qa/candidates.jsonl", raw, models, root / "filter", root / "sets")
    assert m["audit/n_dropped"] == min(5, len(candidates) - m["kept_intersection"])   # a sample of them
    n_bad = sum(c["image"] == candidates[0]["image"] for c in candidates)
    assert m["filter/filter_small/failed"] == n_bad and m["filter/filter_small/n"] == len(candidates)
    # the cascade: the second model judges only what the first kept (a failed item is not kept)
    assert cfg.perception.filter.cascade and m["filter/filter_large/n"] == m["filter/filter_small/kept"]
    verdicts = read_jsonl(root / "filter/filter_verdicts.jsonl")
    failed = [v for v in verdicts if v["failed"]]
    assert failed and all(not v["keep"] and bad_image.name in v["image_error"] for v in failed)
    kept = sum(len(read_jsonl(root / f"sets/perc_{s}.jsonl")) for s in ("train", "val", "test"))
    assert kept == m["kept_intersection"]
    assert "audit/policy_image_acc_kept" in m


def test_template_per_scene_asks_fresh_questions_of_each_scenes_truth(setup):
    cfg, raw, world, models, root = setup
    cfg = cfg.copy()
    cfg.perception.generation.llm.enabled = False
    cfg.perception.generation.template_per_scene = 5
    m = generate_candidates(cfg, raw, world, root / "qa5")
    rows = read_jsonl(root / "qa5/candidates.jsonl")
    assert m["candidates"] == m["candidates/template"] == len(rows) == 6 * 5   # 6 train scenes, 5 each
    per_scene = {}
    for r in rows:
        per_scene.setdefault(r["meta"]["scene_id"], set()).add(r["question"])
    assert len(per_scene) == 6 and all(len(q) == 5 for q in per_scene.values())
    generate_candidates(cfg, raw, world, root / "qa5b")
    assert read_jsonl(root / "qa5b/candidates.jsonl") == rows                 # seeded
    cfg.perception.generation.template_per_scene = 0
    with pytest.raises(ConfigError, match=r"^perception\.generation\.template_per_scene: expected an integer >= 1"):
        generate_candidates(cfg, raw, world, root / "qa0")


@pytest.mark.parametrize("value", [-1, "5", 2.5])
def test_filter_rejects_a_bad_audit_sample_size_before_any_model_runs(tmp_path, value):
    cfg = compose(["profile=smoke"], config_dir=ROOT / "conf")
    cfg.perception.filter.audit_max_dropped = value
    # the paths need not exist: the key is checked first
    with pytest.raises(ConfigError, match=r"^perception\.filter\.audit_max_dropped: expected an integer >= 0"):
        run_filter(cfg, tmp_path / "missing.jsonl", tmp_path, tmp_path, tmp_path / "f", tmp_path / "s")


def test_qa_generation_fails_naming_the_model_when_every_llm_request_fails(setup):
    # An unreachable server: every request errs. Before, the node wrote an empty candidate set and exited 0,
    # and the empty D_perc surfaced only in train_1.
    cfg, raw, world, models, root = setup
    cfg = cfg.copy()
    cfg.perception.generation.template = False
    cfg.perception.generation.llm.backend = {"backend": "openai", "base_url": "http://127.0.0.1:9/v1",
                                             "api_key_env": None, "max_retries": 0, "timeout_s": 5}
    with pytest.raises(RuntimeError, match=r"all 2 requests to .*policy failed \(perception\.generation\.llm\)"):
        generate_candidates(cfg, raw, world, root / "qa_down")
    assert not (root / "qa_down" / "candidates.jsonl").exists()


def test_qa_generation_with_no_candidate_at_all_fails_before_the_filter(setup):
    cfg, raw, world, models, root = setup
    cfg = cfg.copy()
    cfg.perception.generation.template = False   # the untrained policy's garbage parses to nothing
    with pytest.raises(RuntimeError, match=r"no candidate question from 6 captions \(2 asked of the LLM, 2 outputs "
                                           r"unparseable"):
        generate_candidates(cfg, raw, world, root / "qa_none")


def test_template_file_gives_mcq_candidates_without_reading_the_world(setup, tmp_path):
    # The paper-shaped dry run (capcurriculum.dryrun): the paper's 4-option format, template questions from a
    # file, and a world directory that holds only the raw node's manifest (as on the paper profile).
    from capcurriculum.dryrun import mcq_templates

    cfg, raw, world, models, root = setup
    rows = mcq_templates(read_jsonl(world / "perception_train.jsonl"))
    template_file = tmp_path / "perception_train.jsonl"
    template_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    empty_world = tmp_path / "world"
    empty_world.mkdir()
    (empty_world / "manifest.json").write_text('{"built": false}')
    cfg = cfg.copy()
    OmegaConf.set_struct(cfg, False)   # as stages read params.yaml; the smoke profile has no template_file
    cfg.perception.generation.update(template=False, format="mcq", template_file=str(template_file))
    m = generate_candidates(cfg, raw, empty_world, tmp_path / "qa")
    candidates = read_jsonl(tmp_path / "qa/candidates.jsonl")
    assert rows and m["candidates/template"] == len(rows) == len(candidates)
    for cand, row in zip(candidates, rows, strict=True):
        assert cand["answer_type"] == "choice" and cand["choices"] == row["choices"] and cand["answer"] == row["answer"]
        assert cand["meta"]["scene_id"] == row["meta"]["scene_id"]
