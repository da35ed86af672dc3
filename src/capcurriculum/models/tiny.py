"""Tiny Qwen3-VL models built offline: processor, config, deterministic init, and saving.

What comes out is an ordinary `from_pretrained` directory (safetensors weights, config, generation
config, tokenizer, image and video processors, chat template) that plain transformers, TRL and
vLLM load like a hub checkpoint. The constraints below were found the hard way (DESIGN.md §9):
- `mrope_section` must sum to head_dim / 2, and transformers' Qwen3-VL always interleaves the
  sections, so the config says `mrope_interleaved: true` (vLLM reads that flag; without it vLLM
  would rotate differently from transformers);
- the vision tower's `num_position_embeddings` must be a perfect square (a learned grid that is
  bilinearly resampled to each image's patch grid);
- head_dim >= 32 for vLLM's attention kernels (text and vision);
- deepstack indexes must name vision layers that exist, and the vision tower's `out_hidden_size`
  must equal the text hidden size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    Qwen2VLImageProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
)

from capcurriculum.io import atomic_path
from capcurriculum.models.tokenizer import special_token_ids

# Qwen3-VL's image normalisation (its preprocessor_config.json): mean = std = 0.5 per channel.
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)

PATCH_SIZE = 16
TEMPORAL_PATCH_SIZE = 2
MERGE_SIZE = 2


def image_token_count(image_size: int, patch_size: int = PATCH_SIZE, merge_size: int = MERGE_SIZE) -> int:
    """Image tokens a square `image_size` picture becomes after patching and merging (96 px -> 9)."""
    side = image_size // (patch_size * merge_size)
    return side * side


def build_processor(
    tokenizer,
    image_size: int = 96,
    *,
    patch_size: int = PATCH_SIZE,
    temporal_patch_size: int = TEMPORAL_PATCH_SIZE,
    merge_size: int = MERGE_SIZE,
) -> Qwen3VLProcessor:
    """A Qwen3-VL processor whose image processor leaves an `image_size` square image unresized.

    Qwen's `smart_resize` rounds each side to a multiple of patch*merge (32) and keeps the pixel
    count within [size.shortest_edge, size.longest_edge] (min/max *pixels*, despite the names).
    Here the floor is one merged patch and the ceiling `image_size**2`: a 96 px image stays 96 px
    (6x6 patches, 9 tokens); larger images are scaled down to that budget.
    """
    factor = patch_size * merge_size
    if image_size <= 0 or image_size % factor:
        raise ValueError(f"image_size={image_size} must be a positive multiple of patch*merge = {factor}")
    size = {"shortest_edge": factor * factor, "longest_edge": image_size * image_size}
    common = {
        "patch_size": patch_size,
        "temporal_patch_size": temporal_patch_size,
        "merge_size": merge_size,
        "image_mean": list(IMAGE_MEAN),
        "image_std": list(IMAGE_STD),
        "do_resize": True,
        "do_rescale": True,
        "do_normalize": True,
        "do_convert_rgb": True,
    }
    image_processor = Qwen2VLImageProcessor(size=dict(size), **common)
    # transformers requires a video processor for Qwen3-VL (it needs torchvision). Its budget is
    # counted over all frames: up to 16 frames at the image resolution. The project feeds no videos.
    video_processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": factor * factor * temporal_patch_size,
              "longest_edge": image_size * image_size * temporal_patch_size * 8},
        **common,
    )
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=tokenizer.chat_template,
    )


def default_mrope_section(head_dim: int) -> list[int]:
    """Qwen3-VL's [24, 20, 20] (of 64) scaled to head_dim / 2: 32 -> [6, 5, 5], 64 -> [12, 10, 10]."""
    if head_dim % 2:
        raise ValueError(f"head_dim={head_dim} must be even")
    half = head_dim // 2
    hw = round(half * 20 / 64)
    return [half - 2 * hw, hw, hw]


