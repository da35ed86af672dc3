"""The trl engine (training/trl_engine.py): TRL's GRPOTrainer computing the paper's update, step for step the
lean engine's on the same rollout; its knobs honoured or refused."""

import copy

import pytest
import torch

from capcurriculum.config import ConfigError
from capcurriculum.models import load_model_and_processor, save_pretrained_dir
from capcurriculum.sampling.rewards import RewardConfig
from capcurriculum.sampling.world_data import WorldData
from capcurriculum.settings.grpo import GRPOSettings
from capcurriculum.training.grpo import GRPOTrainer, PromptStream, by_mode
from capcurriculum.training.grpo_loss import group_advantages
from capcurriculum.training.trl_engine import TRLEngine, _image_runs, refuse

pytest.importorskip("trl")


def _settings(**kw):
    base = {"group_size": 4, "max_response_length": 10, "rollout_batch_size": 6, "update_batch_size": 6,
            "learning_rate": 1e-3, "kl_coef": 0.05}
    return GRPOSettings(**{**base, **kw})


def _varied_reward(text, item):  # varies within a group, so every group has an advantage to push
    r = (len(text) % 3) / 2
    return {"reward": 0.9 * r + 0.1 * (len(text) % 2), "accuracy": r, "format": float(len(text) % 2)}


@pytest.fixture
def saved(world, processor, tmp_path):
    """The tiny policy from a directory (TRL builds its stage-start reference from the policy's own path)."""
    from capcurriculum.models import build_tiny_model, tiny_config

    save_pretrained_dir(build_tiny_model(tiny_config(processor.tokenizer), seed=0), processor, tmp_path / "policy")
    return tmp_path / "policy"


def _items(world, n=3):
    data = WorldData(*world)
    return data.items("vis_math", "vis_math", "pretrain", limit=n) + data.items("text_math", "text_math", "pretrain",
                                                                                limit=n)


def _left_pad(t: torch.Tensor, length: int, value: int) -> torch.Tensor:
    return torch.cat([torch.full((t.shape[0], length - t.shape[1]), value, dtype=t.dtype), t], dim=1)


def _trl_batch(chunks, pad_id: int) -> dict:
    """The lean engine's rolled-out chunks (image, then text) as one TRL micro-batch, laid out as TRL lays out its
    own: prompts left-padded to one length, completions right-padded, one image a row of the image chunk."""
    Lp = max(c.ro.prompt_len for c in chunks)
    C = max(c.ro.completion_ids.shape[1] for c in chunks)
    parts = {k: [] for k in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "mm_token_type_ids",
                             "advantages", "ref_per_token_logps")}
    pixel, grid, num_images = [], [], []
    for c in chunks:
        full = c.ro.full_inputs()
        ids, am, L = full["input_ids"], full["attention_mask"], c.ro.prompt_len
        pad_c = C - c.ro.completion_ids.shape[1]
        parts["prompt_ids"].append(_left_pad(ids[:, :L], Lp, pad_id))
        parts["prompt_mask"].append(_left_pad(am[:, :L], Lp, 0))
        parts["completion_ids"].append(torch.nn.functional.pad(c.ro.completion_ids, (0, pad_c), value=pad_id))
        parts["completion_mask"].append(torch.nn.functional.pad(c.ro.completion_mask, (0, pad_c)))
        parts["mm_token_type_ids"].append(_left_pad(full["mm_token_type_ids"][:, :L], Lp, 0)
                                          if "mm_token_type_ids" in full else torch.zeros(ids.shape[0], Lp, dtype=torch.long))
        parts["advantages"].append(c.adv)
        parts["ref_per_token_logps"].append(torch.nn.functional.pad(c.ref_logp, (0, pad_c)))
        if "pixel_values" in full:
            pixel.append(full["pixel_values"])
            grid.append(full["image_grid_thw"])
        num_images += [1 if "pixel_values" in full else 0] * ids.shape[0]
    batch = {k: torch.cat(v) for k, v in parts.items()}
    batch.update(pixel_values=torch.cat(pixel), image_grid_thw=torch.cat(grid), num_images=num_images)
    batch["mm_token_type_ids"] = torch.cat([batch["mm_token_type_ids"], torch.zeros_like(batch["completion_ids"])], 1)
    batch["step_tokens"] = batch["completion_mask"].sum()
    return batch


