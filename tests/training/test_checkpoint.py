"""Training state round-trips through safetensors + JSON, with no pickle."""

import json
import random

import torch

from capcurriculum.training.checkpoint import (
    load_optimizer,
    load_resume,
    restore_resume,
    save_optimizer,
    save_resume,
)


def _trained_optimizer():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    opt = torch.optim.AdamW([{"params": net[0].parameters(), "lr": 1e-2},
                             {"params": net[1].parameters(), "lr": 1e-3}])
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
    return net, opt


def test_optimizer_state_round_trips(tmp_path):
    net, opt = _trained_optimizer()
    save_optimizer(opt, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"optimizer.safetensors", "optimizer.json"}
    fresh = torch.optim.AdamW([{"params": net[0].parameters()}, {"params": net[1].parameters()}])
    fresh.load_state_dict(load_optimizer(tmp_path))
    a, b = opt.state_dict(), fresh.state_dict()
    assert [g["lr"] for g in b["param_groups"]] == [1e-2, 1e-3]
    for i in a["state"]:
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(a["state"][i][k], b["state"][i][k])


def test_a_resume_point_from_other_inputs_is_discarded(tmp_path, processor, model):
    _, opt = _trained_optimizer()
    save_resume(tmp_path / "r", model, processor, opt, {"fingerprint": "abc", "step": 3})
    assert load_resume(tmp_path / "r", "abc")["step"] == 3
    assert not any(p.suffix in (".pt", ".bin", ".pkl") for p in (tmp_path / "r").rglob("*"))
    assert load_resume(tmp_path / "r", "other") is None and not (tmp_path / "r").exists()


def test_a_resume_point_restores_weights_optimizer_and_rng(tmp_path, processor, model):
    _, opt = _trained_optimizer()
    torch.manual_seed(7)
    random.seed(7)
    save_resume(tmp_path / "r", model, processor, opt, {"fingerprint": "abc", "step": 3})
    expected = (torch.rand(3), random.random())
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    fresh = torch.optim.AdamW([{"params": opt.param_groups[0]["params"]}, {"params": opt.param_groups[1]["params"]}])
    assert load_resume(tmp_path / "r", "abc")["processes"] == 1
    restore_resume(tmp_path / "r", model, fresh)
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    got = (torch.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and got[1] == expected[1]  # the random streams go on where they were


def test_a_resume_point_missing_a_process_or_from_another_world_size_is_discarded(tmp_path, processor, model):
    _, opt = _trained_optimizer()
    point = tmp_path / "r"
    save_resume(point, model, processor, opt, {"fingerprint": "abc", "step": 3})
    state = json.loads((point / "state.json").read_text())
    (point / "state.json").write_text(json.dumps({**state, "processes": 2}))  # rng_1 never written
    assert load_resume(point, "abc") is None and not point.exists()
    save_resume(point, model, processor, opt, {"fingerprint": "abc", "step": 3})
    (point / "rng_0.safetensors").unlink()  # a point from before per-process RNG files
    assert load_resume(point, "abc") is None and not point.exists()


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def test_a_damaged_resume_point_is_set_aside_and_the_stage_starts_again(tmp_path, processor, model, caplog):
    _, opt = _trained_optimizer()
    point = tmp_path / "r"
    save_resume(point, model, processor, opt, {"fingerprint": "abc", "step": 3})
    _truncate(point / "model" / "model.safetensors")  # the disk filled up mid-write of a later point, say
    with caplog.at_level("WARNING", logger="capcurriculum.training.checkpoint"):
        assert load_resume(point, "abc") is None
    assert not point.exists() and (tmp_path / "r.damaged" / "model" / "model.safetensors").exists()
    assert str(point / "model" / "model.safetensors") in caplog.text and "set aside" in caplog.text
    # the re-run saves a new point and resumes from it, and a second damaged one replaces the first aside
    save_resume(point, model, processor, opt, {"fingerprint": "abc", "step": 5})
    assert load_resume(point, "abc")["step"] == 5
    _truncate(point / "optimizer" / "optimizer.safetensors", keep=0.999)
    assert load_resume(point, "abc") is None
    assert json.loads((tmp_path / "r.damaged" / "state.json").read_text())["step"] == 5


def test_a_resume_point_changed_on_disk_at_its_full_size_is_caught_by_its_recorded_sha256(tmp_path, processor, model,
                                                                                         caplog):
    # a flipped byte inside the weights' data keeps the header and the size whole: only the hash sees it
    _, opt = _trained_optimizer()
    point = tmp_path / "r"
    save_resume(point, model, processor, opt, {"fingerprint": "abc", "step": 3})
    recorded = json.loads((point / "manifest.json").read_text())
    assert recorded["model/model.safetensors"]["sha256"] and recorded["state.json"]["bytes"] > 0
    weights = point / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="capcurriculum.training.checkpoint"):
        assert load_resume(point, "abc") is None
    assert f"{weights}: sha256 differs from the one recorded at save" in caplog.text
    assert (tmp_path / "r.damaged").is_dir() and not point.exists()


def test_a_truncated_stage_checkpoint_names_its_path(tmp_path, processor, model):
    import pytest

    from capcurriculum.io import DataError
    from capcurriculum.models.loading import load_model_and_processor
    from capcurriculum.models.tiny import save_pretrained_dir

    save_pretrained_dir(model, processor, tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    _truncate(weights, keep=0.9)
    with pytest.raises(DataError, match=f"^{weights}: damaged safetensors"):
        load_model_and_processor(tmp_path / "ckpt")
    weights.write_bytes(b"\x05")
    with pytest.raises(DataError, match=f"^{weights}: damaged safetensors: 1 bytes"):
        load_model_and_processor(tmp_path / "ckpt")
