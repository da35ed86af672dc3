"""Rollouts for GRPO with a shared prompt prefix: G sampled completions per prompt.

Each prompt (its image included) goes through the model once; its key/value cache is repeated for its G
completions, both when sampling and when the update re-scores the completions. Compared with running
every prompt+completion sequence whole (what `generate(num_return_sequences=G)` and a plain training
forward do), the prompt's tokens and its image patches cost 1/G as much. The sampled ids are kept as
they are for the update (no re-tokenisation of decoded text).

Positions are computed once, here, for both sides: multimodal RoPE from the model's `get_rope_index`
for image prompts, mask-aware positions for text prompts (left padding skipped, as `generate` does).
A completion token's position continues from its prompt's last position.

`lean=True` runs the completion tokens (decoding and scoring; the prompt still goes through
transformers) through `models/lean.py`: the same function, without transformers' per-call overhead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.utils.checkpoint
from transformers import DynamicCache

from capcurriculum.models.lean import LeanDecoder
from capcurriculum.sampling.batching import Item, encode_prompts


@dataclass
class Rollout:
    items: list[Item]                 # the P prompts
    group_size: int                   # G
    prompt: dict[str, torch.Tensor]   # the P prompts' model inputs, left-padded to Lp
    positions: torch.Tensor           # (3, P, Lp) rotary positions of the prompt tokens
    completion_ids: torch.Tensor      # (P*G, C), row p*G + g is prompt p's g-th completion
    completion_mask: torch.Tensor     # (P*G, C) 1 on completion tokens up to and including eos
    texts: list[str]                  # P*G decoded completions
    rewards: torch.Tensor | None = None  # (P*G, 3): reward, accuracy, format, once scored

    def item_of(self, i: int) -> Item:
        return self.items[i // self.group_size]

    @property
    def prompt_len(self) -> int:
        return int(self.prompt["input_ids"].shape[1])

    def prompts(self, start: int, stop: int) -> Rollout:
        """Prompts start..stop-1 with their completions (rows start*G .. stop*G-1): a micro-batch."""
        G, prompt = self.group_size, {}
        for k, v in self.prompt.items():
            if k == "pixel_values":  # (patches, d): each prompt's image is its grid's patch count of rows
                ends = [0, *self.prompt["image_grid_thw"].prod(-1).cumsum(0).tolist()]
                prompt[k] = v[ends[start]:ends[stop]]
            else:
                prompt[k] = v[start:stop]
        rows = slice(start * G, stop * G)
        return Rollout(self.items[start:stop], G, prompt, self.positions[:, start:stop], self.completion_ids[rows],
                       self.completion_mask[rows], self.texts[rows],
                       None if self.rewards is None else self.rewards[rows])

    def full_inputs(self) -> dict[str, torch.Tensor]:
        """The P*G whole sequences (prompt + completion) as one ordinary model batch, each prompt's image
        repeated for its completions: what a trainer without prefix sharing (TRL) scores."""
        G = self.group_size
        out = {k: v.repeat_interleave(G, dim=0) for k, v in self.prompt.items()
               if k not in ("pixel_values", "image_grid_thw")}
        if "pixel_values" in self.prompt:
            grid = self.prompt["image_grid_thw"]
            patches = self.prompt["pixel_values"].split(grid.prod(-1).tolist())
            out["pixel_values"] = torch.cat([p for p in patches for _ in range(G)])
            out["image_grid_thw"] = grid.repeat_interleave(G, dim=0)
        out["input_ids"] = torch.cat([out["input_ids"], self.completion_ids], dim=1)
        out["attention_mask"] = torch.cat([out["attention_mask"], self.completion_mask], dim=1)
        if "mm_token_type_ids" in out:
            out["mm_token_type_ids"] = torch.cat(
                [out["mm_token_type_ids"], torch.zeros_like(self.completion_ids)], dim=1)
        return out


def vision_token_ids(tok) -> list[int]:
    """Placeholder tokens a completion must never contain: an image token without an image breaks the
    update's forward pass ("image features and image tokens do not match")."""
    names = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    ids = [tok.convert_tokens_to_ids(n) for n in names]
    return [i for i in ids if i is not None and i != tok.unk_token_id]