def test_one_update_is_the_lean_engines_loss_gradient_and_step(world, saved):
    # The same rolled-out mini-batch (3 image + 3 text prompts x 4 completions, KL to a perturbed reference, varied
    # rewards)
    # through both engines: the trl engine's loss (TRL's model pass over a mixed TRL batch, the project's loss),
    # its gradients and its optimizer step are the lean engine's (fp32: loss 1e-6 relative, gradients 1e-4
    # relative / 1e-7 absolute; the step as in test_grpo's micro-batch test, 5% of lr).
    torch.manual_seed(0)
    settings = _settings(max_grad_norm=1e6)  # a clip that never binds: it would hide a scale between the two
    lean_model, processor = load_model_and_processor(saved)
    trl_model = copy.deepcopy(lean_model)
    ref = copy.deepcopy(lean_model)
    with torch.no_grad():  # a reference away from the policy, so the KL term and its gradient are not zero
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    lean = GRPOTrainer(lean_model, processor, settings, RewardConfig(), ref_model=ref, vision_lr_scale=1.0,
                       reward_fn=_varied_reward)
    chunks = [lean._rollout(part) for part in by_mode(_items(world))]
    assert [bool(c.ro.prompt.get("pixel_values") is not None) for c in chunks] == [True, False]
    assert all(c.adv.abs().sum() > 0 for c in chunks)

    engine = TRLEngine(trl_model, processor, settings, RewardConfig(), output_dir=saved.parent / "trl", seed=0,
                       vision_lr_scale=1.0)
    trainer = engine.build(_items(world), 0, 1)
    batch = _trl_batch(chunks, processor.tokenizer.pad_token_id)
    assert _image_runs(batch["num_images"]) == [(0, 12), (12, 24)]  # the mixed-batch pass runs

    before = {k: v.clone() for k, v in lean_model.state_dict().items()}
    stats, _ = lean.update([chunks])
    trl_model.train()
    engine.opt.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(trl_model, batch)
    loss.backward()
    assert stats[0]["kl"] > 1e-3
    assert loss.item() == pytest.approx(sum(st["loss"] for st in stats), rel=1e-6)
    expected = {n: p.grad for n, p in lean_model.named_parameters() if p.grad is not None}
    got = {n: p.grad for n, p in trl_model.named_parameters() if p.grad is not None}
    assert expected.keys() == got.keys() and any("visual" in n for n in got)
    torch.nn.utils.clip_grad_norm_(trl_model.parameters(), settings.max_grad_norm)  # the Trainer's clip, as lean's
    for name, g in expected.items():
        torch.testing.assert_close(got[name], g, rtol=1e-4, atol=1e-7, msg=lambda m, name=name: f"{name}: {m}")
    engine.opt.step()
    # Adam's first step is lr * g / (|g| + 1e-8): where a gradient is near 1e-8 the fp32 rounding of the two
    # backward passes moves the step by up to lr; where it is over 1e-6 the steps agree to 5% of lr
    compared = total = 0
    for name, p in trl_model.named_parameters():
        g = expected.get(name)
        if g is None:
            continue
        clear = g.abs() > 1e-6
        torch.testing.assert_close((p.detach() - before[name])[clear],
                                   (lean_model.state_dict()[name] - before[name])[clear], rtol=0, atol=5e-5,
                                   msg=lambda m, name=name: f"{name}: {m}")
        compared, total = compared + int(clear.sum()), total + clear.numel()
    assert compared > 0.5 * total


def test_advantages_are_the_papers_group_normalised_rewards(world, saved):
    # TRL hard-codes std + 1e-4; the engine's advantages are group_advantages with grpo.adv_eps on TRL's gathered
    # rewards, weighted by train.reward's weights (accuracy 0.9, format 0.1).
    model, processor = load_model_and_processor(saved)
    settings = _settings(kl_coef=0.0)
    engine = TRLEngine(model, processor, settings, RewardConfig(), output_dir=saved.parent / "trl", seed=0,
                       reward_fn=_varied_reward)
    items = _items(world)[:3]
    trainer = engine.build(items, 0, 1)
    rows = [trainer.train_dataset[i] for i in range(3) for _ in range(settings.group_size)]
    torch.manual_seed(0)
    out = trainer._generate_and_score_completions(rows)
    rewards = trainer._gathered_rewards
    weighted = 0.9 * rewards[:, 0] + 0.1 * rewards[:, 1]
    assert weighted.std() > 0
    torch.testing.assert_close(out["advantages"], group_advantages(weighted, settings.group_size, 1e-6))


