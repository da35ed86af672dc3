"""A tiny Qwen3-VL checkpoint and a few images on disk, built once per test session."""

from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageDraw

CORPUS = [
    f"A {c} {s} is {p} the {c2} square. How many {s}s are there? {n} What is {n} + {n + 3}? "
    f"<think>{n} {s}s</think> \\boxed{{{n}}}"
    for n, (c, c2) in enumerate([("red", "blue"), ("green", "yellow"), ("blue", "red"), ("purple", "green")])
    for s in ("circle", "triangle", "star")
    for p in ("left of", "above", "below")
] * 3

COLORS = [(200, 30, 30), (30, 160, 40), (30, 60, 200), (150, 40, 160)]


def draw_scene(color, size=(96, 96), mode="RGB") -> Image.Image:
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.ellipse([10, 10, 50, 50], fill=color)
    draw.rectangle([55, 40, 85, 85], fill=tuple(255 - c for c in color))
    return img.convert(mode)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from capcurriculum.models import (
        build_processor,
        build_tiny_model,
        save_pretrained_dir,
        tiny_config,
        train_tokenizer,
    )

    tok = train_tokenizer(CORPUS, vocab_size=400)
    model = build_tiny_model(tiny_config(tok, max_position_embeddings=512), seed=7)
    # A random model almost never picks <|im_end|>; doubling its output row makes some answers
    # stop early and others run to max_new_tokens, so eos handling is exercised in every batch.
    with torch.no_grad():
        model.lm_head.weight[tok.eos_token_id] *= 2.0
    out = tmp_path_factory.mktemp("generation") / "tiny"
    save_pretrained_dir(model, build_processor(tok, image_size=96), out)
    return out


@pytest.fixture(scope="session")
def image_paths(tmp_path_factory):
    """Four scenes: three RGB PNGs (one not square) and one palette-mode PNG (must come back RGB)."""
    d = tmp_path_factory.mktemp("images")
    paths = []
    for i, color in enumerate(COLORS):
        size = (128, 64) if i == 2 else (96, 96)
        img = draw_scene(color, size=size, mode="P" if i == 3 else "RGB")
        path = d / f"scene_{i}.png"
        img.save(path)
        paths.append(str(path))
    return paths
