"""The project's GRPO loop on a tiny model: a step learns from rewards, streams resume exactly."""

import torch

from capcurriculum.training.base import WorldData
from capcurriculum.training.grpo import GRPOTrainer, PromptStream
from capcurriculum.training.grpo_config import GRPOSettings
from capcurriculum.training.rewards import RewardConfig


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


class _DeepSpeedLike:
    """What GRPOTrainer reads of an accelerate.Accelerator under DeepSpeed, on a device the test can tell apart
    from the CPU (meta): prepare() hands back the policy in bf16, as DeepSpeed's bf16 engine holds it."""

    device, num_processes, process_index, mixed_precision = torch.device("meta"), 1, 0, "bf16"

    def __init__(self):
        from types import SimpleNamespace

        self.state = SimpleNamespace(deepspeed_plugin=SimpleNamespace(deepspeed_config={"bf16": {"enabled": "auto"}}))

    def prepare(self, model, opt):
        return model.to(torch.bfloat16), opt

    def unwrap_model(self, engine):
        return engine


def test_under_deepspeed_the_reference_goes_to_the_accelerator_in_the_policys_dtype(processor, model):
    # Issue 41, crash 2: the reference stayed on the CPU in float32 while the policy and its rollouts ran on
    # the accelerator in bf16. Any accelerator: the reference sits on its device, in the engine's dtype, frozen.
    ref = type(model)(model.config)
    ref.load_state_dict(model.state_dict())
    trainer = GRPOTrainer(model, processor, _settings(update_batch_size=4), RewardConfig(), ref_model=ref,
                          accelerator=_DeepSpeedLike())
    assert trainer.deepspeed and trainer.ref_model is ref
    params = list(ref.parameters())
    assert {p.device.type for p in params} == {"meta"}
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
