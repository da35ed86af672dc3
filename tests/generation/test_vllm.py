"""The vllm backend against the hf backend on the same tiny checkpoint (one subprocess, ~2 min)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("vllm_parity_script.py")


@pytest.mark.slow
def test_vllm_and_hf_greedy_texts_are_identical(tiny_model_dir, image_paths, tmp_path):
    pytest.importorskip("vllm")
    out = tmp_path / "parity.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tiny_model_dir), str(out), *image_paths[:2]],
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    report = json.loads(out.read_text())
    hf, vllm = report["hf"], report["vllm"]
    assert [r["id"] for r in vllm] == ["img0", "txt0", "img1", "txt1"]
    assert all(r["error"] is None for r in hf + vllm), (hf, vllm)
    assert [r["texts"] for r in vllm] == [r["texts"] for r in hf]
    assert [r["n_tokens"] for r in vllm] == [r["n_tokens"] for r in hf]
    assert [r["finish_reasons"] for r in vllm] == [r["finish_reasons"] for r in hf]
    assert any(r["texts"][0] for r in vllm)
    assert "stop" in {r["finish_reasons"][0] for r in vllm}, (
        "no request reached eos: parity would not cover it"
    )
    # the engine is reused and results follow their requests
    assert {r["id"]: r["texts"] for r in report["vllm_again"]} == {r["id"]: r["texts"] for r in vllm}
    # seeded sampling reproduces
    a, b = report["sampled_a"], report["sampled_b"]
    assert all(len(r["texts"]) == 2 for r in a) and [r["texts"] for r in a] == [r["texts"] for r in b]
    # a request vLLM refuses and an unreadable image fail alone
    wf = {r["id"]: r for r in report["with_failures"]}
    assert wf["two_images"]["error"] and wf["missing"]["error"] and "no_such.png" in wf["missing"]["error"]
    assert wf["img0"]["texts"] == vllm[0]["texts"] and wf["txt0"]["texts"] == vllm[1]["texts"]
