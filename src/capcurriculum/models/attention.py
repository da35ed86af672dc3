"""`sdpa_gqa`: transformers' SDPA attention with grouped-query heads kept grouped on every device.

transformers' own "sdpa" copies the key/value heads up to the query heads (`repeat_kv`) whenever an
attention mask is given, except on XPU/MPS, because CUDA's fused kernels reject a masked GQA call.
On the CPU `enable_gqa=True` with a mask is supported, and the copy dominates a small model's decode
step: at 128 sequences x 130 cached tokens, 2 KV heads for 4 query heads, one call takes 19 ms with the
copy and 2 ms without (measured here, one thread). Register it once, then load with
`attn_implementation="sdpa_gqa"` or call `model.set_attn_implementation("sdpa_gqa")`. It changes no
weights and nothing saved: a checkpoint trained with it loads with plain transformers.
"""

from __future__ import annotations

import sys
import types

import torch
import torch.nn.functional as F

NAME = "sdpa_gqa"


def sdpa_gqa_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                       is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    is_causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    # the fused causal path only for a maskless prefill, as transformers' sdpa decides
    is_causal = bool(query.shape[2] > 1 and attention_mask is None and is_causal)
    if is_causal and key.shape[2] > query.shape[2]:
        key, value = key[:, :, :query.shape[2]], value[:, :, :query.shape[2]]
    out = F.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout if module.training else 0.0,
        scale=scaling, is_causal=is_causal, enable_gqa=key.shape[1] != query.shape[1])
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Make "sdpa_gqa" a valid `attn_implementation` (idempotent); masks are built as for "sdpa"."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, sdpa_gqa_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME


def attention_implementation(name: str) -> str:
    """A config's `attn_implementation`, registered first when it is this module's."""
    return register() if name == NAME else name


# --- the vision tower: equal-size images in one attention call ------------------------------------------
# Qwen3-VL's vision attention loops over the images of a batch one SDPA call each unless flash attention
# is requested (it then passes `cu_seqlens`). A GRPO step on the tiny profile prefills 128 images three
# times (rollout, reference, update) through a two-block tower: 768 calls. When every image of a batch has
# the same number of patches (the world's images; a DOCCI batch resized to one resolution) they are one
# batched call over the same numbers: ~3% of a 128-prompt step here (README, "Benchmarks").

def _batched_vision_attention(self, hidden_states: torch.Tensor, cu_seqlens: torch.Tensor,
                              position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
                              max_seqlen: int | None = None, **kwargs) -> torch.Tensor:
    lengths = cu_seqlens[1:] - cu_seqlens[:-1]
    if self.config._attn_implementation not in ("sdpa", NAME) or bool((lengths != lengths[0]).any()):
        return type(self).forward(self, hidden_states, cu_seqlens, position_embeddings, max_seqlen, **kwargs)
    rotary = sys.modules[type(self).__module__].apply_rotary_pos_emb_vision
    n_tokens, n_images = hidden_states.shape[0], lengths.shape[0]
    q, k, v = self.qkv(hidden_states).reshape(n_tokens, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = position_embeddings
    q, k = rotary(q, k, cos, sin)
    q, k, v = (t.reshape(n_images, n_tokens // n_images, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, scale=self.scaling,
                                         dropout_p=self.attention_dropout if self.training else 0.0)
    return self.proj(out.transpose(1, 2).reshape(n_tokens, -1))


def batch_vision_attention(model) -> int:
    """Route the vision tower's attention through one call per batch of equal-size images (other batches,
    and attention implementations other than sdpa / sdpa_gqa, take transformers' own path). Per model
    instance; changes no weights and nothing saved. Returns the number of attention modules routed."""
    n = 0
    for module in model.modules():
        if type(module).__name__.endswith("VisionAttention") and hasattr(module, "qkv"):
            module.forward = types.MethodType(_batched_vision_attention, module)
            n += 1
    return n