def test_a_stage_of_two_steps_trains_and_logs_the_lean_engines_curves(world, saved):
    # Two GRPO steps of 2 updates each (rollout 4 prompts, update 2), prompts in the stream's order: curves
    # under the lean engine's names, the rate from the stage's schedule, the policy moved.
    model, processor = load_model_and_processor(saved)
    settings = _settings(rollout_batch_size=4, update_batch_size=2, lr_scheduler_type="linear")
    engine = TRLEngine(model, processor, settings, RewardConfig(), output_dir=saved.parent / "trl", seed=0,
                       reward_fn=_varied_reward)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    logged = []
    stream = PromptStream(_items(world, 4), seed=0)
    history = engine.train(stream, 2, on_log=lambda step, row: logged.append((step, row)), progress=False)
    assert [s for s, _ in logged] == [1, 2] and engine.step_count == 2
    for key in ("reward", "reward/accuracy", "reward/format", "response_length", "loss", "kl", "grad_norm", "lr"):
        assert key in history[0], key
    # linear to 0 over 4 optimizer steps; a row's rate is its last update's, as the lean engine logs it
    assert [row["lr"] for row in history] == pytest.approx([1e-3 * 3 / 4, 1e-3 * 1 / 4], abs=1e-12)
    fresh = PromptStream(_items(world, 4), seed=0)
    fresh.next(8)
    assert stream.state() == fresh.state()  # the stream stands after the prompts the stage took
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_knobs_the_trl_engine_cannot_honour_are_refused_by_name():
    with pytest.raises(ConfigError, match="grpo.micro_batch_tokens"):
        refuse(_settings(micro_batch_tokens=4096), "hf")
    with pytest.raises(ConfigError, match="train.rollout"):
        refuse(_settings(), "sglang")
    refuse(_settings(ppo_epochs=2, lr_scheduler_type="cosine", lr_warmup_ratio=0.1), "vllm_colocate")  # honoured


def test_a_base_reference_replaces_the_stage_start_copy_trl_builds(world, saved):
    # grpo.reference: base (TRL_GAPS "reference"): TRL loads its reference from the policy's own path; the engine
    # puts the given base model in its place, so the KL pulls towards the base, not the stage's start
    model, processor = load_model_and_processor(saved)
    base = copy.deepcopy(model)
    with torch.no_grad():
        for p in base.parameters():
            p.add_(0.01)
    engine = TRLEngine(model, processor, _settings(), RewardConfig(), output_dir=saved.parent / "trl", seed=0,
                       ref_model=base)
    trainer = engine.build(_items(world)[:3], 0, 1)
    ref = trainer.accelerator.unwrap_model(trainer.ref_model)
    assert ref is base
    plain = TRLEngine(copy.deepcopy(model), processor, _settings(), RewardConfig(), output_dir=saved.parent / "t2",
                      seed=0).build(_items(world)[:3], 0, 1)
    own = plain.accelerator.unwrap_model(plain.ref_model)
    assert all(torch.equal(a, b) for a, b in zip(own.state_dict().values(), model.state_dict().values()))


def test_zero3_is_refused_by_the_trl_engine_naming_the_launcher_config(world, saved):
    # the held-out passes and the checkpoint read whole weights on the main process; ZeRO-3 partitions them
    from types import SimpleNamespace

    model, processor = load_model_and_processor(saved)
    plugin = SimpleNamespace(deepspeed_config={"zero_optimization": {"stage": 3}})
    acc = SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=plugin), device=model.device, num_processes=1)
    with pytest.raises(ConfigError, match="^train.launcher.config_file: ZeRO-3"):
        TRLEngine(model, processor, _settings(), RewardConfig(), output_dir=saved.parent / "z3", seed=0,
                  accelerator=acc)