def tiny_config(
    tokenizer,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    head_dim: int = 32,
    intermediate_size: int = 512,
    max_position_embeddings: int = 1024,
    rope_theta: float = 10000.0,
    mrope_section: Sequence[int] | None = None,
    rms_norm_eps: float = 1e-6,
    tie_word_embeddings: bool = False,
    vision_depth: int = 2,
    vision_hidden: int = 64,
    vision_heads: int = 2,
    vision_intermediate: int = 256,
    deepstack_visual_indexes: Sequence[int] = (0,),
    image_size: int = 96,
    num_position_embeddings: int | None = None,
    patch_size: int = PATCH_SIZE,
    temporal_patch_size: int = TEMPORAL_PATCH_SIZE,
    spatial_merge_size: int = MERGE_SIZE,
    initializer_range: float = 0.02,
    vocab_size: int | None = None,
) -> Qwen3VLConfig:
    """A small Qwen3VLConfig whose token ids come from `tokenizer`.

    Keyword names are what a plain dict in params.yaml holds (`tiny_config(tok, **sizes)`); an
    unknown key is a TypeError. `num_position_embeddings` defaults to the patch grid of an
    `image_size` image ((96/16)^2 = 36), so the learned position grid maps one to one.
    `vocab_size` defaults to len(tokenizer).
    """
    ids = special_token_ids(tokenizer)
    vocab = len(tokenizer) if vocab_size is None else int(vocab_size)
    if vocab < len(tokenizer):
        raise ValueError(f"vocab_size={vocab} is smaller than the tokenizer ({len(tokenizer)} tokens)")
    problems = []
    if head_dim < 32:
        problems.append(f"head_dim={head_dim} < 32 (vLLM's attention kernels refuse it)")
    if num_heads % num_kv_heads:
        problems.append(f"num_heads={num_heads} is not a multiple of num_kv_heads={num_kv_heads}")
    section = list(mrope_section) if mrope_section is not None else default_mrope_section(head_dim)
    if len(section) != 3 or sum(section) != head_dim // 2:
        problems.append(f"mrope_section={section} must have 3 parts summing to head_dim/2={head_dim // 2}")
    if vision_hidden % vision_heads:
        problems.append(f"vision_hidden={vision_hidden} is not a multiple of vision_heads={vision_heads}")
    elif vision_hidden // vision_heads < 32:
        problems.append(f"vision head dim {vision_hidden // vision_heads} < 32 (vLLM refuses it)")
    elif (vision_hidden // vision_heads) % 4:
        problems.append(f"vision head dim {vision_hidden // vision_heads} must be a multiple of 4 (2-D rope)")
    factor = patch_size * spatial_merge_size
    if image_size % factor:
        problems.append(f"image_size={image_size} is not a multiple of patch*merge={factor}")
    if num_position_embeddings is None:
        num_position_embeddings = (image_size // patch_size) ** 2
    if math.isqrt(num_position_embeddings) ** 2 != num_position_embeddings:
        problems.append(f"num_position_embeddings={num_position_embeddings} is not a perfect square")
    deepstack = [int(i) for i in deepstack_visual_indexes]
    bad = [i for i in deepstack if not 0 <= i < vision_depth]
    if bad or len(set(deepstack)) != len(deepstack):
        problems.append(f"deepstack_visual_indexes={deepstack} must be distinct layers in [0, {vision_depth})")
    if len(deepstack) > num_layers:
        problems.append(f"{len(deepstack)} deepstack levels feed more layers than the text model has ({num_layers})")
    if problems:
        raise ValueError("tiny Qwen3-VL config: " + "; ".join(problems))

    text_config = {
        "vocab_size": vocab,
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": max_position_embeddings,
        "initializer_range": initializer_range,
        "rms_norm_eps": rms_norm_eps,
        "use_cache": True,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": float(rope_theta),
            "mrope_section": section,
            "mrope_interleaved": True,
        },
        "bos_token_id": ids["bos_token_id"],
        "eos_token_id": ids["eos_token_id"],
        "pad_token_id": ids["pad_token_id"],
        "tie_word_embeddings": tie_word_embeddings,
        "dtype": "float32",
    }
    vision_config = {
        "depth": vision_depth,
        "hidden_size": vision_hidden,
        "hidden_act": "gelu_pytorch_tanh",
        "intermediate_size": vision_intermediate,
        "num_heads": vision_heads,
        "in_channels": 3,
        "patch_size": patch_size,
        "spatial_merge_size": spatial_merge_size,
        "temporal_patch_size": temporal_patch_size,
        "out_hidden_size": hidden_size,
        "num_position_embeddings": num_position_embeddings,
        "deepstack_visual_indexes": deepstack,
        "initializer_range": initializer_range,
        "dtype": "float32",
    }
    return Qwen3VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["image_token_id"],
        video_token_id=ids["video_token_id"],
        vision_start_token_id=ids["vision_start_token_id"],
        vision_end_token_id=ids["vision_end_token_id"],
        tie_word_embeddings=tie_word_embeddings,
        dtype="float32",
    )


def build_tiny_model(config: Qwen3VLConfig, seed: int) -> Qwen3VLForConditionalGeneration:
    """A freshly initialised float32 model; the same config and seed give bit-identical weights.

    The global torch RNG is left as it was. Returned in eval mode, like `from_pretrained`.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3VLForConditionalGeneration(config)
    model = model.to(torch.float32)
    model.generation_config = default_generation_config(config)
    model.eval()
    return model


def default_generation_config(config: Qwen3VLConfig) -> GenerationConfig:
    """Greedy by default; stops at `<|im_end|>`; pads with `<|endoftext|>`."""
    text = config.get_text_config()
    return GenerationConfig(
        do_sample=False,
        eos_token_id=text.eos_token_id,
        pad_token_id=text.pad_token_id,
        bos_token_id=text.bos_token_id,
        max_new_tokens=64,
    )


def _apply_umask(directory: Path) -> None:
    """transformers 5 writes model.safetensors with mode 0600; give files the usual umask mode so a
    container running under another uid (or DVC's cache) can read them."""
    umask = os.umask(0)
    os.umask(umask)
    for path in directory.rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~umask)


def save_pretrained_dir(model, processor, out_dir: str | os.PathLike) -> Path:
    """Write model (safetensors), generation config and processor to `out_dir`, atomically.

    Everything goes to a temporary sibling first and is renamed onto `out_dir` only when all of
    it was written; an existing `out_dir` is replaced.
    """
    out_dir = Path(out_dir)
    tokenizer = getattr(processor, "tokenizer", processor)
    if getattr(model, "generation_config", None) is None or model.generation_config.eos_token_id is None:
        model.generation_config = default_generation_config(model.config)
    if model.generation_config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        pickles = [p.name for p in tmp.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".pickle")]
        if pickles:  # pragma: no cover - would mean transformers changed its defaults
            raise RuntimeError(f"refusing to write pickle files to {out_dir}: {pickles}")
        _apply_umask(tmp)
    return out_dir
