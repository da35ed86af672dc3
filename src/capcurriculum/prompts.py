"""How an example becomes a chat: the one prompt format that pre-training, GRPO and evaluation share.

Modes:
  caption       image -> its description (pre-training; the caption-SFT perception variant)
  perc_image    image + question -> answer           (perception from pixels)
  perc_caption  caption + question -> answer         (the filter's caption-only path)
  text_math     question -> answer
  vis_math      image + question -> answer
Every mode but `caption` answers as `<think>...</think> \\boxed{answer}`, the format the rewards check.
"""

from __future__ import annotations

from typing import Any

REASONING_SUFFIX = "Think inside <think> </think>, then give the final answer in \\boxed{}."
CAPTION_PROMPT = "Describe the image in detail."
MODES = ("caption", "perc_image", "perc_caption", "text_math", "vis_math")
IMAGE_MODES = ("caption", "perc_image", "vis_math")


def build_messages(example: dict[str, Any], mode: str, caption: str | None = None,
                   image: Any = None) -> list[dict]:
    """The chat for one example; `image` (a path or PIL image) is attached for generation backends."""
    if mode not in MODES:
        raise ValueError(f"unknown prompt mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "caption":
        text = CAPTION_PROMPT
    elif mode == "perc_caption":
        if not caption:
            raise ValueError(f"example {example.get('id')}: perc_caption needs the caption")
        text = f"Caption: {caption}\n{example['question']} {REASONING_SUFFIX}"
    else:
        text = f"{example['question']} {REASONING_SUFFIX}"
    content: list[dict] = []
    if mode in IMAGE_MODES:
        content.append({"type": "image", "image": image} if image is not None else {"type": "image"})
    content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


def target_text(example: dict[str, Any], mode: str, caption: str | None = None) -> str:
    """The supervised response for pre-training: the trace (what is seen, then the computation)."""
    if mode == "caption":
        if not caption:
            raise ValueError(f"example {example.get('id')}: caption mode needs the caption")
        return caption
    trace = (example.get("meta") or {}).get("trace", "")
    return f"<think>{trace}</think> \\boxed{{{example['answer']}}}"
