"""The LLM judge against a real chat-completions server on 127.0.0.1 that the test controls."""

from __future__ import annotations

import json
import logging
import socket
import sqlite3

import pytest

from capcurriculum.evaluation.benchmarks.base import BenchItem
from capcurriculum.evaluation.judge import Judge, JudgeConfig, cache_key, parse_equivalence

KEY_ENV = "CAPCURRICULUM_TEST_JUDGE_KEY"
KEY = "sk-judge-n3v3rl0gg3d-91c2"


@pytest.fixture
def config(server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    server.calls.clear()
    server.reply = "yes"
    return {"enabled": True, "base_url": server.base_url, "model": "claude-haiku-4-5", "api_key_env": KEY_ENV,
            "timeout_s": 5, "max_retries": 0, "cache": str(tmp_path / "judge" / "cache.sqlite")}


def item(gold="12", answer_type="number", choices=None, id="q1"):
    return BenchItem(benchmark="MathVista", id=id, question="How many cubes are left?", image=None,
                     gold=gold, answer_type=answer_type, choices=choices or {})


def test_a_verdict_is_parsed_and_sent_as_asked(config, server):
    server.reply = 'The final answers match.\n```json\n{"equivalent": true}\n```'
    with Judge.from_config(config) as judge:
        assert judge.equivalent(item(), "<think>7 + 5</think> \\boxed{12}") is True
        server.reply = "no"
        assert judge(item(id="q2"), "\\boxed{13}") is False  # a Judge is the adapters' callable too
    assert len(server.calls) == 2
    call = server.calls[0]
    assert call["headers"]["Authorization"] == f"Bearer {KEY}"  # the key is sent as a header
    body = call["body"]
    assert body["model"] == "claude-haiku-4-5" and body["temperature"] == 0
    prompt = body["messages"][-1]["content"][-1]["text"]
    assert "How many cubes are left?" in prompt and "\\boxed{12}" in prompt
    assert "Reference answer:\n12" in prompt
    assert judge.stats == {"requests": 2, "calls": 2, "cache_hits": 0, "unavailable": 0, "unparseable": 0,
                           "requests/equivalence": 2}


def test_choice_gold_shows_the_option_text(config, server):
    with Judge.from_config(config) as judge:
        judge.equivalent(item(gold="B", answer_type="choice", choices={"A": "3", "B": "12"}), "\\boxed{12}")
    assert "Reference answer:\nB (12)" in server.calls[0]["body"]["messages"][-1]["content"][-1]["text"]


def test_a_cache_hit_makes_no_request_and_survives_a_restart(config, server):
    with Judge.from_config(config) as judge:
        prompt = judge.equivalence_prompt(item(), "\\boxed{12}")
        assert judge.equivalent(item(), "\\boxed{12}") is True
        assert judge.equivalent(item(), "\\boxed{12}") is True
        assert len(server.calls) == 1
        assert judge.stats["calls"] == 1 and judge.stats["cache_hits"] == 1
        # The same prompt for another purpose, or another model, is another entry.
        judge.ask(prompt, "attribution")
        assert len(server.calls) == 2
    server.reply = "no"  # a fresh process reads the old verdict from disk, without asking
    with Judge.from_config(config) as judge:
        assert judge.equivalent(item(), "\\boxed{12}") is True
        assert judge.stats["cache_hits"] == 1 and judge.stats["calls"] == 0
    assert len(server.calls) == 2
    with Judge.from_config({**config, "model": "other-judge"}) as judge:
        assert judge.equivalent(item(), "\\boxed{12}") is False
    assert len(server.calls) == 3
    with sqlite3.connect(config["cache"]) as db:
        rows = db.execute("SELECT key, model, purpose FROM judge_cache ORDER BY created_at").fetchall()
    assert len(rows) == 3 and rows[0][1:] == ("claude-haiku-4-5", "equivalence")
    assert rows[0][0] == cache_key("claude-haiku-4-5", prompt, "equivalence")


def test_an_unreachable_judge_is_unavailable_not_wrong(config, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with Judge.from_config({**config, "base_url": f"http://127.0.0.1:{port}/v1"}) as judge:
        verdict = judge.ask("Is 12 equal to 12?", "equivalence")
        assert verdict.status == "unavailable" and "connection error" in verdict.error
        assert judge.equivalent(item(), "\\boxed{12}") is None  # undecided: the rule verdict stands
        assert judge.stats == {"requests": 2, "calls": 2, "cache_hits": 0, "unavailable": 2, "unparseable": 0,
                               "requests/equivalence": 2}
    with sqlite3.connect(config["cache"]) as db:  # failures are not cached: a later run asks again
        assert db.execute("SELECT COUNT(*) FROM judge_cache").fetchone()[0] == 0


def test_the_key_is_never_logged_or_cached(config, server, caplog):
    caplog.set_level(logging.DEBUG)
    with Judge.from_config(config) as judge:
        assert judge.equivalent(item(), "\\boxed{12}") is True
        bad = judge.ask("BAD request", "equivalence")  # the server echoes the key in its error body
        assert bad.status == "unavailable" and "HTTP 400" in bad.error and KEY not in bad.error
        assert KEY not in repr(judge) and KEY not in json.dumps(judge.stats) and KEY not in repr(judge.config)
    assert all(c["headers"]["Authorization"] == f"Bearer {KEY}" for c in server.calls)
    assert any("unavailable" in r.getMessage() for r in caplog.records)  # the failure was logged ...
    for record in caplog.records:  # ... without the key
        assert KEY not in record.getMessage() and KEY not in str(record.args)
    with open(config["cache"], "rb") as f:
        assert KEY.encode() not in f.read()


def test_a_missing_key_variable_is_named(config, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ValueError, match=KEY_ENV):
        Judge.from_config(config)
    monkeypatch.setenv(KEY_ENV, "")
    with pytest.raises(ValueError, match=f"judge.api_key_env.*{KEY_ENV}"):
        Judge.from_config(config)


def test_config_errors_name_the_key(config):
    with pytest.raises(ValueError, match="judge.base_url is missing"):
        Judge.from_config({k: v for k, v in config.items() if k != "base_url"})
    with pytest.raises(ValueError, match="unknown key.*api_key"):
        Judge.from_config({**config, "api_key": KEY})  # a key in the config itself is refused
    with pytest.raises(ValueError, match="judge.enabled is missing"):
        JudgeConfig.from_mapping({k: v for k, v in config.items() if k != "enabled"})
    with pytest.raises(ValueError, match="judge.timeout_s"):
        JudgeConfig.from_mapping({**config, "timeout_s": 0})
    with pytest.raises(ValueError, match="judge.max_retries"):
        JudgeConfig.from_mapping({**config, "max_retries": -1})


def test_a_disabled_judge_reads_nothing_and_answers_unavailable(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with Judge.from_config({"enabled": False, "api_key_env": KEY_ENV}) as judge:
        assert not judge.enabled
        assert judge.equivalent(item(), "\\boxed{12}") is None
        assert judge.stats["unavailable"] == 1 and judge.stats["calls"] == 0


def test_an_unparseable_verdict_is_counted(config, server):
    server.reply = "It depends on how one reads the figure."
    with Judge.from_config(config) as judge:
        assert judge.equivalent(item(), "\\boxed{12}") is None
        assert judge.stats["unparseable"] == 1 and judge.stats["unavailable"] == 0


@pytest.mark.parametrize("reply, expected", [
    ('{"equivalent": true}', True), ('{"equivalent": false}', False), ('{"equivalent": "yes"}', True),
    ("yes", True), ("No.", False), ("**Yes**", True), ("The answers are not equivalent.", False),
    ("They are equivalent.", True), ("Verdict: incorrect", False), ("maybe", None), ("", None),
])
def test_parse_equivalence(reply, expected):
    assert parse_equivalence(reply) is expected


def test_judge_attribution_labels_counts_and_batches(config, server):
    from capcurriculum.evaluation.attribution import judge_attribution, judge_attribution_many

    server.reply = lambda text: ('{"label": "perception"}' if "5 cubes" in text
                                 else "The subtraction is wrong, so: reasoning" if "7 - 2" in text
                                 else "no idea")
    with Judge.from_config(config) as judge:
        cases = [("How many cubes?", "4", "<think>5 cubes</think> \\boxed{5}"),
                 ("What is 7 - 2?", "5", "<think>7 - 2 = 4</think> \\boxed{4}"),
                 ("Which is larger?", "A", "\\boxed{B}"),
                 ("How many cubes?", "4", "<think>5 cubes</think> \\boxed{5}")]  # asked twice, sent once
        labels = judge_attribution_many(judge, cases)
        assert [(lab.label, lab.status) for lab in labels] == [
            ("perception", "ok"), ("reasoning", "ok"), (None, "unparseable"), ("perception", "ok")]
        assert len(server.calls) == 3
        assert judge_attribution(judge, *cases[1]).label == "reasoning"  # from the cache
        assert judge.stats == {"requests": 5, "calls": 3, "cache_hits": 1, "unavailable": 0, "unparseable": 1,
                               "requests/attribution": 5}
    prompt = server.calls[0]["body"]["messages"][-1]["content"][-1]["text"]
    assert "perception" in prompt and "reasoning" in prompt and "Correct answer:" in prompt


def test_judge_attribution_when_the_judge_is_down(config):
    from capcurriculum.evaluation.attribution import judge_attribution

    with Judge.from_config({**config, "base_url": "http://127.0.0.1:9/v1"}) as judge:
        label = judge_attribution(judge, "How many cubes?", "4", "\\boxed{5}")
    assert (label.label, label.status) == (None, "unavailable") and label.detail


def test_a_judge_on_a_trickling_server_gives_up_at_its_deadline(config, trickle_server):
    """timeout_s is the whole call's deadline: a server sending a byte every 0.2 s (a reply in 40 s,
    each read well inside 1 s) leaves the judge unavailable after about 1 s, counted, not waiting."""
    import time

    slow = trickle_server(interval=0.2)
    with Judge.from_config({**config, "base_url": slow.url + "/v1", "timeout_s": 1}) as judge:
        t = time.monotonic()
        verdict = judge.equivalent(item(), "\\boxed{12}")
        took = time.monotonic() - t
        stats = judge.stats
    assert verdict is None and took < 5
    assert stats["unavailable"] == 1 and slow.requests == 1
