"""The project's GRPO loop on a tiny model: a step learns from rewards, streams resume exactly."""

import copy

import pytest
import torch

from capcurriculum.config import ConfigError
from capcurriculum.sampling.rewards import RewardConfig
from capcurriculum.sampling.world_data import WorldData
from capcurriculum.settings.grpo import GRPOSettings
from capcurriculum.training.grpo import GRPOTrainer, PromptStream, by_mode
from capcurriculum.training.switches import TrainSwitches


def _settings(**kw):
    base = {"group_size": 4, "max_response_length": 10, "rollout_batch_size": 4, "update_batch_size": 2,
                "learning_rate": 1e-3, "kl_coef": 0.01}
    return GRPOSettings(**{**base, **kw})


def test_a_step_updates_the_policy_and_reports_its_parts(world, processor, model):
    torch.manual_seed(0)
    ref = type(model)(model.config)
    ref.load_state_dict(model.state_dict())
    items = WorldData(*world).items("vis_math", "vis_math", "pretrain", limit=8)
    trainer = GRPOTrainer(model, processor, _settings(), RewardConfig(), ref_model=ref)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    row = trainer.step(items[:4])
    for key in ("reward", "reward/accuracy", "reward/format", "kl", "clip_frac", "grad_norm",
                "response_length", "time/rollout_s", "time/update_s"):
        assert key in row, key
    assert 0 <= row["reward"] <= 1 and row["response_length"] > 0
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any("language_model" in k for k in changed)
    # two updates per rollout: the reference stays the stage's start model
    assert all(torch.equal(v, before[k]) for k, v in ref.state_dict().items())


def test_a_mixed_batch_of_image_and_text_prompts_trains(world, processor, model):
    data = WorldData(*world)
    items = data.items("vis_math", "vis_math", "pretrain", limit=2) + data.items("text_math", "text_math", "pretrain", limit=2)
    trainer = GRPOTrainer(model, processor, _settings(update_batch_size=4, kl_coef=0.0), RewardConfig())
    row = trainer.step(items)
    assert "kl" not in row and row["response_length"] > 0


def test_prompt_stream_resumes_at_the_exact_position():
    items = list(range(7))
    a = PromptStream(items, seed=3)
    first = a.next(5) + a.next(5)  # crosses an epoch
    state = a.state()
    rest = a.next(9)
    b = PromptStream(items, seed=3)
    b.load_state(state)
    assert b.next(9) == rest
    assert sorted(first[:7]) == items  # an epoch is a permutation


def test_the_reference_goes_beside_the_policy_in_its_dtype_frozen(processor, model):
    # Issue 41, crash 2: a float32 reference beside a policy computing elsewhere. The reference sits on the
    # policy's device, in its weights' dtype (bf16 here), in eval mode without gradients.
    ref = type(model)(model.config)
    ref.load_state_dict(model.state_dict())
    trainer = GRPOTrainer(model.to(torch.bfloat16), processor, _settings(update_batch_size=4), RewardConfig(),
                          ref_model=ref)
    assert trainer.ref_model is ref
    params = list(ref.parameters())
    assert {p.device for p in params} == {model.device}
    assert {p.dtype for p in params if p.is_floating_point()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in params) and not ref.training


def test_the_reference_dtype_follows_deepspeeds_precision():
    from types import SimpleNamespace

    from capcurriculum.training.grpo import reference_dtype

    def acc(config, mixed="no"):
        return SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(deepspeed_config=config)),
                               mixed_precision=mixed)

    assert reference_dtype(None) is torch.float32  # the CPU loop: fp32 weights, autocast lowers the matmuls
    assert reference_dtype(SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=None))) is torch.float32
    assert reference_dtype(acc({"bf16": {"enabled": "auto"}}, "bf16")) is torch.bfloat16  # conf/deepspeed/*.json
    assert reference_dtype(acc({"bf16": {"enabled": "auto"}}, "no")) is torch.float32
    assert reference_dtype(acc({"bf16": {"enabled": True}})) is torch.bfloat16
    assert reference_dtype(acc({"fp16": {"enabled": True}})) is torch.float16


