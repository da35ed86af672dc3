"""Tiny stand-ins in the paper models' architectures, built offline, for a paper-shaped dry run.

The paper runs Qwen3-VL-8B (policy), Qwen2.5-VL-7B / -32B (the differential filter) and Qwen2.5-72B
(the QA writer, a Qwen2-architecture text LLM). A dry run on a CPU swaps each for a random-weight
model of the same class, so every node loads, prompts and generates through the same code paths:

    tok = train_tokenizer(texts, vocab_size=420)
    build_standin("qwen2_5_vl", tok, "standins/filter_small", seed=1)   # Qwen2_5_VLForConditionalGeneration
    build_standin("qwen2", tok, "standins/qa_writer", seed=2)           # Qwen2ForCausalLM
    build_standin("qwen3_vl", tok, "standins/policy", seed=0)           # models/tiny.py's Qwen3-VL

Each is a plain `from_pretrained` directory (safetensors, config, generation config, tokenizer with
the project's chat template, and for the VL ones the image and video processors), written by
`save_pretrained_dir`. They share the project's byte-level BPE (models/tokenizer.py), whose special
tokens are Qwen's, so the VL processors place image tokens exactly as the real checkpoints' do.
The weights are random: the stand-ins prove the plumbing, not the paper's numbers.

Constraints kept from the real architectures (DESIGN.md section 9 for Qwen3-VL):
- Qwen2.5-VL: `mrope_section` sums to head_dim / 2 (the paper model's [16, 24, 24] of 64, scaled);
  the vision tower's windowed attention needs `window_size` a multiple of patch * merge, and
  `fullatt_block_indexes` must name vision layers that exist; the image processor's pixel budget
  keeps a scene at `image_size` (a multiple of patch * merge = 28).
- head_dim >= 32 everywhere (vLLM's attention kernels refuse less).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from capcurriculum.models.tiny import build_processor, build_tiny_model, save_pretrained_dir, tiny_config
from capcurriculum.models.tokenizer import special_token_ids

# Qwen2.5-VL's geometry (its preprocessor_config.json): 14 px patches merged 2x2, CLIP normalisation.
QWEN25_PATCH_SIZE = 14
QWEN25_MERGE_SIZE = 2
QWEN25_TEMPORAL_PATCH_SIZE = 2
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

ARCHITECTURES = ("qwen3_vl", "qwen2_5_vl", "qwen2")


def qwen25_mrope_section(head_dim: int) -> list[int]:
    """Qwen2.5-VL's [16, 24, 24] (of 64) scaled to head_dim / 2: 32 -> [4, 6, 6], 64 -> [8, 12, 12]."""
    if head_dim % 2:
        raise ValueError(f"head_dim={head_dim} must be even")
    half = head_dim // 2
    hw = round(half * 24 / 64)
    return [half - 2 * hw, hw, hw]


def _text_checks(hidden_size: int, num_heads: int, num_kv_heads: int) -> list[str]:
    problems = []
    if hidden_size % num_heads:
        problems.append(f"hidden_size={hidden_size} is not a multiple of num_heads={num_heads}")
    elif hidden_size // num_heads < 32:
        problems.append(f"head_dim={hidden_size // num_heads} < 32 (vLLM's attention kernels refuse it)")
    if num_heads % num_kv_heads:
        problems.append(f"num_heads={num_heads} is not a multiple of num_kv_heads={num_kv_heads}")
    return problems


def _text_common(tokenizer, vocab_size, hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size,
                 max_position_embeddings, rms_norm_eps, initializer_range, tie_word_embeddings) -> dict:
    ids = special_token_ids(tokenizer)
    vocab = len(tokenizer) if vocab_size is None else int(vocab_size)
    if vocab < len(tokenizer):
        raise ValueError(f"vocab_size={vocab} is smaller than the tokenizer ({len(tokenizer)} tokens)")
    return {
        "vocab_size": vocab,
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": max_position_embeddings,
        "initializer_range": initializer_range,
        "rms_norm_eps": rms_norm_eps,
        "use_cache": True,
        "attention_dropout": 0.0,
        "bos_token_id": ids["bos_token_id"],
        "eos_token_id": ids["eos_token_id"],
        "pad_token_id": ids["pad_token_id"],
        "tie_word_embeddings": tie_word_embeddings,
        "dtype": "float32",
    }


