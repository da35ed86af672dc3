"""precision: bf16 — forward passes under autocast, float32 weights and optimizer; attention in the
weights' dtype on the lean path. auto — bf16 only where the processor computes it natively."""

import pytest
import torch

from capcurriculum.sampling.rewards import RewardConfig
from capcurriculum.sampling.rollout import completion_logprobs, rollout
from capcurriculum.sampling.world_data import WorldData
from capcurriculum.settings.grpo import GRPOSettings
from capcurriculum.training import precision as prec
from capcurriculum.training.grpo import GRPOTrainer
from capcurriculum.training.switches import TrainSwitches
from capcurriculum.training.precision import (
    CpuBf16,
    autocast,
    check_precision,
    choose_cpu_precision,
    resolve_precision,
)


def test_autocast_runs_linears_in_bf16_and_fp32_leaves_them():
    lin = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    with autocast("bf16"):
        assert lin(x).dtype == torch.bfloat16
    with autocast("fp32"):
        assert lin(x).dtype == torch.float32


def test_an_unknown_precision_names_the_key():
    with pytest.raises(ValueError, match=r"train\.precision: expected one of auto, fp32, bf16, got 'fp16'"):
        check_precision("fp16", "train.precision")


def test_autocast_takes_only_a_resolved_precision():
    with pytest.raises(ValueError, match="auto is resolved by resolve_precision"):
        autocast("auto")


ZEN4 = CpuBf16(flags=("avx512_bf16",), aten="AVX512", onednn=True, onednn_max_isa=None)
SAPPHIRE_RAPIDS = CpuBf16(flags=("avx512_bf16", "amx_bf16"), aten="AVX512", onednn=True, onednn_max_isa=None)
GRAVITON3 = CpuBf16(flags=("bf16",), aten="SVE256", onednn=True, onednn_max_isa=None)


@pytest.mark.parametrize("cpu, want, why", [
    (ZEN4, "bf16", "native bfloat16 (avx512_bf16"),
    (SAPPHIRE_RAPIDS, "bf16", "avx512_bf16, amx_bf16"),
    (GRAVITON3, "bf16", "native bfloat16 (bf16; ATen SVE256"),
    # Zen 3, Intel client parts: AVX2 and no bfloat16 instructions (oneDNN says no either)
    (CpuBf16(flags=(), aten="AVX2", onednn=False, onednn_max_isa=None), "fp32", "no bfloat16 instructions"),
    # Skylake-X / Cascade Lake: AVX-512 without BF16, where oneDNN takes bfloat16 but converts it
    (CpuBf16(flags=(), aten="AVX512", onednn=True, onednn_max_isa=None), "fp32", "no bfloat16 instructions"),
    # a native processor under ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 (the reproduction)
    (CpuBf16(flags=("avx512_bf16",), aten="AVX2", onednn=False, onednn_max_isa="AVX2"), "fp32", "ONEDNN_MAX_CPU_ISA=AVX2"),
    (CpuBf16(flags=("avx512_bf16",), aten="AVX512", onednn=True, onednn_max_isa="avx512_core"), "fp32",
     "ONEDNN_MAX_CPU_ISA=avx512_core"),
    (CpuBf16(flags=("avx512_bf16",), aten="AVX512", onednn=False, onednn_max_isa=None), "fp32", "oneDNN does not"),
    (CpuBf16(flags=("avx512_bf16",), aten="AVX2", onednn=True, onednn_max_isa=None), "fp32", "capped at AVX2"),
    (CpuBf16(flags=("avx512_bf16",), aten="AVX512", onednn=True, onednn_max_isa="AVX512_CORE_AMX"), "bf16", "native"),
])
def test_auto_picks_bf16_only_where_the_processor_computes_it_natively(cpu, want, why):
    precision, reason = choose_cpu_precision(cpu)
    assert precision == want and why in reason


def test_an_explicit_precision_wins_over_the_processor(monkeypatch):
    monkeypatch.setattr(CpuBf16, "probe", classmethod(lambda cls: ZEN4))
    assert resolve_precision("fp32").precision == "fp32"
    monkeypatch.setattr(CpuBf16, "probe", classmethod(lambda cls: CpuBf16((), "AVX2", False, None)))
    choice = resolve_precision("bf16")
    assert (choice.precision, choice.asked, choice.reason) == ("bf16", "bf16", "train.precision = bf16")
    auto = resolve_precision("auto")
    assert (auto.precision, auto.asked) == ("fp32", "auto") and "no bfloat16 instructions" in auto.reason


