"""Data-parallel GRPO (`train.processes`): two processes updating on their halves of a batch take the step one
process takes on the whole batch, and stay identical to each other."""

import copy
import os
import socket

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from capcurriculum.models.tiny import save_pretrained_dir
from capcurriculum.training.base import WorldData
from capcurriculum.training.grpo import GRPOTrainer, by_mode
from capcurriculum.training.grpo_config import GRPOSettings
from capcurriculum.training.rewards import RewardConfig

SETTINGS = GRPOSettings(group_size=4, max_response_length=10, rollout_batch_size=4, update_batch_size=4,
                        learning_rate=1e-3, kl_coef=0.05)


def _reward(text, item):  # varies within a group, so every group has an advantage to push
    r = (len(text) % 3) / 2
    return {"reward": r, "accuracy": r, "format": 0.0}


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _rank_update(rank, world, port, model_dir, chunks, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from capcurriculum.models import load_model_and_processor

    AcceleratorState._reset_state(reset_partial_state=True)  # a forked child inherits the parent's singleton
    acc = Accelerator(cpu=True)
    assert acc.num_processes == world
    model, processor = load_model_and_processor(model_dir)
    trainer = GRPOTrainer(model, processor, SETTINGS, RewardConfig(), vision_lr_scale=1.0, accelerator=acc,
                          reward_fn=_reward)
    trainer.update([chunks[rank]])
    save_file(_grads(model), str(out_dir / f"grads_{rank}.safetensors"))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out_dir / f"weights_{rank}.safetensors"))


def test_two_processes_update_as_one_process_does_on_the_whole_batch(world, processor, model, tmp_path):
    torch.manual_seed(0)
    data = WorldData(*world)
    items = data.items("vis_math", "vis_math", "pretrain", limit=2) + data.items("text_math", "text_math", "pretrain", limit=2)
    save_pretrained_dir(model, processor, tmp_path / "model")
    one = GRPOTrainer(model, processor, SETTINGS, RewardConfig(), ref_model=copy.deepcopy(model),
                      vision_lr_scale=1.0, reward_fn=_reward)
    halves = [items[0::2], items[1::2]]  # an image and a text prompt each: two chunks a process
    chunks = [[one._rollout(part) for part in by_mode(h)] for h in halves]
    assert all(c.adv.abs().sum() > 0 for cs in chunks for c in cs)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_rank_update, args=(2, port, tmp_path / "model", chunks, tmp_path), nprocs=2,
                       start_method="fork")

    one.update([chunks[0] + chunks[1]])  # one process: one mini-batch of all four chunks
    expected = _grads(model)
    got = [load_file(str(tmp_path / f"grads_{r}.safetensors")) for r in range(2)]
    assert set(got[0]) == set(expected) and any("visual" in n for n in expected)
    for name, g in expected.items():
        assert torch.allclose(got[0][name], g, rtol=1e-4, atol=1e-7), name
        assert torch.equal(got[0][name], got[1][name]), name
    weights = [load_file(str(tmp_path / f"weights_{r}.safetensors")) for r in range(2)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # the processes stay one model
