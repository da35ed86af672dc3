"""The config's vocabulary: every key's allowed values, and the error that names a key. A leaf module, so that
config.py (which validates) and the typed sections in settings/ (which config.py builds) both read it without
importing each other."""

from __future__ import annotations

from typing import Any

PROFILES = ("tiny", "smoke", "paper")
CAPABILITIES = ("perc", "text", "vis")
MODEL_ROLES = ("policy", "filter_small", "filter_large")
# models.<role>.kind: tiny (built and pre-trained here), hub (a hub id or a local from_pretrained directory), lineage
# (a filter that is the policy's own pre-training run stopped early: `step`; issue 37's filters of one lineage)
MODEL_KINDS = ("tiny", "hub", "lineage")
OPTIMIZER_STATES = ("fresh", "carry")
DIFFICULTY_ORDERS = ("none", "easy_to_hard", "pass_rate")
BALANCES = ("none", "answer", "question")
METHODS = ("grpo", "sft")
ATTN_IMPLEMENTATIONS = ("sdpa", "sdpa_gqa", "eager", "flash_attention_2", "flash_attention_3")
COMPLETION_FORWARDS = ("lean", "transformers")
COMPILE_NEEDS_LEAN = "compiles the lean completion path; set train.completion_forward: lean"
CHECKPOINTING_NEEDS_TRANSFORMERS = ("checkpoints transformers' decoder layers, which the lean completion path does "
                                    "not call; set train.completion_forward: transformers")
# The lean engine under a launcher (config.check_engine before any work; the stage, under a launcher started by hand)
LEAN_ONE_PROCESS = ("the lean engine trains in one process; several processes or GPUs (accelerate, DeepSpeed) are "
                    "the trl engine's: use train.engine: trl, or train.launcher.kind: python")
PRECISIONS = ("auto", "fp32", "bf16")   # training/precision.py (auto: bf16 where the CPU has it natively)
# How hub benchmark answers are extracted and compared, recorded with every result (evaluation/report.py).
# lenient: the project's rules; vlmevalkit: VLMEvalKit's (rule, then LLM extraction where the rule fails, then
# each benchmark's own comparison; evaluation/vlmevalkit.py), with evaluation.split_think as its SPLIT_THINK.
EVAL_PROTOCOLS = ("lenient", "vlmevalkit")
# What a trained model is asked on hub benchmarks: the training prompt (its answer format) or the bare question.
EVAL_PROMPTS = ("reasoning", "plain")
WEIGHT_DTYPES = ("float32", "bfloat16")
ENGINES = ("lean", "trl")   # training/grpo.py (one process, the CPU's) | training/trl_engine.py (TRL's GRPOTrainer)
ROLLOUTS = ("hf", "vllm_colocate", "vllm_server")
LAUNCHERS = ("python", "accelerate")
# evaluation.benchmarks' vocabulary: the world's held-out splits (evaluation/evaluator.py's TINY_BENCHMARKS) and
# the hub adapters (evaluation/benchmarks' ADAPTERS); tests/settings/test_sections.py checks both registries match.
TINY_BENCHMARK_NAMES = ("tiny_perception", "tiny_vis_math", "tiny_text_math", "tiny_vis_math_shuffled")
HUB_BENCHMARK_NAMES = ("mathvista", "mathvision", "mathverse", "wemath", "aokvqa", "realworldqa", "mmstar", "pope",
                       "hallusionbench", "logicvista")

WORLD_VERSIONS = (1, 2)   # world/scene.py's VERSIONS: the first world, issue 37's second (docs/miniature.md)


class ConfigError(ValueError):
    """A config value that cannot work; the message starts with the dotted key."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


def check_choice(key: str, value: Any, allowed: tuple[str, ...]) -> Any:
    if value not in allowed:
        raise ConfigError(key, f"expected one of {', '.join(allowed)}, got {value!r}")
    return value


def benchmark_key(name: str) -> str:
    """A benchmark name as it is matched (check_params and evaluation/benchmarks.get_adapter): any case, '-', '_'
    and ' ' ignored."""
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")