def _varied_reward(text, item):  # varies within a group, so every group has an advantage to push
    r = (len(text) % 3) / 2
    return {"reward": r, "accuracy": r, "format": 0.0}


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _mixed_chunks(world, processor, model, settings):
    """A rolled-out mini-batch of image and text prompts (two chunks) and the trainer that rolled it out."""
    torch.manual_seed(0)
    data = WorldData(*world)
    items = data.items("vis_math", "vis_math", "pretrain", limit=3) + data.items("text_math", "text_math", "pretrain", limit=3)
    ref = copy.deepcopy(model)
    trainer = GRPOTrainer(model, processor, settings, RewardConfig(), ref_model=ref, vision_lr_scale=1.0,
                          reward_fn=_varied_reward)
    chunks = [trainer._rollout(part) for part in by_mode(items)]
    assert all(c.adv.abs().sum() > 0 for c in chunks)
    return trainer, ref, chunks


def test_micro_batches_under_a_token_budget_take_the_unsplit_step(world, processor, model):
    # grpo.micro_batch_tokens splits the update into micro-batches of whole prompts under the budget; each one's
    # loss over the whole mini-batch's token count, so the summed loss, the gradient and the step are the
    # unsplit ones (fp32: loss to 1e-6 relative or 1e-7 absolute, gradients to 1e-4 relative / 1e-7 absolute, the step to 5% of lr where
    # the gradient determines it).
    settings = _settings(rollout_batch_size=6, update_batch_size=6, kl_coef=0.05)
    twin = copy.deepcopy(model)
    whole, ref, chunks = _mixed_chunks(world, processor, model, settings)
    budget = max(c.ro.prompt_len + 4 * c.ro.completion_ids.shape[1] for c in chunks)  # one prompt of the longest
    parts = [part for c in chunks for part in c.micro_batches(budget)]
    assert len(parts) > len(chunks) + 2
    for part in parts:
        P, G, C = len(part.ro.items), part.ro.group_size, part.ro.completion_ids.shape[1]
        assert P * (part.ro.prompt_len + G * C) <= budget
        assert part.adv.shape[0] == part.ref_logp.shape[0] == part.ro.completion_ids.shape[0] == P * G
    split = GRPOTrainer(twin, processor, _settings(rollout_batch_size=6, update_batch_size=6, kl_coef=0.05,
                                                   micro_batch_tokens=budget),
                        RewardConfig(), ref_model=ref, vision_lr_scale=1.0, reward_fn=_varied_reward)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats_whole, _ = whole.update([chunks])
    stats_split, _ = split.update([chunks])
    assert len(stats_split) == len(parts) and len(stats_whole) == len(chunks)
    for key in ("loss", "pg_loss", "kl"):
        assert sum(st[key] for st in stats_split) == pytest.approx(sum(st[key] for st in stats_whole), rel=1e-6, abs=1e-7)
    expected, got = _grads(model), _grads(twin)
    assert expected.keys() == got.keys() and any("visual" in n for n in expected)
    for name, g in expected.items():
        torch.testing.assert_close(got[name], g, rtol=1e-4, atol=1e-7, msg=name)
    moved = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert moved
    # Adam's first step is lr * g / (|g| + eps): where |g| is near eps or rounds to either sign (fp32 rounding differs
    # between processors; a whole lr apart seen on one), the step is not determined by the gradient, so the steps are
    # compared where |g| > 1e-6 (there eps moves it by < 1% of lr); weights without a gradient do not move
    after_whole, after_split = model.state_dict(), twin.state_dict()
    for k, v in after_split.items():
        step_split, step_whole = v - before[k], after_whole[k] - before[k]
        g = expected.get(k)
        if g is None:
            assert torch.equal(step_split, step_whole), k
            continue
        sure = g.abs() > 1e-6
        torch.testing.assert_close(step_split[sure], step_whole[sure], rtol=0, atol=5e-5, msg=k)


