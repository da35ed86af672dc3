"""Model references: a from_pretrained directory, a model_ref.json pointer, or a hub id."""

import json

import pytest
import torch

from capcurriculum.models import (
    MODEL_REF_FILE,
    ModelRefError,
    build_processor,
    build_tiny_model,
    count_parameters,
    load_model_and_processor,
    resolve_model_ref,
    save_pretrained_dir,
    tiny_config,
    train_tokenizer,
    write_model_ref,
)


def test_model_ref_directory_resolves_to_the_hub_id(tmp_path):
    out = tmp_path / "base"
    path = write_model_ref(out, "Qwen/Qwen3-VL-8B-Instruct", revision="0123abcd")
    assert path == out / MODEL_REF_FILE
    assert json.loads(path.read_text()) == {"hub_id": "Qwen/Qwen3-VL-8B-Instruct", "revision": "0123abcd"}
    assert resolve_model_ref(out) == ("Qwen/Qwen3-VL-8B-Instruct", "0123abcd")
    assert resolve_model_ref(str(out)) == ("Qwen/Qwen3-VL-8B-Instruct", "0123abcd")
    assert resolve_model_ref(path) == ("Qwen/Qwen3-VL-8B-Instruct", "0123abcd")
    write_model_ref(out, "Qwen/Qwen2.5-VL-7B-Instruct")
    assert resolve_model_ref(out) == ("Qwen/Qwen2.5-VL-7B-Instruct", None)


def test_hub_id_string_passes_through():
    assert resolve_model_ref("Qwen/Qwen3-VL-8B-Instruct") == ("Qwen/Qwen3-VL-8B-Instruct", None)
    assert resolve_model_ref("OpenGVLab/InternVL3_5-8B-HF") == ("OpenGVLab/InternVL3_5-8B-HF", None)


def test_checkpoint_directory_wins_over_a_pointer(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    write_model_ref(tmp_path, "Qwen/Qwen3-VL-8B-Instruct")
    assert resolve_model_ref(tmp_path) == (str(tmp_path), None)


def test_bad_directory_error_names_the_path(tmp_path):
    bad = tmp_path / "empty_model_dir"
    bad.mkdir()
    with pytest.raises(ModelRefError, match="empty_model_dir") as err:
        resolve_model_ref(bad)
    assert str(bad) in str(err.value) and "config.json" in str(err.value) and MODEL_REF_FILE in str(err.value)
    with pytest.raises(ModelRefError, match="empty_model_dir"):
        load_model_and_processor(bad)


def test_missing_local_path_and_malformed_pointer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a checkout with a built DAG has ./data/models/base
    with pytest.raises(ModelRefError, match="no such model directory"):
        resolve_model_ref(tmp_path / "nowhere")
    with pytest.raises(ModelRefError, match="no such model directory"):
        resolve_model_ref("./data/models/base")
    (tmp_path / MODEL_REF_FILE).write_text('{"hub_id": 3}')
    with pytest.raises(ModelRefError, match=str(tmp_path / MODEL_REF_FILE)):
        resolve_model_ref(tmp_path)
    (tmp_path / MODEL_REF_FILE).write_text("{not json")
    with pytest.raises(ModelRefError, match="malformed JSON"):
        resolve_model_ref(tmp_path)
    with pytest.raises(ModelRefError, match="hub id"):
        write_model_ref(tmp_path / "x", "not a hub id")


def test_load_a_tiny_model_directory(tmp_path):
    tok = train_tokenizer([f"a red circle {i} and a blue square" for i in range(20)] * 3, vocab_size=300)
    model = build_tiny_model(tiny_config(tok), seed=3)
    save_pretrained_dir(model, build_processor(tok), tmp_path / "tiny")

    loaded, processor = load_model_and_processor(tmp_path / "tiny", dtype="bfloat16")
    assert loaded.dtype == torch.bfloat16 and not loaded.training
    assert processor.tokenizer.padding_side == "left"
    assert count_parameters(loaded) == count_parameters(model)
    loaded32, _ = load_model_and_processor(str(tmp_path / "tiny"), dtype=torch.float32)
    a, b = model.state_dict(), loaded32.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="unknown dtype"):
        load_model_and_processor(tmp_path / "tiny", dtype="float8")


def test_a_local_directory_stands_where_a_hub_id_goes(tmp_path):
    # models.<role>: {kind: hub, hub_id: /path/to/a/pre-downloaded/copy}: the pointer names the directory
    # and fingerprints its files, so a changed copy changes the init node's output.
    tok = train_tokenizer([f"a red circle {i}" for i in range(20)] * 3, vocab_size=300)
    save_pretrained_dir(build_tiny_model(tiny_config(tok), seed=3), build_processor(tok), tmp_path / "copy")
    path = write_model_ref(tmp_path / "init", str(tmp_path / "copy"))
    ref = json.loads(path.read_text())
    assert ref["path"] == str((tmp_path / "copy").resolve()) and len(ref["fingerprint"]) == 64
    assert resolve_model_ref(tmp_path / "init") == (str((tmp_path / "copy").resolve()), None)
    model, _ = load_model_and_processor(tmp_path / "init")
    assert count_parameters(model)["total"] > 0
    (tmp_path / "copy" / "extra.txt").write_text("changed")
    assert json.loads(write_model_ref(tmp_path / "init", str(tmp_path / "copy")).read_text())["fingerprint"] != ref["fingerprint"]
    with pytest.raises(ModelRefError, match="not a from_pretrained directory"):
        write_model_ref(tmp_path / "init2", str(tmp_path / "init2"))


def test_the_config_refuses_a_local_hub_id_that_is_not_a_model_directory(tmp_path):
    from capcurriculum.config import ConfigError, compose, validate

    cfg = compose(["profile=paper", f"models.policy.hub_id={tmp_path}"])
    with pytest.raises(ConfigError, match=r"models\.policy\.hub_id: .* is not a model directory"):
        validate(cfg)
