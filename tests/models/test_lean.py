"""models/lean.py's cascade attention against SDPA over the repeated prompt."""

import pytest
import torch
import torch.nn.functional as F

from capcurriculum.models.lean import shared_prefix_attention


@pytest.mark.parametrize("heads, kv_heads", [(4, 2), (3, 1), (2, 2)])
def test_shared_prefix_attention_is_sdpa_over_the_repeated_prompt(heads, kv_heads):
    g = torch.Generator().manual_seed(0)
    P, G, Lp, T, d = 3, 4, 7, 5, 8
    N = P * G
    q = torch.randn(N, heads, 1, d, generator=g)
    pk, pv = (torch.randn(P, kv_heads, Lp, d, generator=g) for _ in range(2))
    k, v = (torch.randn(N, kv_heads, T, d, generator=g) for _ in range(2))
    prompt_mask = torch.ones(P, Lp, dtype=torch.bool)
    prompt_mask[0, :3] = False          # left padding of different lengths
    prompt_mask[2, :1] = False
    bias = torch.zeros(P, 1, 1, Lp).masked_fill(~prompt_mask[:, None, None, :], float("-inf"))

    out = shared_prefix_attention(q, pk, pv, bias, k, v, 0.3, G)

    keys = torch.cat([pk.repeat_interleave(G, 0), k], dim=2)
    values = torch.cat([pv.repeat_interleave(G, 0), v], dim=2)
    mask = torch.cat([prompt_mask.repeat_interleave(G, 0), torch.ones(N, T, dtype=torch.bool)], 1)[:, None, None]
    want = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=0.3,
                                          enable_gqa=heads != kv_heads)
    assert out.shape == want.shape
    torch.testing.assert_close(out, want, atol=1e-6, rtol=1e-5)