def prompt_positions(model, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    """(3, P, Lp) positions of left-padded prompts; padding positions are 0 and never attended."""
    mask = enc["attention_mask"]
    if "image_grid_thw" in enc:
        pos, _ = model.model.get_rope_index(enc["input_ids"], mm_token_type_ids=enc["mm_token_type_ids"],
                                            image_grid_thw=enc["image_grid_thw"], attention_mask=mask)
        return pos
    pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
    return pos.unsqueeze(0).expand(3, -1, -1)


def _prefill(model, prompt: dict[str, torch.Tensor], positions: torch.Tensor, group_size: int,
             repeat_cache: bool = True):
    """One forward over the P prompts; returns the last position's logits, repeated G times (prompt p's
    copies at rows p*G .. p*G+G-1), and the key/value cache, repeated likewise unless `repeat_cache` is
    off (the lean decoder holds it once per prompt). Differentiable when grad is on."""
    cache = DynamicCache()
    out = model(**prompt, position_ids=positions, past_key_values=cache, use_cache=True, logits_to_keep=1)
    if repeat_cache:
        cache.batch_repeat_interleave(group_size)
    return out.logits[:, -1].repeat_interleave(group_size, dim=0), cache


def _next_positions(positions: torch.Tensor, group_size: int, n: int) -> torch.Tensor:
    """(3, P*G, n) positions of the first n completion tokens: each continues its prompt's text axis."""
    start = positions.amax(dim=(0, 2)).repeat_interleave(group_size) + 1   # (P*G,)
    return (start[:, None] + torch.arange(n, device=start.device)).unsqueeze(0).expand(3, -1, -1)


def _sample_token(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, idx = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > top_p          # keep the smallest set reaching top_p
        probs = torch.zeros_like(probs).scatter(-1, idx, sorted_p.masked_fill(drop, 0.0))
    # inverse CDF: one uniform per row instead of multinomial's per-token work (~15x faster on the CPU at
    # 128 x 640). right=True never lands on a zero-probability (suppressed) token; rounding at the top end
    # could, so such a pick falls back to the most likely token.
    cdf = probs.cumsum(-1)
    u = torch.rand(cdf.shape[0], 1, device=cdf.device) * cdf[:, -1:]
    tok = torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[-1] - 1).squeeze(-1)
    zero = probs.gather(-1, tok[:, None]).squeeze(-1) == 0
    return torch.where(zero, probs.argmax(-1), tok)


def _prefix(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


@torch.no_grad()
def rollout(model, processor, items: list[Item], *, group_size: int, max_new_tokens: int,
            temperature: float = 1.0, top_p: float = 1.0, ignore_eos: bool = False, lean: bool = False,
            suppress_vision: bool = True, compile: bool = False) -> Rollout:
    """`temperature` 0: greedy. `ignore_eos`: every completion runs to max_new_tokens (fixed-length
    benchmarks). `lean`: decode through `models/lean.py` (`compile`: under torch.compile).
    `suppress_vision`: never sample an image placeholder (a GRPO update cannot score one); off, greedy
    decoding is transformers' `generate`."""
    tok = processor.tokenizer
    enc = {k: v.to(model.device) for k, v in encode_prompts(processor, items).items()}
    n_images = int(enc["image_grid_thw"].shape[0]) if "image_grid_thw" in enc else 0
    if n_images not in (0, len(items)):
        raise ValueError("a GRPO batch must be all image prompts (one image each) or all text prompts")
    suppress = (vision_token_ids(tok) if suppress_vision else []) + ([tok.eos_token_id] if ignore_eos else [])
    positions, completion, completion_mask = decode(
        model, enc, group_size=group_size, max_new_tokens=max_new_tokens, eos_ids=[tok.eos_token_id],
        pad_id=tok.pad_token_id, temperature=temperature, top_p=top_p, suppress=suppress, lean=lean,
        compile=compile)
    texts = [tok.decode(c[m.bool()], skip_special_tokens=True)
             for c, m in zip(completion.cpu(), completion_mask.cpu())]
    return Rollout(items, group_size, dict(enc), positions, completion, completion_mask, texts)


@torch.no_grad()
def decode(model, enc: dict[str, torch.Tensor] | None, *, group_size: int, max_new_tokens: int, eos_ids: list[int],
           pad_id: int, temperature: float = 1.0, top_p: float = 1.0, suppress: list[int] | tuple = (),
           lean: bool = False, compile: bool = False,
           prefilled: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """G completions of each encoded, left-padded prompt (`enc` on the model's device; all prompts with one
    image each, or none). Returns the prompts' rotary positions (3, P, Lp), the completion ids (P*G, C) and
    their mask (P*G, C): 1 up to and including the first of `eos_ids`, 0 on the padding after it.
    `prefilled`: the prompts already run, as (last logits, key/value cache, attention mask, positions), one
    row a prompt (group_size 1; `generation/shared_prefix.py` builds it); `enc` is then unused."""
    dev = model.device
    was_training = model.training
    model.eval()
    if prefilled is None:
        positions = prompt_positions(model, enc)
        logits, cache = _prefill(model, enc, positions, group_size, repeat_cache=not lean)
        attention_mask = enc["attention_mask"]
    else:
        if group_size != 1:
            raise ValueError("decode: a prefilled batch holds one row a prompt (group_size 1)")
        logits, cache, attention_mask, positions = prefilled
    N = logits.shape[0]
    mask = torch.cat([attention_mask.repeat_interleave(group_size, dim=0),
                      torch.ones(N, max_new_tokens, dtype=attention_mask.dtype, device=dev)], dim=1)
    steps = _next_positions(positions, group_size, max_new_tokens)
    eos = torch.tensor(eos_ids, dtype=torch.long, device=dev)
    ids = torch.full((N, max_new_tokens), pad_id, dtype=torch.long, device=dev)
    done = torch.zeros(N, dtype=torch.bool, device=dev)
    suppress = list(suppress)
    Lp = attention_mask.shape[1]
    if lean:
        decoder = LeanDecoder(model, compile=compile)
        state = decoder.start(_prefix(cache), attention_mask, steps, max_new_tokens, group_size)
    for t in range(max_new_tokens):
        if suppress:
            logits[:, suppress] = float("-inf")
        nxt = logits.argmax(-1) if temperature == 0 else _sample_token(logits, temperature, top_p)
        nxt = nxt.masked_fill(done, pad_id)
        ids[:, t] = nxt
        done |= torch.isin(nxt, eos)
        if done.all() or t == max_new_tokens - 1:
            break
        if lean:
            logits = decoder.step(state, nxt, t)
            continue
        out = model(input_ids=nxt[:, None], attention_mask=mask[:, :Lp + t + 1],
                    position_ids=steps[:, :, t:t + 1], past_key_values=cache, use_cache=True)
        logits = out.logits[:, -1]
    model.train(was_training)
    completion = ids[:, :t + 1]
    is_eos = torch.isin(completion, eos)
    # keep tokens up to and including the first eos; everything after is padding
    completion_mask = ((is_eos.cumsum(1) - is_eos.long()) == 0).long()
    return positions, completion, completion_mask


# Rows of vocabulary-wide float32 logits alive at once while scoring: 1,024 x 151,936 x 4 B = 0.6 GB for
# Qwen3-VL, against 80 rows x 2,048 tokens x 151,936 x 4 B = 100 GB (x3 with the copies) for the whole
# mini-batch at once (issue 41, crash 3).
LOGPROB_CHUNK_ROWS = 1024


def completion_logprobs(model, ro: Rollout, temperature: float = 1.0, lean: bool = False,
                        compile: bool = False, chunk_rows: int = LOGPROB_CHUNK_ROWS) -> torch.Tensor:
    """Per-token log-probabilities (P*G, C) of the completion tokens under `model` at the sampler's
    temperature: the prompts once, their caches repeated, then the completions against them. Only the
    completion tokens up to eos are scored (0 on the padding after it, which the loss masks), through the
    LM head `chunk_rows` rows at a time (`selective_logprobs`): no (P*G, C, vocab) tensor is built. `lean`:
    the completions through `models/lean.py` (the prompts still through transformers; `compile`: under
    torch.compile)."""
    G, C = ro.group_size, ro.completion_ids.shape[1]
    if model.training and getattr(model, "is_gradient_checkpointing", False) and torch.is_grad_enabled():
        # transformers' checkpointed layers drop the key/value cache the shared prefix needs (modeling_layers.py,
        # GradientCheckpointingLayer): score the whole sequences instead, as TRL does (equal, tests/training)
        keep = ro.completion_mask.bool()                                # (N, C)
        hidden = model.model(**ro.full_inputs()).last_hidden_state[:, ro.prompt_len - 1:-1]   # (N, C, H)
        scored = selective_logprobs(hidden[keep], ro.completion_ids[keep], temperature, head=model.lm_head,
                                    chunk_rows=chunk_rows)              # (kept,)
        return hidden.new_zeros(keep.shape, dtype=torch.float32).masked_scatter(keep, scored)
    first, cache = _prefill(model, ro.prompt, ro.positions, G)         # first: (N, V), predicts token 0
    head = selective_logprobs(first, ro.completion_ids[:, 0], temperature, chunk_rows=chunk_rows)[:, None]
    if C == 1:
        return head                                                     # (N, 1)
    prompt_mask = ro.prompt["attention_mask"].repeat_interleave(G, dim=0)
    positions = _next_positions(ro.positions, G, C - 1)
    keep = ro.completion_mask[:, 1:].bool()        # (N, C-1): inputs whose next token is a real one
    targets = ro.completion_ids[:, 1:][keep]       # (kept,)        position t predicts token t+1
    if lean:  # padding-free: logits of the kept inputs only, packed (kept, V)
        decoder = LeanDecoder(model, compile=compile)
        packed = decoder.score(ro.completion_ids[:, :-1], positions, _prefix(cache), prompt_mask, keep=keep)
        rest = selective_logprobs(packed, targets, temperature, chunk_rows=chunk_rows)          # (kept,)
    else:  # the decoder's hidden states; the LM head only on kept rows, a chunk at a time
        mask = torch.cat([prompt_mask, ro.completion_mask], dim=1)
        hidden = model.model(input_ids=ro.completion_ids[:, :-1], attention_mask=mask[:, :-1],
                             position_ids=positions, past_key_values=cache, use_cache=True).last_hidden_state
        rest = selective_logprobs(hidden[keep], targets, temperature, head=model.lm_head,     # (kept,)
                                  chunk_rows=chunk_rows)
    return torch.cat([head, head.new_zeros(head.shape[0], C - 1).masked_scatter(keep, rest)], dim=1)


def selective_logprobs(x: torch.Tensor, ids: torch.Tensor, temperature: float, *, head=None,
                       chunk_rows: int = LOGPROB_CHUNK_ROWS) -> torch.Tensor:
    """log softmax(head(x) / temperature)[ids] per row: x (R, vocab) logits with `head` None, or (R, hidden)
    states and `head` the LM head; ids (R,). Per chunk of `chunk_rows` rows, the float32 logit of the id
    minus the row's logsumexp (TRL's selective_log_softmax), so at most (chunk_rows, vocab) float32 logits
    exist at once. With a head under autograd each chunk is recomputed in the backward
    (torch.utils.checkpoint): the backward keeps the hidden states, not (R, vocab) logits."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")

    def chunk(xs: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        logits = (head(xs) if head is not None else xs).float() / temperature       # (rows, V) fp32
        return logits.gather(-1, ids[:, None]).squeeze(-1) - logits.logsumexp(-1)  # (rows,)

    out = []
    for i in range(0, x.shape[0], chunk_rows):
        xs, ts = x[i:i + chunk_rows], ids[i:i + chunk_rows]
        if head is not None and torch.is_grad_enabled() and xs.requires_grad:
            out.append(torch.utils.checkpoint.checkpoint(chunk, xs, ts, use_reentrant=False))
        else:
            out.append(chunk(xs, ts))
    return torch.cat(out) if out else x.new_zeros(0, dtype=torch.float32)

