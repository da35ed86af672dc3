import logging
import math

import pytest
import torch

from capcurriculum.sampling.rollout import _sample_token, completion_logprobs, rollout, vision_token_ids
from capcurriculum.sampling.world_data import WorldData

MODES = [("vis_math", "vis_math"), ("text_math", "text_math"), ("perc_image", "perception")]


def _rollout(world, processor, model, mode, name, n=3, G=4, C=12):
    torch.manual_seed(0)
    with torch.no_grad():
        model.lm_head.weight[processor.tokenizer.eos_token_id] *= 20.0  # some completions stop early
    items = WorldData(*world).items(name, mode, "pretrain", limit=n)
    return rollout(model, processor, items, group_size=G, max_new_tokens=C)


def _full_forward_logprobs(model, ro):
    """The completions scored the plain way: every prompt+completion sequence whole, image repeated."""
    full = ro.full_inputs()
    logits = model(**full).logits[:, ro.prompt_len - 1:-1].float()
    return torch.log_softmax(logits, -1).gather(-1, ro.completion_ids.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("mode, name", MODES)
def test_update_logprobs_match_the_sampler(world, processor, model, mode, name):
    # Replay generation token by token (whole prefixes, no cache, no prefix sharing) with the sampled
    # tokens: the log-probs the update computes must be the sampler's distribution.
    ro = _rollout(world, processor, model, mode, name)
    assert ro.completion_ids.shape[0] == 12 and len(ro.texts) == 12
    assert (ro.completion_mask.sum(1) < ro.completion_ids.shape[1]).any(), "no completion stopped early"
    full = ro.full_inputs()
    ref = []
    with torch.no_grad():
        logp = completion_logprobs(model, ro)
        for t in range(ro.completion_ids.shape[1]):
            cut = ro.prompt_len + t
            sub = {k: (v[:, :cut] if k in ("input_ids", "attention_mask", "mm_token_type_ids") else v)
                   for k, v in full.items()}
            sub["attention_mask"] = sub["attention_mask"].clone()
            sub["attention_mask"][:, ro.prompt_len:] = 1
            step = torch.log_softmax(model(**sub).logits[:, -1].float(), -1)
            ref.append(step.gather(-1, ro.completion_ids[:, t:t + 1]).squeeze(-1))
    ref = torch.stack(ref, 1)
    m = ro.completion_mask.bool()
    torch.testing.assert_close(logp[m], ref[m], atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("mode, name", MODES[:2])
def test_shared_prefix_equals_full_sequences_in_value_and_gradient(world, processor, model, mode, name):
    # Sharing the prompt's cache across its G completions is an optimisation only: the loss and the
    # gradient (which flows into the prompt's keys/values from all G completions) are the plain ones.
    ro = _rollout(world, processor, model, mode, name)
    m = ro.completion_mask.float()
    weights = torch.randn(m.shape, generator=torch.Generator().manual_seed(1))
    grads = []
    for fn in (lambda: completion_logprobs(model, ro), lambda: _full_forward_logprobs(model, ro)):
        model.zero_grad(set_to_none=True)
        logp = fn()
        (logp * weights * m).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        grads[-1]["__logp__"] = logp.detach() * m
    assert grads[0].keys() == grads[1].keys()
    if mode == "vis_math":
        assert any(k.startswith("model.visual") for k in grads[0]), "no gradient reached the vision tower"
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], atol=1e-4, rtol=1e-3, msg=k)


def test_completions_never_contain_vision_placeholders(world, processor, model):
    ro = _rollout(world, processor, model, "text_math", "text_math", n=4, G=8, C=16)
    with torch.no_grad():  # make the placeholders the likeliest tokens: they must still never be sampled
        model.lm_head.weight[vision_token_ids(processor.tokenizer)] *= 50.0
    torch.manual_seed(0)
    ro = rollout(model, processor, ro.items, group_size=8, max_new_tokens=16)
    bad = torch.isin(ro.completion_ids, torch.tensor(vision_token_ids(processor.tokenizer)))
    assert not (bad & ro.completion_mask.bool()).any()


def test_rollout_is_seeded(world, processor, model):
    items = WorldData(*world).items("vis_math", "vis_math", "pretrain", limit=2)
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        runs.append(rollout(model, processor, items, group_size=4, max_new_tokens=8).completion_ids)
    assert torch.equal(runs[0], runs[1])


def test_ignore_eos_gives_fixed_length_completions(world, processor, model):
    with torch.no_grad():
        model.lm_head.weight[processor.tokenizer.eos_token_id] *= 50.0  # eos would win nearly every draw
    items = WorldData(*world).items("vis_math", "vis_math", "pretrain", limit=2)
    torch.manual_seed(0)
    ro = rollout(model, processor, items, group_size=3, max_new_tokens=7, ignore_eos=True)
    assert ro.completion_ids.shape == (6, 7) and bool(ro.completion_mask.all())
    assert not (ro.completion_ids == processor.tokenizer.eos_token_id).any()