def qwen2_5_vl_config(
    tokenizer,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 512,
    max_position_embeddings: int = 4096,
    rope_theta: float = 1000000.0,
    rms_norm_eps: float = 1e-6,
    tie_word_embeddings: bool = False,
    vision_depth: int = 2,
    vision_hidden: int = 64,
    vision_heads: int = 2,
    vision_intermediate: int = 128,
    window_size: int = 56,
    fullatt_block_indexes: Sequence[int] = (1,),
    initializer_range: float = 0.02,
    vocab_size: int | None = None,
) -> Qwen2_5_VLConfig:
    """A small Qwen2_5_VLConfig whose token ids come from `tokenizer` (keywords as a params.yaml dict holds them)."""
    problems = _text_checks(hidden_size, num_heads, num_kv_heads)
    if vision_hidden % vision_heads or vision_hidden // vision_heads < 32:
        problems.append(f"vision head dim {vision_hidden}/{vision_heads} must be a whole number >= 32")
    unit = QWEN25_PATCH_SIZE * QWEN25_MERGE_SIZE
    if window_size <= 0 or window_size % unit:
        problems.append(f"window_size={window_size} must be a positive multiple of patch*merge={unit}")
    full = [int(i) for i in fullatt_block_indexes]
    if any(not 0 <= i < vision_depth for i in full):
        problems.append(f"fullatt_block_indexes={full} must name vision layers in [0, {vision_depth})")
    if problems:
        raise ValueError("stand-in Qwen2.5-VL config: " + "; ".join(problems))
    ids = special_token_ids(tokenizer)
    text_config = _text_common(tokenizer, vocab_size, hidden_size, num_layers, num_heads, num_kv_heads,
                               intermediate_size, max_position_embeddings, rms_norm_eps, initializer_range,
                               tie_word_embeddings)
    text_config["rope_parameters"] = {"rope_type": "default", "rope_theta": float(rope_theta),
                                      "mrope_section": qwen25_mrope_section(hidden_size // num_heads)}
    vision_config = {
        "depth": vision_depth,
        "hidden_size": vision_hidden,
        "hidden_act": "silu",
        "intermediate_size": vision_intermediate,
        "num_heads": vision_heads,
        "in_channels": 3,
        "patch_size": QWEN25_PATCH_SIZE,
        "spatial_merge_size": QWEN25_MERGE_SIZE,
        "temporal_patch_size": QWEN25_TEMPORAL_PATCH_SIZE,
        "window_size": window_size,
        "fullatt_block_indexes": full,
        "out_hidden_size": hidden_size,
        "initializer_range": initializer_range,
        "dtype": "float32",
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["image_token_id"],
        video_token_id=ids["video_token_id"],
        vision_start_token_id=ids["vision_start_token_id"],
        vision_end_token_id=ids["vision_end_token_id"],
        tie_word_embeddings=tie_word_embeddings,
        dtype="float32",
    )


def qwen2_5_vl_processor(tokenizer, image_size: int = 112) -> Qwen2_5_VLProcessor:
    """A Qwen2.5-VL processor whose pixel budget keeps an `image_size` square image at that size
    (112 px -> 8x8 patches of 14 -> 16 image tokens); larger images are scaled down to it."""
    unit = QWEN25_PATCH_SIZE * QWEN25_MERGE_SIZE
    if image_size <= 0 or image_size % unit:
        raise ValueError(f"image_size={image_size} must be a positive multiple of patch*merge = {unit}")
    common = {
        "patch_size": QWEN25_PATCH_SIZE,
        "temporal_patch_size": QWEN25_TEMPORAL_PATCH_SIZE,
        "merge_size": QWEN25_MERGE_SIZE,
        "image_mean": list(CLIP_MEAN),
        "image_std": list(CLIP_STD),
        "do_resize": True,
        "do_rescale": True,
        "do_normalize": True,
        "do_convert_rgb": True,
    }
    image_processor = Qwen2VLImageProcessor(size={"shortest_edge": unit * unit,
                                                  "longest_edge": image_size * image_size}, **common)
    video_processor = Qwen2VLVideoProcessor(
        size={"shortest_edge": unit * unit * QWEN25_TEMPORAL_PATCH_SIZE,
              "longest_edge": image_size * image_size * QWEN25_TEMPORAL_PATCH_SIZE * 8}, **common)
    return Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               video_processor=video_processor, chat_template=tokenizer.chat_template)


def qwen2_config(
    tokenizer,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 512,
    max_position_embeddings: int = 4096,
    rope_theta: float = 1000000.0,
    rms_norm_eps: float = 1e-6,
    tie_word_embeddings: bool = False,
    initializer_range: float = 0.02,
    vocab_size: int | None = None,
) -> Qwen2Config:
    """A small Qwen2Config (Qwen2.5-72B-Instruct's architecture) whose token ids come from `tokenizer`."""
    problems = _text_checks(hidden_size, num_heads, num_kv_heads)
    if problems:
        raise ValueError("stand-in Qwen2 config: " + "; ".join(problems))
    text = _text_common(tokenizer, vocab_size, hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size,
                        max_position_embeddings, rms_norm_eps, initializer_range, tie_word_embeddings)
    return Qwen2Config(**text, rope_parameters={"rope_type": "default", "rope_theta": float(rope_theta)},
                       use_sliding_window=False)


def _generation_config(config) -> GenerationConfig:
    text = config.get_text_config()
    return GenerationConfig(do_sample=False, eos_token_id=text.eos_token_id, pad_token_id=text.pad_token_id,
                            bos_token_id=text.bos_token_id, max_new_tokens=64)


def _init(model_class, config, seed: int):
    """A freshly initialised float32 model in eval mode; the global torch RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    model = model.to(torch.float32)
    model.generation_config = _generation_config(config)
    model.eval()
    return model


def build_standin(arch: str, tokenizer, out_dir: str | os.PathLike, *, seed: int, image_size: int | None = None,
                  **sizes) -> Path:
    """Build a random-weight stand-in of `arch` (one of ARCHITECTURES) and save it to `out_dir`.

    `sizes` are the config keywords of that architecture (tiny_config / qwen2_5_vl_config / qwen2_config);
    `image_size` is the VL processor's square budget (Qwen3-VL: a multiple of 32, default 96;
    Qwen2.5-VL: a multiple of 28, default 112). The same tokenizer, sizes and seed give identical weights.
    """
    # Each stand-in gets its own copy: a processor's save_pretrained stamps its class on the tokenizer, and a
    # text model's tokenizer_config.json naming a VL processor makes AutoProcessor look for an image processor.
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer._processor_class = None
    if arch == "qwen3_vl":
        size = 96 if image_size is None else image_size
        model = build_tiny_model(tiny_config(tokenizer, image_size=size, **sizes), seed=seed)
        processor = build_processor(tokenizer, image_size=size)
    elif arch == "qwen2_5_vl":
        model = _init(Qwen2_5_VLForConditionalGeneration, qwen2_5_vl_config(tokenizer, **sizes), seed)
        processor = qwen2_5_vl_processor(tokenizer, 112 if image_size is None else image_size)
    elif arch == "qwen2":
        if image_size is not None:
            raise ValueError("a qwen2 stand-in is a text model: it takes no image_size")
        model = _init(Qwen2ForCausalLM, qwen2_config(tokenizer, **sizes), seed)
        processor = tokenizer
    else:
        raise ValueError(f"unknown stand-in architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")
    return save_pretrained_dir(model, processor, out_dir)
