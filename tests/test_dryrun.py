"""The paper-shaped dry run: the prepared directory (each source in its real layout, stand-in models), the
`paper_dry` profile (the paper profile with only the unreachable pieces swapped), and its data nodes under
`dvc repro` on the paper's code path (slow)."""

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from capcurriculum.config import compose, to_flat_dict, validate
from capcurriculum.data.docci import load_docci
from capcurriculum.data.sets import build_set
from capcurriculum.dryrun import MODEL_ROLES, DryRunSpec, mcq_templates, prepare
from capcurriculum.io import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
SMALL = DryRunSpec(train_scenes=10, test_scenes=4, text_math=12, vis_math=8)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("dry") / "dryrun"
    return out, prepare(out, SMALL)


def test_prepare_writes_docci_in_its_release_layout(prepared):
    out, manifest = prepared
    corpus = load_docci(out / "docci")
    assert len(corpus.records) == manifest["docci"]["records"] == 14
    assert corpus.split_counts() == {"train": 10, "test": 4}
    assert all((out / "docci/images" / r.image_file).is_file() for r in corpus.records)
    assert sorted(p.name for p in (out / "docci").iterdir()) == ["docci_descriptions.jsonlines", "images"]


def test_the_orz_and_vlaa_files_load_through_the_papers_adapters(prepared, tmp_path):
    out, manifest = prepared
    rows = json.loads((out / "orz_math/orz_math_13k_collection_hard.json").read_text())
    assert [t["from"] for t in rows[0]] == ["human", "assistant"] and "value" in rows[0][1]["ground_truth"]
    text = build_set("text", [{"adapter": "orz_math", "path": str(out / manifest["orz_math"]["file"])}],
                     tmp_path / "text", seed=0, val_fraction=0.0, capability="text")
    vis = build_set("vis", [{"adapter": "vlaa_thinking", "path": str(out / manifest["vlaa_thinking"]["file"]),
                             "subsets": ["clevr_math", "geoqa170k", "math_puma", "arxivqa"]}],
                    tmp_path / "vis", seed=0, val_fraction=0.0, capability="vis")
    stats = {"text": text, "vis": vis}
    assert len(read_jsonl(tmp_path / "text/text_train.jsonl")) == manifest["orz_math"]["rows"] == 12, stats
    items = read_jsonl(tmp_path / "vis/vis_train.jsonl")
    assert len(items) == manifest["vlaa_thinking"]["rows"] == 8, stats
    assert {it["source"] for it in items} == {"clevr_math"}
    assert all((tmp_path / "vis/vis_images" / it["image"]).is_file() for it in items)


def test_template_questions_are_the_papers_four_option_choice(prepared):
    out, manifest = prepared
    rows = read_jsonl(out / manifest["perception_templates"]["file"])
    scenes = {r.example_id for r in load_docci(out / "docci", splits=["train"]).records}
    assert rows and {r["meta"]["scene_id"] for r in rows} <= scenes
    assert all(len(set(r["choices"])) == 4 and r["answer"] in "ABCD" and r["answer_type"] == "choice" for r in rows)
    assert {r["meta"]["qtype"] for r in rows} == {"color", "shape", "size", "count"}


def test_mcq_templates_keep_the_answer_and_leave_yes_no_out():
    world = [
        {"id": "s0_q0", "question": "What colour is the shape at the top?", "answer": "red", "answer_type": "text",
         "choices": None, "meta": {"qtype": "color", "scene_id": "s0"}},
        {"id": "s0_q1", "question": "How many circles are there?", "answer": "3", "answer_type": "number",
         "choices": None, "meta": {"qtype": "count", "scene_id": "s0"}},
        {"id": "s0_q2", "question": "Is there a red circle?", "answer": "yes", "answer_type": "text",
         "choices": None, "meta": {"qtype": "presence", "scene_id": "s0"}},
    ]
    out = mcq_templates(world, seed=0)
    assert [r["id"] for r in out] == ["s0_q0", "s0_q1"]
    for row, ex in zip(out, world, strict=False):
        assert row["choices"]["ABCD".index(row["answer"])] == ex["answer"]
    assert mcq_templates(world, seed=0) == out
    assert any(mcq_templates(world, seed=s)[0]["choices"] != out[0]["choices"] for s in range(1, 6))