# --- the lean completion path (models/lean.py) ------------------------------------------------------------
@pytest.mark.parametrize("mode, name", MODES)
def test_lean_scoring_equals_transformers_in_value_and_gradient(world, processor, model, mode, name):
    ro = _rollout(world, processor, model, mode, name)
    m = ro.completion_mask.float()
    weights = torch.randn(m.shape, generator=torch.Generator().manual_seed(2))
    grads = []
    for lean in (False, True):
        model.zero_grad(set_to_none=True)
        logp = completion_logprobs(model, ro, temperature=0.7, lean=lean)
        (logp * weights * m).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        grads[-1]["__logp__"] = logp.detach() * m
    assert grads[0].keys() == grads[1].keys()
    if mode != "text_math":
        assert any(k.startswith("model.visual") for k in grads[1]), "no gradient reached the vision tower"
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], atol=1e-5, rtol=1e-5, msg=k)


@pytest.mark.parametrize("mode, name", MODES[:2])
def test_lean_decoding_samples_what_transformers_samples(world, processor, model, mode, name):
    with torch.no_grad():
        model.lm_head.weight[processor.tokenizer.eos_token_id] *= 20.0  # some completions stop early
    items = WorldData(*world).items(name, mode, "pretrain", limit=3)
    runs = []
    for lean in (False, True):
        torch.manual_seed(5)
        runs.append(rollout(model, processor, items, group_size=4, max_new_tokens=12, lean=lean))
    assert (runs[0].completion_mask.sum(1) < 12).any(), "no completion stopped early"
    assert torch.equal(runs[0].completion_ids, runs[1].completion_ids)
    assert torch.equal(runs[0].completion_mask, runs[1].completion_mask) and runs[0].texts == runs[1].texts


def test_lean_refuses_a_model_it_does_not_reproduce(model):
    from types import SimpleNamespace

    from capcurriculum.models.lean import LeanDecoder, supports

    assert supports(model)
    other = SimpleNamespace(config=SimpleNamespace(model_type="llava", text_config=SimpleNamespace()))
    assert not supports(other)
    with pytest.raises(ValueError, match="llava"):
        LeanDecoder(other)


def test_sampler_draws_in_proportion_and_never_a_masked_token():
    torch.manual_seed(0)
    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    logits = probs.log().expand(20_000, -1).clone()
    draws = _sample_token(logits, temperature=1.0, top_p=1.0)
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    assert freq[3] == 0
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)
    top = _sample_token(logits, temperature=1.0, top_p=0.75)  # the smallest set reaching 0.75: tokens 0, 1
    assert set(top.tolist()) == {0, 1}


def test_lean_greedy_generation_is_transformers_generate(world, processor, model):
    from capcurriculum.sampling.capabilities import generate

    with torch.no_grad():
        model.lm_head.weight[processor.tokenizer.eos_token_id] *= 8.0  # some responses stop early
    data = WorldData(*world)
    items = data.items("vis_math", "vis_math", "pretrain", limit=5) + data.items("text_math", "text_math", "pretrain", limit=5)
    plain = generate(model, processor, items, batch_size=5, max_new_tokens=10)
    assert len({r["n_tokens"] for r in plain}) > 1, "every response ran to the same length"
    assert generate(model, processor, items, batch_size=5, max_new_tokens=10, lean=True) == plain
    assert generate(model, processor, items, batch_size=10, max_new_tokens=10, lean=True) == plain  # mixed batch


@pytest.mark.slow  # ~50 s of compiling
def test_compiled_lean_path_scores_and_samples_what_the_eager_one_does(world, processor, model):
    """train.compile: the lean stack under torch.compile is the same function, gradients included; its graphs
    (here scoring with gradients, decoding at token 0 and after) do not count against dynamo's process-wide
    recompile limit, which a merged stage's mix of chunk sizes used to exhaust (the rest then ran eager), and
    none bypasses AOTAutograd's on-disk cache (the attention's autocast switch did), so the next process, the
    next DVC node, loads them instead of compiling them again; and none is traced twice (symbolic module floats
    made dynamo restart its analyses)."""
    from torch._dynamo.utils import counters

    restarts = _RecordsStartingWith("Restarting analysis")
    dynamo_log = logging.getLogger("torch._dynamo.convert_frame")  # where dynamo reports a restart, at INFO
    level = dynamo_log.level
    dynamo_log.addHandler(restarts)
    dynamo_log.setLevel(logging.INFO)
    torch._dynamo.reset()  # compile here, whatever ran before in this process
    counters["aot_autograd"].clear()
    try:
        with torch._dynamo.config.patch(recompile_limit=1, fail_on_recompile_limit_hit=True):
            _compiled_equals_eager(world, processor, model)
    finally:
        dynamo_log.removeHandler(restarts)
        dynamo_log.setLevel(level)
    assert counters["aot_autograd"]["total"] > 0
    assert counters["aot_autograd"]["autograd_cache_bypass"] == 0, dict(counters["aot_autograd"])
    assert restarts.messages == []
    # what keeps inductor's backward from atomic adds, whose order made seeded two-thread steps differ
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()


