"""Training state round-trips through safetensors + JSON, with no pickle."""

import torch

from capcurriculum.training.checkpoint import load_optimizer, load_resume, save_optimizer, save_resume


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