def test_the_stand_ins_are_in_the_paper_models_architectures(prepared):
    out, manifest = prepared
    want = {"qwen3_vl": "Qwen3VLForConditionalGeneration", "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
            "qwen2": "Qwen2ForCausalLM"}
    for role, (arch, _) in MODEL_ROLES.items():
        config = json.loads((out / "models" / role / "config.json").read_text())
        assert config["architectures"] == [want[arch]] and manifest["models"][role]["architecture"] == arch
    large = json.loads((out / "models/filter_large/config.json").read_text())["text_config"]
    small = json.loads((out / "models/filter_small/config.json").read_text())["text_config"]
    assert large["num_hidden_layers"] > small["num_hidden_layers"]   # as 32B is to 7B


# Keys the dry run may change, and why: the unreachable pieces (paths in place of URLs and hub ids, the CPU
# backend in place of vLLM on 8 GPUs, no remote judge) and the sizes that make it a few steps.
SWAPPED = ("tracking.experiment", "raw.docci.local_dir", "models.policy.hub_id", "models.filter_small.hub_id",
           "models.filter_large.hub_id", "perception.generation.llm.model", "perception.generation.llm.max_captions",
           "perception.generation.llm.backend.", "perception.generation.llm.sampling.max_new_tokens",
           "perception.generation.template_file", "perception.filter.backend.",
           "perception.filter.sampling.max_new_tokens", "sets.text.", "sets.vis.", "curriculum.steps",
           "curriculum.s1.steps", "curriculum.s2.steps", "curriculum.s3.steps", "merged.steps",
           "grpo.rollout_batch_size", "grpo.update_batch_size", "grpo.max_prompt_length",
           "grpo.max_response_length", "pass_rate.", "train.checkpoint_every", "train.min_items", "train.threads",
           "train.rollout", "train.trl.per_device_train_batch_size", "train.launcher.num_processes",
           "train.precision", "train.weights_dtype", "evaluation.rows",
           "train.eval.", "evaluation.n", "evaluation.max_new_tokens", "evaluation.batch_size",
           "evaluation.backend.", "evaluation.judge.", "dryrun.")


def test_paper_dry_is_the_paper_profile_with_only_the_unreachable_pieces_swapped(prepared):
    out, _ = prepared
    dry = compose(["profile=paper_dry", f"dryrun.dir={out}"], config_dir=ROOT / "conf")
    validate(dry)
    paper = to_flat_dict(compose(["profile=paper"], config_dir=ROOT / "conf"))
    flat = to_flat_dict(dry)
    changed = sorted(k for k in paper.keys() | flat.keys() if paper.get(k, "<absent>") != flat.get(k, "<absent>"))
    assert [k for k in changed if not k.startswith(SWAPPED)] == []
    assert dry.profile == "paper" and dry.raw.source == "docci" and dry.world is None
    # the paper's GRPO algorithm is untouched: only its batch and length sizes are scaled
    for key in ("group_size", "temperature", "top_p", "learning_rate", "kl_coef", "kl_estimator", "clip_ratio_low",
                "clip_ratio_high", "clip_ratio_dual", "loss_agg_mode", "reference"):
        assert flat[f"grpo.{key}"] == paper[f"grpo.{key}"], key
    for role in ("policy", "filter_small", "filter_large"):
        assert dry.models[role].kind == "hub" and dry.models[role].hub_id == str(out / "models" / role)
    assert OmegaConf.to_container(dry.perception.filter.backend)["backend"] == "hf"


def test_paper_dry_without_a_directory_names_the_variable(monkeypatch):
    monkeypatch.delenv("CAPCURRICULUM_DRYRUN", raising=False)
    with pytest.raises(Exception, match="CAPCURRICULUM_DRYRUN"):
        compose(["profile=paper_dry"], config_dir=ROOT / "conf")


def _run(cmd, cwd, env, timeout=1500):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


DATA_NODES = ("raw", "init_models", "base@policy", "base@filter_small", "base@filter_large", "qa_generate",
              "perc_filter", "sets@text", "sets@vis")


