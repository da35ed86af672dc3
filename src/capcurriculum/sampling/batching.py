"""Chat items -> model batches: prompts through the processor, loss only on the response."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
from PIL import Image

from capcurriculum.prompts import IMAGE_MODES, build_messages, target_text

IGNORE = -100


@dataclass
class Item:
    """One example in one prompt mode, with what that mode needs beside the example."""

    example: dict[str, Any]
    mode: str
    image_path: str | None = None
    caption: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode in IMAGE_MODES and not self.image_path:
            raise ValueError(f"example {self.example.get('id')}: mode {self.mode} needs an image")


@lru_cache(maxsize=65536)
def load_image(path: str) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def prompt_texts(processor, items: list[Item]) -> list[str]:
    return [processor.apply_chat_template(build_messages(it.example, it.mode, it.caption),
                                          add_generation_prompt=True, tokenize=False) for it in items]


def images_of(items: list[Item]) -> list[Image.Image] | None:
    images = [load_image(str(it.image_path)) for it in items if it.mode in IMAGE_MODES]
    return images or None


def encode_prompts(processor, items: list[Item]) -> dict[str, torch.Tensor]:
    """Left-padded prompts ending in the assistant header, ready for `generate`."""
    return processor(text=prompt_texts(processor, items), images=images_of(items), return_tensors="pt",
                     padding=True, padding_side="left")


def encode_sft(processor, items: list[Item], targets: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Left-padded prompt+response sequences with labels on the response tokens (and its <|im_end|>)."""
    tok = processor.tokenizer
    eos = tok.convert_ids_to_tokens(tok.eos_token_id)
    targets = targets or [target_text(it.example, it.mode, it.caption) for it in items]
    texts = [p + t + eos for p, t in zip(prompt_texts(processor, items), targets)]
    enc = processor(text=texts, images=images_of(items), return_tensors="pt", padding=True, padding_side="left")
    # The response is tokenized alone to count it: the assistant header ends in "\n" and the
    # response starts a new pre-token, so the joint tokenization ends with exactly these ids.
    resp_lens = [len(tok(t + eos, add_special_tokens=False).input_ids) for t in targets]
    labels = torch.full_like(enc["input_ids"], IGNORE)
    T = labels.shape[1]
    for i, n in enumerate(resp_lens):
        labels[i, T - n:] = enc["input_ids"][i, T - n:]
    enc["labels"] = labels
    return enc
