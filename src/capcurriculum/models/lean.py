"""The completion side of a Qwen3-VL text decoder, without transformers' per-call machinery.

A GRPO step spends most of its forward passes on completion tokens: one call per sampled token in the
rollout, and one pass over every completion when the update (and the reference) re-scores them. For a
tiny model each `model(...)` call costs ~20 ms of Python (output capturing, mask building, cache
objects, kwargs plumbing) against well under a millisecond of arithmetic. This module runs those
tokens through the model's *own* submodules (embeddings, norms, projections, MLPs, rotary embedding,
LM head: the same parameters, so gradients land where transformers' forward puts them) with:

- for decoding, the prompt's keys/values held once for its G completions (their queries meet them in
  one matrix product: cascade attention) and a static buffer with one slot per generated token, written
  in place;
- one pass for scoring: the completions attend to their prompt's keys/values (differentiable, from
  transformers' prefill) and causally to each other.

`compile=True` runs the same stack under `torch.compile` (dynamic shapes, one compiled function per
process shared by every decoder): the norms, rotary embedding, activations and casts between the matrix
products fuse, ~25% off a 128-prompt GRPO step here after ~100 s of compiling at a DAG's first GRPO node and
20-40 s at later ones, which read inductor's on-disk cache (README, "GRPO step"; bench/compile_first_step.py).

Attention runs in the weights' dtype whatever the forward's autocast dtype (`precision: bf16` on float32
weights): the CPU's bfloat16 SDPA kernel was 4x slower than its float32 one at these shapes, while bfloat16
linears were 3-5x faster.

The prompt itself (image, vision tower, deepstack features, multimodal rotary positions) still goes
through transformers' forward: completion tokens carry no image, their three rotary axes are equal,
and deepstack features are added at image positions only, so the two paths compute the same function
(tests check logits and gradients against transformers' forward).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.models.qwen3_vl.modeling_qwen3_vl import apply_rotary_pos_emb

SUPPORTED = ("qwen3_vl",)


def supports(model) -> bool:
    """True for the decoders this path reproduces exactly: Qwen3-VL's dense, full-attention text model."""
    text = getattr(model.config, "text_config", None)
    if getattr(model.config, "model_type", None) not in SUPPORTED or text is None:
        return False
    return not getattr(text, "sliding_window", None) and all(
        t == "full_attention" for t in (getattr(text, "layer_types", None) or []))


