"""Mixed precision for the CPU (and any device without an engine of its own): `precision: bf16` runs the
forward passes under `torch.autocast`, so matrix products run in bfloat16 while the weights, their
gradients and the optimizer state stay float32. `fp32` is plain float32. The GPU path keeps accelerate's
`mixed_precision` (conf/accelerate/*.yaml) and leaves this at fp32.

`auto` (the tiny profile's default) picks bf16 only where the processor computes it natively, because the
two cases are an order of magnitude apart in opposite directions (bench/precision.py):
- with AVX512-BF16 or AMX (Zen 4/5, Sapphire Rapids and later) oneDNN runs bfloat16 products natively and a
  128-wide linear is 3-5x faster than in float32;
- without them (AVX2-only: Zen 3 and older, Intel consumer parts without AVX-512) ATen emulates bfloat16:
  a 256x512 @ 512x512 product took 110 ms against 2.2 ms in float32 on a Zen 3, and a GRPO step ~10x longer.
The decision reads facts, not timings, so one machine always makes the same choice (a timed probe near a
tie could flip between runs and change the numbers): the processor's bfloat16 instructions, ATen's kernel
set (`ATEN_CPU_CAPABILITY` caps it) and whether oneDNN takes bfloat16 products (`ONEDNN_MAX_CPU_ISA` caps it).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass

import torch

from capcurriculum.config import PRECISIONS, check_choice

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16}

# /proc/cpuinfo flags of instructions that compute bfloat16 dot products: x86's AVX512-BF16 and AMX-BF16,
# ARM's BF16 (its "Features" line).
X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
ARM_BF16_FLAGS = ("bf16",)
# oneDNN's instruction-set names below AVX512_CORE_BF16, its first with native bfloat16 products: with
# ONEDNN_MAX_CPU_ISA at one of these, oneDNN emulates bfloat16 even on a processor that has it.
ONEDNN_ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


# What a caption-SFT stage (curriculum.method.<set>: sft) runs at: the pre-training loop, float32 throughout.
SFT_PRECISION = "caption SFT runs the pre-training loop in float32"


def check_precision(value: str, key: str = "precision") -> str:
    return check_choice(key, value, PRECISIONS)


@dataclass(frozen=True)
class CpuBf16:
    """What decides whether a bfloat16 matrix product runs natively on this CPU."""

    flags: tuple[str, ...]       # the processor's bfloat16 instructions (/proc/cpuinfo)
    aten: str                    # torch.backends.cpu.get_cpu_capability(): ATen's kernel set
    onednn: bool                 # oneDNN takes bfloat16 products (torch.ops.mkldnn._is_mkldnn_bf16_supported)
    onednn_max_isa: str | None   # ONEDNN_MAX_CPU_ISA (or its old name DNNL_MAX_CPU_ISA), if set

    @classmethod
    def probe(cls) -> CpuBf16:
        from capcurriculum.runtime import cpu_info

        info = cpu_info()
        present = set((info.get("flags", "") + " " + info.get("Features", "")).split())
        isa = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
        return cls(flags=tuple(f for f in (*X86_BF16_FLAGS, *ARM_BF16_FLAGS) if f in present),
                   aten=torch.backends.cpu.get_cpu_capability(),
                   onednn=bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()), onednn_max_isa=isa)


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a node runs at, and why: logged at node start, tagged in MLflow, kept in the run record."""

    precision: str               # fp32 | bf16
    asked: str                   # train.precision as configured: auto | fp32 | bf16
    reason: str

    def record(self) -> dict[str, str]:
        return asdict(self)


def choose_cpu_precision(cpu: CpuBf16) -> tuple[str, str]:
    """`auto` on a CPU: (precision, reason)."""
    x86 = [f for f in cpu.flags if f in X86_BF16_FLAGS]
    if not cpu.flags:
        return "fp32", (f"no bfloat16 instructions on this processor (ATen {cpu.aten}): "
                        "bfloat16 products would be emulated, ~10x slower a GRPO step")
    if cpu.onednn_max_isa and cpu.onednn_max_isa.upper() in ONEDNN_ISAS_WITHOUT_BF16:
        return "fp32", f"ONEDNN_MAX_CPU_ISA={cpu.onednn_max_isa} keeps oneDNN from the processor's bfloat16 instructions"
    if not cpu.onednn:
        return "fp32", "oneDNN does not take bfloat16 products here (torch.ops.mkldnn._is_mkldnn_bf16_supported)"
    if x86 and not cpu.aten.startswith("AVX512"):
        return "fp32", f"ATen's kernels are capped at {cpu.aten} (ATEN_CPU_CAPABILITY) below the processor's AVX-512"
    return "bf16", f"native bfloat16 ({', '.join(cpu.flags)}; ATen {cpu.aten}, oneDNN bf16)"


def resolve_precision(value: str, device: torch.device | str = "cpu",
                      key: str = "train.precision") -> PrecisionChoice:
    """`value` (auto | fp32 | bf16) as what runs on `device`. An explicit value always wins."""
    check_precision(value, key)
    if value != "auto":
        return PrecisionChoice(value, value, f"{key} = {value}")
    device = torch.device(device)
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
        return PrecisionChoice("bf16" if native else "fp32", value,
                               f"CUDA device {'with' if native else 'without'} bfloat16 support")
    if device.type != "cpu":
        return PrecisionChoice("fp32", value, f"no bfloat16 rule for a {device.type} device")
    precision, reason = choose_cpu_precision(CpuBf16.probe())
    return PrecisionChoice(precision, value, reason)


def autocast(precision: str, device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """The context a forward pass runs in at `precision` (fp32 | bf16, resolved) on `device`."""
    if precision not in AUTOCAST_DTYPES:
        raise ValueError(f"precision: expected fp32 or bf16 (auto is resolved by resolve_precision), got {precision!r}")
    dtype = AUTOCAST_DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
