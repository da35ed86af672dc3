"""Rollouts for GRPO: G sampled completions per prompt, returned as one batch the update can score.

The generated ids are reused as they are for the update (no re-tokenisation of decoded text), and
each prompt's image patches are repeated for its G completions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from capcurriculum.training.batching import Item, encode_prompts


@dataclass
class Rollout:
    items: list[Item]                 # the P prompts
    group_size: int                   # G
    inputs: dict[str, torch.Tensor]   # model inputs for the P*G full sequences (prompt + completion)
    completion_mask: torch.Tensor     # (P*G, C) 1 on completion tokens up to and including eos
    completion_ids: torch.Tensor      # (P*G, C)
    prompt_len: int                   # Lp: completions start at this column
    texts: list[str]                  # P*G decoded completions
    rewards: torch.Tensor | None = None  # (P*G, 3): reward, accuracy, format, once scored

    def item_of(self, i: int) -> Item:
        return self.items[i // self.group_size]


def _repeat_visual(enc: dict[str, torch.Tensor], group_size: int) -> dict[str, torch.Tensor]:
    """Repeat every per-prompt tensor G times, image patches included (they are per image, not per row)."""
    out = {k: v.repeat_interleave(group_size, dim=0) for k, v in enc.items()
           if k not in ("pixel_values", "image_grid_thw")}
    if "pixel_values" in enc:
        grid = enc["image_grid_thw"]                          # (n_images, 3)
        patches = enc["pixel_values"].split(grid.prod(-1).tolist())  # n_images x (t*h*w, D)
        # Prompts carry at most one image each here (checked by the caller), in row order.
        out["pixel_values"] = torch.cat([p for p in patches for _ in range(group_size)])
        out["image_grid_thw"] = grid.repeat_interleave(group_size, dim=0)
    return out


def vision_token_ids(tok) -> list[int]:
    """Placeholder tokens a completion must never contain: an image token without an image breaks the
    update's forward pass ("image features and image tokens do not match")."""
    names = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    ids = [tok.convert_tokens_to_ids(n) for n in names]
    return [i for i in ids if i is not None and i != tok.unk_token_id]


@torch.no_grad()
def rollout(model, processor, items: list[Item], *, group_size: int, max_new_tokens: int,
            temperature: float = 1.0, top_p: float = 1.0) -> Rollout:
    tok = processor.tokenizer
    enc = encode_prompts(processor, items)
    n_images = int(enc["image_grid_thw"].shape[0]) if "image_grid_thw" in enc else 0
    if n_images not in (0, len(items)):
        raise ValueError("a GRPO batch must be all image prompts (one image each) or all text prompts")
    was_training = model.training
    model.eval()
    gen = model.generate(**enc, do_sample=True, temperature=temperature, top_p=top_p, top_k=0,
                         num_return_sequences=group_size, max_new_tokens=max_new_tokens,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                         suppress_tokens=vision_token_ids(tok))
    model.train(was_training)
    Lp = enc["input_ids"].shape[1]
    completion = gen[:, Lp:]                                   # (P*G, C)
    is_eos = completion == tok.eos_token_id
    # keep tokens up to and including the first eos; everything after is padding
    after_eos = (is_eos.cumsum(1) - is_eos.long()) > 0
    mask = (~after_eos).long()
    full = _repeat_visual(enc, group_size)
    full["input_ids"] = gen
    full["attention_mask"] = torch.cat([full["attention_mask"], mask], dim=1)
    if "mm_token_type_ids" in full:
        full["mm_token_type_ids"] = torch.cat(
            [full["mm_token_type_ids"], torch.zeros_like(completion)], dim=1)
    texts = [tok.decode(c[m.bool()], skip_special_tokens=True) for c, m in zip(completion, mask)]
    return Rollout(items, group_size, full, mask, completion, Lp, texts)


def completion_logprobs(model, ro: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """Per-token log-probabilities of the completion tokens under `model` at the sampler's temperature."""
    logits = model(**ro.inputs).logits                         # (N, Lp + C, V)
    logits = logits[:, ro.prompt_len - 1:-1].float() / temperature  # position t predicts token t+1
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(-1, ro.completion_ids.unsqueeze(-1)).squeeze(-1)  # (N, C)