@pytest.mark.slow
def test_the_whole_dag_runs_the_paper_path_on_the_prepared_directory(tmp_path, git_copy, openai_server):
    """`dvc repro` of every data node, up to D_perc, D_text and D_vis, then the rest of the DAG to the report, on
    the paper_dry profile, in a git copy of the repository; the tiny world is never read (data/world holds only the
    raw node's manifest). The evaluate nodes ask a real local judge (issue 36, item 5)."""
    dry = tmp_path / "dryrun"
    manifest = prepare(dry, DryRunSpec(train_scenes=12, test_scenes=4, text_math=12, vis_math=8))
    repo = tmp_path / "repo"
    repo.mkdir()
    with socket.socket() as sock:  # the judge's port, chosen now: its URL is a parameter of the evaluate nodes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    judge_url = f"http://127.0.0.1:{port}/v1"
    env = git_copy(repo, "profile=paper_dry", f"dryrun.dir={dry}", "evaluation.judge.enabled=true",
                   f"evaluation.judge.base_url={judge_url}", message="paper_dry")
    proc = _run(["dvc", "repro", "perc_filter", "sets@text", "sets@vis"], repo, env)
    for node in DATA_NODES:
        assert f"Running stage '{node}'" in proc.stdout, proc.stdout[-3000:]
        assert json.loads((repo / f"data/runs/{node}.json").read_text())["node"] == node

    # raw: DOCCI taken from the local copy; the world is recorded as not built, and nothing else is there
    raw = repo / "data/raw"
    assert len(load_docci(raw).records) == manifest["docci"]["records"] == 16
    assert len(list((raw / "images").iterdir())) == 16
    assert [p.name for p in (repo / "data/world").iterdir()] == ["manifest.json"]
    assert json.loads((repo / "data/world/manifest.json").read_text())["built"] is False
    # models: hub-id pointers at the stand-in directories, not copies
    for role in ("policy", "filter_small", "filter_large"):
        for stage in ("init", "base"):
            ref = json.loads((repo / f"data/models/{stage}/{role}/model_ref.json").read_text())
            assert ref["path"] == str(dry / "models" / role)
    # qa_generate: the Qwen2 writer was asked (its random text counted as unparseable), templates added
    qa = json.loads((repo / "data/metrics/qa_generate.json").read_text())
    assert qa["llm_captions"] == 8 and qa["llm_failed"] == 0
    assert qa["unparseable_outputs"] + qa.get("candidates/llm", 0) >= 1
    assert qa["candidates/template"] > 0
    candidates = read_jsonl(repo / "data/perception/qa/candidates.jsonl")
    assert len(candidates) == qa["candidates"] and all(c["answer_type"] == "choice" for c in candidates)
    # perc_filter: both Qwen2.5-VL filters through the cascade; D_perc written (random filters keep ~nothing)
    filt = json.loads((repo / "data/metrics/perc_filter.json").read_text())
    assert filt["filter/filter_small/n"] == qa["candidates"] and filt["filter/filter_small/failed"] == 0
    assert filt["filter/filter_large/n"] == filt["filter/filter_small/kept"]
    verdicts = read_jsonl(repo / "data/perception/filter/filter_verdicts.jsonl")
    assert len(verdicts) == qa["candidates"] + filt["filter/filter_small/kept"]
    assert all(v["image_error"] is None for v in verdicts)
    assert sum(len(read_jsonl(repo / f"data/sets/perc/perc_{s}.jsonl")) for s in ("train", "val", "test")) == \
        filt["kept_intersection"]
    # sets: D_text from the ORZ file, D_vis from the VLAA-Thinking file with its images
    assert len(read_jsonl(repo / "data/sets/text/text_train.jsonl")) == manifest["orz_math"]["rows"]
    vis = read_jsonl(repo / "data/sets/vis/vis_train.jsonl")
    assert len(vis) == manifest["vlaa_thinking"]["rows"] and all((repo / "data/sets/vis/vis_images" / v["image"]).is_file()
                                                                  for v in vis)

    # the training nodes, each launched by train.launcher (accelerate, DeepSpeed ZeRO-2, two CPU processes for
    # the paper's eight GPUs) on the trl engine, the merged baseline mixing text and image prompts
    proc = _run(["dvc", "repro", "train_3", "baseline@merged"], repo, env)
    steps = {"train_1": 0 if filt["kept_intersection"] == 0 else 2, "train_2": 2, "train_3": 2, "merged": 6}
    for node, done in steps.items():
        stage = "baseline@merged" if node == "merged" else node  # merged's DVC node; its outputs keep its name
        assert f"Running stage '{stage}'" in proc.stdout, proc.stdout[-3000:]
        boundary = json.loads((repo / f"data/models/{node}/trainer_state/boundary.json").read_text())
        assert boundary["engine"] == "trl" and boundary["launcher"] == "accelerate (DEEPSPEED, 2 processes)", boundary
        assert boundary["steps_done"] == done, boundary
    history = read_jsonl(repo / "data/models/merged/trainer_state/history.jsonl")
    assert len(history) == 6 and all({"reward", "kl", "loss", "response_length"} <= set(r) for r in history)
    assert [p.name for p in (repo / "data/world").iterdir()] == ["manifest.json"]  # still never read

    # the eight benchmarks from local rows in their hub layouts, scored by the paper's protocol with its judge
    # path: a real OpenAI-compatible server (vLLM's CPU build serving the QA writer's stand-in); the reports
    with openai_server(dry / "models/qa_writer", served_name="dry-judge", port=port,
                       log=tmp_path / "judge.log"):
        _run(["dvc", "repro"], repo, env)
    for name in ("base", "staged", "merged"):
        scores = json.loads((repo / f"data/metrics/eval/{name}.json").read_text())
        for b, rows in manifest["benchmarks"]["rows"].items():
            assert 0 < scores[f"{b}/n"] <= min(4, rows), (name, b)   # evaluation.n: of the first 4 rows
    report = (repo / "data/reports/eval/report.md").read_text()
    assert "| staged |" in report and "Protocol (evaluation.protocol): base vlmevalkit" in report
    assert (repo / "data/reports/train.md").exists()
    assert "judge dry-judge (endpoint reported: dry-judge)" in report

    # the judge was asked only where VLMEvalKit's rule could not read an answer, and every request counted
    asked = {}
    for name in ("base", "staged", "merged"):
        summary = json.loads((repo / f"data/eval/{name}/summary.json").read_text())
        judge = next(iter(summary.values()))["protocol_details"]["judge"]
        records = [r for b in summary for r in read_jsonl(repo / f"data/eval/{name}/{b}.jsonl")]
        by_llm = [r for r in records if r.get("extraction") in ("llm", "llm_unparsed")]
        assert all("llm_reply" in r for r in by_llm) and not any("llm_reply" in r for r in records
                                                                 if r.get("extraction") == "rule"), name
        assert not any(r.get("extraction") == "fell_through" for r in records), name  # a judge was there
        stats = judge["stats"]
        assert stats["requests/extraction"] == len(by_llm) and stats["unavailable"] == 0, (name, stats)
        assert stats["calls"] + stats["cache_hits"] <= stats["requests"], (name, stats)  # repeats sent once
        # what the endpoint said it served, for the replies that came from it (none for a run answered by the cache)
        assert judge["model"] == "dry-judge" and set(judge["served"]) == ({"dry-judge"} if stats["calls"] else set())
        asked[name] = (len(by_llm), [(r["id"], r["extracted"], r["correct"]) for r in records], stats["calls"])
    assert asked["base"][0] > 0 and asked["base"][2] > 0  # the random base's replies leave the rule something to miss
    # (staged and merged, two and six steps from the same random weights, may reply as each other: cache hits)

    # with the server gone, a rerun is answered from the judge's cache: no request, the same scores
    proc = _run(["dvc", "repro", "-f", "-s", "evaluate@base"], repo, env)
    summary = json.loads((repo / "data/eval/base/summary.json").read_text())
    stats = next(iter(summary.values()))["protocol_details"]["judge"]["stats"]
    assert stats["calls"] == 0 and stats["unavailable"] == 0 and stats["cache_hits"] > 0, stats
    again = [(r["id"], r["extracted"], r["correct"]) for b in summary
             for r in read_jsonl(repo / f"data/eval/base/{b}.jsonl")]
    assert again == asked["base"][1]
    # and without the cache an unreachable judge stops the node, naming the endpoint: nothing is scored wrong
    shutil.move(repo / ".judge_cache", tmp_path / "judge_cache_moved")
    proc = subprocess.run(["dvc", "repro", "-f", "-s", "evaluate@base"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=1500)
    assert proc.returncode != 0
    assert f"extraction requests to {judge_url}" in proc.stdout + proc.stderr and "No item was scored" in \
        proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
