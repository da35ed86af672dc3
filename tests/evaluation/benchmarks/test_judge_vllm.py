"""The vlmevalkit protocol's judge against a real OpenAI-compatible server (issue 36, item 5): vLLM's CPU build
serving a tiny Qwen2-architecture model (the dry run's stand-in for the QA writer). Its replies are noise; the
plumbing is real: extraction asked only where VLMEvalKit's rule failed, every reply read or counted as unread,
the served model recorded, a rerun answered from the cache, and the judge's requests counted."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from capcurriculum.evaluation.judge import Judge

pytestmark = pytest.mark.slow

SERVED_NAME = "tiny-judge"


def _scripted_cases():
    """test_vlmevalkit.py's scripted MMStar run (the rule reads two of its four responses)."""
    spec = importlib.util.spec_from_file_location("_judge_vllm_vlmevalkit", Path(__file__).with_name("test_vlmevalkit.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run_mmstar, module.MMSTAR


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory, openai_server):
    from capcurriculum.dryrun import prepare

    work = tmp_path_factory.mktemp("judge_vllm")
    prepare(work / "dryrun")
    with openai_server(work / "dryrun/models/qa_writer", served_name=SERVED_NAME,
                       log=work / "server.log") as base_url:
        yield base_url


def test_the_judge_extracts_through_a_real_server_only_where_the_rule_failed(vllm_server, load_rows, tmp_path):
    run_mmstar, responses = _scripted_cases()
    config = {"enabled": True, "base_url": vllm_server, "model": SERVED_NAME, "api_key_env": None, "timeout_s": 60,
              "max_retries": 0, "cache": str(tmp_path / "judge.sqlite")}
    with Judge.from_config(config) as judge:
        records, summary, metrics = run_mmstar(load_rows, judge, tmp_path / "out", responses)
        how = {r["id"]: r["extraction"] for r in records}
        assert how["1"] == how["2"] == "rule"  # "**A**" and "..., D." never reach the judge
        asked = sorted(i for i, e in how.items() if e != "rule")
        assert asked == ["0", "3"] and {how[i] for i in asked} <= {"llm", "llm_unparsed"}  # read, or counted unread
        assert judge.stats["requests"] == judge.stats["calls"] == 2 and judge.stats["unavailable"] == 0
        assert all(isinstance(r.get("llm_reply"), str) for r in records if r["id"] in asked)
        assert judge.served_models == {SERVED_NAME: 2}  # what the endpoint said it served, recorded
        counts = summary["mmstar"]["extraction"]["counts"]
        assert counts["rule"] == 2 and counts.get("llm", 0) + counts.get("llm_unparsed", 0) == 2
        assert metrics["protocol"] == "vlmevalkit"
        assert all(r["correct"] is False for r in records if r["extraction"] == "llm_unparsed")
        again, _, _ = run_mmstar(load_rows, judge, tmp_path / "again", responses)  # a rerun reads the cache
        assert judge.stats["calls"] == 2 and judge.stats["cache_hits"] == 2  # no new request reached the server
        assert [(r["extracted"], r["correct"]) for r in again] == [(r["extracted"], r["correct"]) for r in records]