class LeanDecoder:
    """Completion tokens through `model`'s text decoder. `prefix` is the prompt's per-layer (keys, values),
    each (N, kv_heads, Lp, head_dim) with one row per completion, and `prefix_mask` (N, Lp) its padding."""

    def __init__(self, model, compile: bool = False):
        if not supports(model):
            raise ValueError(f"the lean decoder reproduces {SUPPORTED} models only, not "
                             f"{getattr(model.config, 'model_type', type(model).__name__)}")
        lm = model.model.language_model
        self.layers, self.embed, self.norm, self.rotary = lm.layers, lm.embed_tokens, lm.norm, lm.rotary_emb
        self.lm_head = model.lm_head
        self.head_dim = self.layers[0].self_attn.head_dim
        self.attn_dtype = self.embed.weight.dtype   # the weights' dtype, not autocast's
        self.run = functools.partial(compiled_run(), self) if compile else self._run

    def rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin for (3, N, L) positions, as transformers' rotary embedding computes them (in the
        embeddings' dtype, on their device)."""
        return self.rotary(self.embed.weight, positions)

    def _run(self, ids: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, attend,
             index: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder stack on (N, L) token ids; `attend(i, attn, q, k, v)` -> (N, heads, L, d) for layer i and
        its attention module, given q (N, heads, L, d) and k, v (N, kv_heads, L, d). With `index`
        (flat positions into N*L), everything but attention runs on those tokens only (padding-free) and
        the logits come back packed, (len(index), vocab)."""
        N, L = ids.shape
        x = self.embed(ids).flatten(0, 1)                       # (N*L, hidden): one row per token
        cos, sin = cos.flatten(0, 1), sin.flatten(0, 1)
        if index is not None:
            x, cos, sin = x[index], cos[index], sin[index]

        def heads(t: torch.Tensor) -> torch.Tensor:            # (tokens, h, d) -> (N, h, L, d)
            if index is not None:
                t = t.new_zeros(N * L, *t.shape[1:]).index_copy(0, index, t)
            return t.view(N, L, *t.shape[1:]).transpose(1, 2)

        def tokens(t: torch.Tensor) -> torch.Tensor:           # (N, h, L, d) -> (tokens, h*d)
            t = t.transpose(1, 2).reshape(N * L, -1)
            return t if index is None else t[index]

        for i, layer in enumerate(self.layers):
            a = layer.self_attn
            h = layer.input_layernorm(x)
            shape = (h.shape[0], -1, self.head_dim)
            q = a.q_norm(a.q_proj(h).view(shape))
            k = a.k_norm(a.k_proj(h).view(shape))
            q, k = apply_rotary_pos_emb(q, k, cos, sin)        # (tokens, h, d) with cos (tokens, d)
            o = attend(i, a, heads(q), heads(k), heads(a.v_proj(h).view(shape)))
            x = x + a.o_proj(tokens(o))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        logits = self.lm_head(self.norm(x))
        return logits if index is not None else logits.view(N, L, -1)

    # --- scoring: all completion tokens in one pass --------------------------------------------------------
    def score(self, ids: torch.Tensor, positions: torch.Tensor, prefix: list[tuple[torch.Tensor, torch.Tensor]],
              prefix_mask: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N, C, vocab) of the completion tokens `ids` (N, C) at rotary `positions` (3, N, C); token t
        sees its prompt (where `prefix_mask` is 1) and completion tokens 0..t. `keep` (N, C) bool, a prefix
        of each row: only those tokens' logits are wanted, returned packed (keep.sum(), vocab) in row-major
        order; the dropped tail of a row (padding after eos) costs no projection, MLP or LM-head work."""
        N, C = ids.shape
        dt = self.attn_dtype
        causal = torch.ones(C, C, dtype=torch.bool, device=ids.device).tril()
        seen = torch.cat([prefix_mask.bool()[:, None, None, :].expand(N, 1, C, -1),
                          causal.expand(N, 1, C, C)], dim=-1)
        # additive, built once for all layers: SDPA converts a boolean mask on each call (~25% of its time)
        bias = torch.zeros(seen.shape, dtype=dt, device=ids.device).masked_fill_(~seen, float("-inf"))
        cos, sin = self.rope(positions)

        def attend(i, a, q, k, v):
            pk, pv = prefix[i]
            keys, values = torch.cat([pk.to(dt), k.to(dt)], dim=2), torch.cat([pv.to(dt), v.to(dt)], dim=2)
            with no_autocast(q.device):
                return F.scaled_dot_product_attention(
                    q.to(dt), keys, values, attn_mask=bias, scale=a.scaling,
                    dropout_p=a.attention_dropout if a.training else 0.0, enable_gqa=True)

        index = None if keep is None else keep.flatten().nonzero().squeeze(1)
        return self.run(ids, cos, sin, attend, index)

    # --- decoding: one token per call; the prompt's keys/values held once for its G completions ---------
    def start(self, prefix: list[tuple[torch.Tensor, torch.Tensor]], prefix_mask: torch.Tensor,
              positions: torch.Tensor, max_new_tokens: int, group_size: int = 1) -> DecodeState:
        """A decode state for N = P * group_size completions: the P prompts' keys/values `prefix` (per layer,
        each (P, kv_heads, Lp, d)), not repeated, `prefix_mask` (P, Lp) their padding, and an empty buffer
        for `max_new_tokens` generated keys/values per completion; `positions` (3, N, max_new_tokens) are
        the new tokens' rotary positions. Row p * group_size + g is prompt p's g-th completion."""
        P, kvh, Lp, d = prefix[0][0].shape
        N, dt = P * group_size, self.attn_dtype
        bias = torch.zeros(P, 1, 1, Lp, dtype=dt, device=prefix_mask.device)
        bias.masked_fill_(~prefix_mask.bool()[:, None, None, :], float("-inf"))
        cos, sin = self.rope(positions)

        def slots() -> list[torch.Tensor]:
            return [bias.new_empty(N, kvh, max_new_tokens, d) for _ in prefix]

        return DecodeState(keys=[pk.to(dt) for pk, _ in prefix], values=[pv.to(dt) for _, pv in prefix],
                           new_keys=slots(), new_values=slots(), prefix_bias=bias, cos=cos, sin=sin,
                           group_size=group_size)

    @torch.no_grad()
    def step(self, state: DecodeState, ids: torch.Tensor, t: int) -> torch.Tensor:
        """Logits (N, vocab) after appending token `ids` (N,) as completion token t."""

        def attend(i, a, q, k, v):
            state.new_keys[i][:, :, t:t + 1] = k
            state.new_values[i][:, :, t:t + 1] = v
            with no_autocast(q.device):
                return shared_prefix_attention(q.to(self.attn_dtype), state.keys[i], state.values[i],
                                               state.prefix_bias, state.new_keys[i][:, :, :t + 1],
                                               state.new_values[i][:, :, :t + 1], a.scaling, state.group_size)

        return self.run(ids[:, None], state.cos[:, t:t + 1], state.sin[:, t:t + 1], attend)[:, -1]


_COMPILED_RUN = None
# Graphs `_run` legitimately needs, against dynamo's default limit of 8 per function: decoding at token 0
# and after, scoring with and without gradients, and, per scoring mode, one graph per power-of-two range of
# scored tokens (inductor's CPU kernels guard on it: <=1024, 1025-2048, 2049-4096, ... seen with
# TORCH_LOGS=recompiles). Mixed-capability chunks passed 8 in the merged baseline (step 249) and left the
# rest of the stage eager; 64 leaves room for ~30 ranges per gradient mode.
RECOMPILE_LIMIT = 64
# AOTAutograd caches a compiled graph across processes only if every function in it is on its allowlist;
# autocast's enter/exit (the attention's fp32 island inside a bf16 forward, `no_autocast`) are not, so every
# GRPO node re-ran AOTAutograd on a warm inductor cache ("Bypassing autograd cache ... _enter_autocast"). They
# are pure given the arguments the graph records, so they are marked cacheable, keyed by torch's version:
# the same graphs and numbers; a warm first GRPO step 58 -> 35 s (bench/compile_first_step.py, unmarked vs shipped).
AUTOCAST_CACHEABLE = {f"torch.amp.autocast_mode.{f}": torch.__version__ for f in ("_enter_autocast", "_exit_autocast")}
# Float attributes of the modules (the norms' eps, the attention's scaling) were traced as symbolic floats;
# in three of the four graphs the scalar-tensorify pass then failed and dynamo restarted the analysis, so
# each GRPO node traced those graphs twice, and the wasted first analyses (never cached) cost ~25 s of a warm
# first step. They are constants of the model: specialised from the start (bench/compile_first_step.py).
DYNAMO_CONFIG = {"recompile_limit": RECOMPILE_LIMIT, "specialize_float": True}


def compiled_run():
    """`LeanDecoder._run` under torch.compile, built once per process: its graphs (scoring with and without
    gradients, decoding; per model) are traced on first use and reused by every later decoder. Its own
    dynamo settings (DYNAMO_CONFIG: recompile limit, floats specialised) apply whatever the process-wide ones
    are, its graphs go to AOTAutograd's on-disk cache (AUTOCAST_CACHEABLE), and building it turns on
    deterministic algorithms for the process."""
    global _COMPILED_RUN
    if _COMPILED_RUN is None:
        # Inductor lowers the backward of the padding-free gather (`x[index]`) to a threaded scatter with atomic
        # adds unless deterministic algorithms are on, and two runs of a seeded two-thread GRPO step then differed
        # in the grad norm's last bits (docs/miniature.md). Process-wide, because the backward graph is lowered at
        # the first backward(), outside any context held here; warn_only, as eager CPU ops need nothing more.
        torch.use_deterministic_algorithms(True, warn_only=True)
        compiled = torch.compile(LeanDecoder._run, dynamic=True)
        compiled = torch._inductor.config.patch(unsafe_marked_cacheable_functions=AUTOCAST_CACHEABLE)(compiled)
        _COMPILED_RUN = torch._dynamo.config.patch(**DYNAMO_CONFIG)(compiled)
    return _COMPILED_RUN


def shared_prefix_attention(q: torch.Tensor, pk: torch.Tensor, pv: torch.Tensor, prefix_bias: torch.Tensor,
                            k: torch.Tensor, v: torch.Tensor, scale: float, group_size: int) -> torch.Tensor:
    """Attention of one new token per completion over its prompt and its own earlier tokens, the prompt's
    keys/values held once for its G completions (cascade attention): the G completions' queries of a
    prompt meet its keys in one matrix product instead of G. q (N, heads, 1, d), pk/pv (P, kv_heads, Lp, d)
    with `prefix_bias` (P, 1, 1, Lp) 0 or -inf, k/v (N, kv_heads, T, d); N = P * group_size. The two
    parts share one softmax (joint max and normaliser), so the result is SDPA's over the concatenation."""
    N, H, _, d = q.shape
    P, kvh, Lp, _ = pk.shape
    g = H // kvh
    qs = q.view(N, kvh, g, d) * scale
    by_prompt = qs.view(P, group_size, kvh, g, d).transpose(1, 2).reshape(P, kvh, group_size * g, d)
    s_pre = (by_prompt @ pk.transpose(-1, -2) + prefix_bias)            # (P, kvh, G*g, Lp)
    s_pre = s_pre.view(P, kvh, group_size, g, Lp).transpose(1, 2).reshape(N, kvh, g, Lp)
    s_new = qs @ k.transpose(-1, -2)                                     # (N, kvh, g, T)
    top = torch.maximum(s_pre.amax(-1, keepdim=True), s_new.amax(-1, keepdim=True))
    e_pre, e_new = (s_pre - top).exp(), (s_new - top).exp()
    total = e_pre.sum(-1, keepdim=True) + e_new.sum(-1, keepdim=True)
    e_pre = e_pre.view(P, group_size, kvh, g, Lp).transpose(1, 2).reshape(P, kvh, group_size * g, Lp)
    o_pre = (e_pre @ pv).view(P, kvh, group_size, g, d).transpose(1, 2).reshape(N, kvh, g, d)
    out = (o_pre + e_new @ v) / total
    return out.reshape(N, H, 1, d)


def no_autocast(device: torch.device) -> torch.autocast:
    """Autocast off: SDPA is on autocast's lower-precision list, and would undo the cast to the weights' dtype."""
    return torch.autocast(device_type=device.type, enabled=False)


@dataclass
class DecodeState:
    keys: list[torch.Tensor]        # per layer (P, kv_heads, Lp, d): the prompts', once per prompt
    values: list[torch.Tensor]
    new_keys: list[torch.Tensor]    # per layer (N, kv_heads, max_new_tokens, d): each completion's own
    new_values: list[torch.Tensor]
    prefix_bias: torch.Tensor       # (P, 1, 1, Lp) 0 where a prompt token is attended, -inf on its padding
    cos: torch.Tensor               # (N, max_new_tokens, d) rotary tables of the new tokens
    sin: torch.Tensor
    group_size: int