class _RecordsStartingWith(logging.Handler):
    def __init__(self, prefix: str) -> None:
        super().__init__(logging.INFO)
        self.prefix, self.messages = prefix, []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.prefix):
            self.messages.append(record.getMessage())


def _compiled_equals_eager(world, processor, model):
    ro = _rollout(world, processor, model, "vis_math", "vis_math")
    m = ro.completion_mask.float()
    weights = torch.randn(m.shape, generator=torch.Generator().manual_seed(2))
    out = []
    for compile in (False, True):
        model.zero_grad(set_to_none=True)
        logp = completion_logprobs(model, ro, temperature=0.7, lean=True, compile=compile)
        (logp * weights * m).sum().backward()
        out.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        out[-1]["__logp__"] = logp.detach() * m
    assert out[0].keys() == out[1].keys()
    for k in out[0]:
        torch.testing.assert_close(out[1][k], out[0][k], atol=1e-4, rtol=1e-4, msg=k)

    items = WorldData(*world).items("vis_math", "vis_math", "pretrain", limit=3)
    runs = []
    for compile in (False, True):
        torch.manual_seed(5)
        runs.append(rollout(model, processor, items, group_size=4, max_new_tokens=12, lean=True,
                            compile=compile))
    assert torch.equal(runs[0].completion_ids, runs[1].completion_ids) and runs[0].texts == runs[1].texts


class _VocabWide(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the shape of every tensor an op creates whose last dimension is the vocabulary."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab, self.shapes = vocab, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.dim() >= 1 and t.shape[-1] == self.vocab:
                self.shapes.append((tuple(t.shape), t.dtype))
        return out


def test_selective_logprobs_equal_the_full_log_softmax_and_hold_one_chunk_of_float32_logits():
    from capcurriculum.sampling.rollout import selective_logprobs

    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=False)
    x, ids = torch.randn(23, 16, requires_grad=True), torch.randint(0, 50, (23,))
    full = torch.log_softmax(head(x).float() / 0.7, -1).gather(-1, ids[:, None]).squeeze(-1)
    gx_full, gw_full = torch.autograd.grad(full.sum(), (x, head.weight))
    with _VocabWide(50) as seen:
        got = selective_logprobs(x, ids, 0.7, head=head, chunk_rows=4)
        gx, gw = torch.autograd.grad(got.sum(), (x, head.weight))
    torch.testing.assert_close(got, full, atol=1e-6, rtol=1e-6)   # fp32 tolerance
    torch.testing.assert_close(gx, gx_full, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(gw, gw_full, atol=1e-6, rtol=1e-5)
    rows = [shape[0] for shape, _ in seen.shapes if shape != (16, 50)]  # (16, 50): the head's weight, transposed
    assert max(rows) == 4  # one chunk of rows, forward and recomputed backward
    logits = head(x).detach()  # logits in, no head: the float32 copy is still one chunk at a time
    with _VocabWide(50) as seen:
        got = selective_logprobs(logits, ids, 0.7, chunk_rows=4)
    torch.testing.assert_close(got, full.detach(), atol=1e-6, rtol=1e-6)
    assert max(shape[0] for shape, dtype in seen.shapes if dtype == torch.float32 and shape[0] != 23) == 4


def test_scoring_never_builds_rows_by_tokens_by_vocabulary(world, processor, model):
    # The update's scoring pass (transformers' forward, the GPU path): the LM head runs on kept completion
    # tokens a chunk at a time: no (rows, tokens, vocab) tensor, and the only vocabulary-wide tensors with more
    # rows than a chunk are the prompts' last logits (one row a prompt, then a completion).
    ro = _rollout(world, processor, model, "vis_math", "vis_math", C=12)
    N, V = ro.completion_ids.shape[0], model.lm_head.out_features
    with torch.no_grad():
        exact = _full_forward_logprobs(model, ro)
    H = model.lm_head.in_features
    for chunk in (None, 5):  # the default chunk, then a chunk smaller than the completions' count
        with _VocabWide(V) as seen:
            logp = completion_logprobs(model, ro, **({} if chunk is None else {"chunk_rows": chunk}))
            (logp * ro.completion_mask).sum().backward()
        m = ro.completion_mask.bool()
        torch.testing.assert_close(logp.detach()[m], exact[m], atol=2e-4, rtol=1e-4)
        shapes = [shape for shape, _ in seen.shapes if shape != (H, V)]  # (H, V): the head's weight
        tokens_wide = [s for s in shapes if len(s) > 2 and math.prod(s[:-1]) > N]  # (N, C, V): 1 row a token
        assert not tokens_wide, f"(rows, tokens, vocab) tensors built: {tokens_wide}"
    rows = [shape[0] for shape in shapes]
    assert max(r for r in rows if r not in (N, N // ro.group_size)) == 5  # the prompts' last logits aside
