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
