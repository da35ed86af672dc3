"""Inference prompts whose images go through the image processor and the vision tower once each.

The differential filter asks 24 questions of every scene, so a batch of image prompts holds each picture
many times over; through the processor every copy is resized, patched
and normalised again, and through the model every copy runs the vision tower again (a third of the filter's
image path, by py-spy). `VisionFeatureCache` keeps each distinct image's grid, merged tokens and deepstack
features, keyed by the caller's key for the picture (its path), and builds the batch that the processor
would: the same left-padded ids, attention mask, `mm_token_type_ids` and `image_grid_thw`, with the
tower's outputs handed to the model as `mm_encoder_outputs` (transformers' own input for precomputed
encoder outputs) instead of `pixel_values`.

It is right only while the vision side does not change: one cache per inference pass over a fixed model
(the filter's greedy pass), never across optimizer steps. Qwen3-VL models only (`SUPPORTED`). It
holds at most `max_bytes` of features (oldest out first): all of a tiny pass fits in a few MB, while an
8B model's ~1,000 tokens an image would otherwise pile up gigabytes on the accelerator.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from transformers.models.qwen3_vl.modeling_qwen3_vl import BaseModelOutputWithDeepstackFeatures

from capcurriculum.models.lean import SUPPORTED, supports


@dataclass
class _Features:
    grid: torch.Tensor              # (3,) t, h, w in patches
    tokens: torch.Tensor            # (n_tokens, hidden): the merger's output, one row per image token
    deepstack: list[torch.Tensor]   # per deepstack layer, (n_tokens, hidden)


def _nbytes(f: _Features) -> int:
    return sum(t.numel() * t.element_size() for t in (f.tokens, *f.deepstack))


class VisionFeatureCache:
    """Image features by key, computed on first sight; `encode` builds a batch from them."""

    def __init__(self, model, processor, max_bytes: int = 256 * 2**20) -> None:
        if not supports(model):
            raise ValueError(f"VisionFeatureCache: {SUPPORTED} models only, not "
                             f"{getattr(model.config, 'model_type', type(model).__name__)!r}")
        self.model, self.processor = model, processor
        self._features: dict[Hashable, _Features] = {}
        self.max_bytes, self._bytes = max_bytes, 0
        self.computed = 0   # images sent through the tower (an evicted one that comes back counts again)
        self.reused = 0     # image slots served from the cache

    def __len__(self) -> int:
        return len(self._features)

    @torch.no_grad()
    def _compute(self, keys: list[Hashable], images: list[Image.Image]) -> None:
        ip = self.processor.image_processor(images=images, return_tensors="pt")
        device = self.model.device
        grid = ip["image_grid_thw"].to(device)
        out = self.model.model.get_image_features(ip["pixel_values"].to(device), grid, return_dict=True)
        for i, key in enumerate(keys):
            f = _Features(grid=grid[i], tokens=out.pooler_output[i],
                          deepstack=[layer[i] for layer in out.deepstack_features])
            self._features[key] = f
            self._bytes += _nbytes(f)
        self.computed += len(keys)
        while self._bytes > self.max_bytes and len(self._features) > len(keys):
            self._bytes -= _nbytes(self._features.pop(next(iter(self._features))))

    def encode(self, texts: Sequence[str], images: Sequence[Image.Image], keys: Sequence[Hashable], *,
               add_special_tokens: bool | None = None) -> dict:
        """The processor's batch for `texts` (chat-templated, one image placeholder per image) and their
        images in order (`keys[i]` names `images[i]`), left-padded, with `mm_encoder_outputs` in place of
        `pixel_values`."""
        if len(images) != len(keys):
            raise ValueError(f"VisionFeatureCache.encode: {len(images)} images but {len(keys)} keys")
        new: dict[Hashable, Image.Image] = {}
        for key, image in zip(keys, images):
            if key not in self._features and key not in new:
                new[key] = image
        if new:
            self._compute(list(new), list(new.values()))
        self.reused += len(keys) - len(new)
        feats = [self._features[k] for k in keys]
        proc = self.processor
        grids = torch.stack([f.grid for f in feats]) if feats else torch.zeros(0, 3, dtype=torch.long)
        replacements = [proc.replace_image_token({"image_grid_thw": grids}, image_idx=i) for i in range(len(feats))]
        expanded, _ = proc.get_text_with_replacements(list(texts), replacements)
        extra = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        enc = dict(proc.tokenizer(expanded, return_tensors="pt", padding=True, padding_side="left",
                                  return_token_type_ids=False, **extra))
        enc["mm_token_type_ids"] = torch.tensor(proc.create_mm_token_type_ids(enc["input_ids"].tolist()),
                                                dtype=enc["input_ids"].dtype)
        if feats:
            enc["image_grid_thw"] = grids
            enc["mm_encoder_outputs"] = {"image": BaseModelOutputWithDeepstackFeatures(
                pooler_output=tuple(f.tokens for f in feats),
                deepstack_features=[tuple(f.deepstack[j] for f in feats) for j in range(len(feats[0].deepstack))],
            )}
        return enc