def test_gradient_checkpointing_gives_the_same_gradient(world, processor, model):
    # train.gradient_checkpointing: each decoder layer runs again in the backward (counted), and the update's
    # loss and gradient are those without it (fp32: loss to 1e-6 relative or 1e-7 absolute, 1e-4 relative / 1e-7 absolute gradients).
    twin = copy.deepcopy(model)
    plain, ref, chunks = _mixed_chunks(world, processor, model, _settings(rollout_batch_size=6, update_batch_size=6))
    checkpointed = GRPOTrainer(twin, processor, _settings(rollout_batch_size=6, update_batch_size=6), RewardConfig(),
                               ref_model=ref, vision_lr_scale=1.0, reward_fn=_varied_reward,
                               switches=TrainSwitches(gradient_checkpointing=True))
    calls = {"plain": 0, "checkpointed": 0}  # forward calls of the first decoder layer
    for name, m in (("plain", model), ("checkpointed", twin)):
        layer = m.model.language_model.layers[0]

        def counted(*args, _forward=layer.forward, _name=name, **kwargs):
            calls[_name] += 1
            return _forward(*args, **kwargs)

        layer.forward = counted
    stats_plain, _ = plain.update([chunks])
    stats_ckpt, _ = checkpointed.update([chunks])
    assert sum(st["loss"] for st in stats_ckpt) == pytest.approx(sum(st["loss"] for st in stats_plain), rel=1e-6, abs=1e-7)
    expected, got = _grads(model), _grads(twin)
    assert expected.keys() == got.keys() and any("visual" in n for n in expected)
    for name, g in expected.items():
        torch.testing.assert_close(got[name], g, rtol=1e-4, atol=1e-7, msg=name)
    # one whole-sequence forward a chunk, run again in the backward (plain: the prompt, then the completions)
    assert calls["checkpointed"] == 2 * len(chunks) and calls["plain"] == 2 * len(chunks)


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_the_learning_rate_schedule_is_transformers_own(schedule):
    import transformers

    from capcurriculum.training.grpo import schedule_factor

    total, ratio = 8, 0.25
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    make = getattr(transformers, f"get_{schedule}_schedule_with_warmup")
    sched = make(opt, num_warmup_steps=2, **({} if schedule == "constant" else {"num_training_steps": total}))
    expected = []
    for _ in range(total):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert [schedule_factor(i, total, schedule, ratio) for i in range(total)] == pytest.approx(expected)


def test_the_lean_engine_follows_the_learning_rate_schedule(world, processor, model):
    # grpo.lr_scheduler_type / lr_warmup_ratio: 2 GRPO steps of 2 updates; warm-up ceil(4 x 0.25) = 1 update at
    # rate 0, then linear to 0: the updates' rates are 0, 1, 2/3, 1/3 of the configured one (each step logs its last)
    items = WorldData(*world).items("text_math", "text_math", "pretrain", limit=8)
    settings = _settings(lr_scheduler_type="linear", lr_warmup_ratio=0.25, kl_coef=0.0)
    trainer = GRPOTrainer(model, processor, settings, RewardConfig(), reward_fn=_varied_reward)
    history = trainer.train(PromptStream(items, seed=0), steps=2, progress=False)
    assert [row["lr"] for row in history] == pytest.approx([1e-3, 1e-3 / 3])


def test_knobs_the_lean_engine_cannot_honour_are_refused_naming_the_key_and_the_engine(processor, model):
    with pytest.raises(ConfigError, match="^grpo.ppo_epochs: the lean engine makes one pass"):
        GRPOTrainer(model, processor, _settings(ppo_epochs=2), RewardConfig())