def test_the_probe_reads_the_processor_flags_and_the_isa_caps(monkeypatch):
    monkeypatch.setattr("capcurriculum.runtime.cpu_info",
                        lambda: {"flags": "fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16"})
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    cpu = CpuBf16.probe()
    assert cpu.flags == ("avx512_bf16", "amx_bf16") and cpu.onednn_max_isa == "AVX2"
    assert cpu.aten == torch.backends.cpu.get_cpu_capability()
    assert choose_cpu_precision(cpu)[0] == "fp32"
    monkeypatch.setattr("capcurriculum.runtime.cpu_info", lambda: {"Features": "fp asimd bf16 sve"})
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert CpuBf16.probe().flags == ("bf16",)


def test_the_trainer_runs_at_what_auto_resolves_to(monkeypatch, processor, model):
    settings = GRPOSettings(group_size=2, rollout_batch_size=2, update_batch_size=2)
    for cpu, want in ((ZEN4, "bf16"), (CpuBf16((), "AVX2", False, None), "fp32")):
        monkeypatch.setattr(CpuBf16, "probe", classmethod(lambda cls, cpu=cpu: cpu))
        trainer = GRPOTrainer(model, processor, settings, RewardConfig(), switches=TrainSwitches(precision="auto"))
        assert trainer.precision == want and trainer.precision_choice.asked == "auto"
    assert prec.AUTOCAST_DTYPES[trainer.precision] is None


@pytest.mark.parametrize("mode, name", [("vis_math", "vis_math"), ("text_math", "text_math")])
def test_bf16_lean_scoring_stays_near_fp32_and_its_gradient_is_float32(world, processor, model, mode, name):
    items = WorldData(*world).items(name, mode, "pretrain", limit=3)
    torch.manual_seed(0)
    ro = rollout(model, processor, items, group_size=4, max_new_tokens=12, lean=True)
    m = ro.completion_mask.bool()
    exact = completion_logprobs(model, ro, lean=True).detach()
    with autocast("bf16"):
        logp = completion_logprobs(model, ro, lean=True)
    assert logp.dtype == torch.float32
    # bf16 products keep ~3 significant digits: close to, not equal to, the fp32 log-probs
    assert 0 < (logp.detach() - exact)[m].abs().max() < 0.1
    logp[m].sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_bf16_lean_decoding_runs_attention_in_the_weights_dtype(world, processor, model):
    from capcurriculum.models import lean

    items = WorldData(*world).items("vis_math", "vis_math", "pretrain", limit=2)
    seen = []
    attention = lean.shared_prefix_attention

    def spy(q, pk, pv, bias, k, v, *args):
        seen.append(({t.dtype for t in (q, pk, pv, bias, k, v)}, torch.is_autocast_enabled("cpu")))
        return attention(q, pk, pv, bias, k, v, *args)

    torch.manual_seed(0)
    with autocast("bf16"), pytest.MonkeyPatch.context() as mp:
        mp.setattr(lean, "shared_prefix_attention", spy)
        ro = rollout(model, processor, items, group_size=2, max_new_tokens=6, lean=True, ignore_eos=True)
    assert ro.completion_ids.shape == (4, 6)
    # 5 decode steps x 2 layers, autocast off inside, all in float32
    assert seen == [({torch.float32}, False)] * (5 * model.config.text_config.num_hidden_layers)


def test_a_bf16_grpo_step_keeps_float32_weights_and_moves_them(world, processor, model):
    torch.manual_seed(0)
    items = WorldData(*world).items("vis_math", "vis_math", "pretrain", limit=4)
    settings = GRPOSettings(group_size=4, max_response_length=10, rollout_batch_size=4, update_batch_size=4,
                            learning_rate=1e-3, kl_coef=0.0)
    trainer = GRPOTrainer(model, processor, settings, RewardConfig(),
                          switches=TrainSwitches(lean=True, precision="bf16"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    row = trainer.step(items)
    assert all(v.dtype == torch.float32 for v in model.state_dict().values())
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items() if "language_model" in k)
    assert torch.isfinite(torch.tensor(row["loss"])) and row["response_length"] > 0
