"""generation/shared_prefix.py: prompts that begin alike prefill their common part once, same tokens."""

import pytest
import torch

from capcurriculum.generation import Request, SamplingConfig
from capcurriculum.generation.hf import HFBackend
from capcurriculum.generation.shared_prefix import shared_runs

GREEDY = SamplingConfig(max_new_tokens=8, temperature=0.0)


def test_runs_are_consecutive_prompts_sharing_enough_and_each_keeps_a_token():
    ids = [[1, 2, 3, 4, 5], [1, 2, 3, 4, 6, 7], [1, 2, 3, 4], [1, 2, 9], [8], [8]]
    assert shared_runs(ids, min_shared=3) == [(0, 3, 3), (3, 4, 2), (4, 5, 0), (5, 6, 0)]
    # [1,2,3,4] may share only 3 of its 4 tokens; a lone prompt shares all but its last
    assert shared_runs(ids, min_shared=2) == [(0, 4, 2), (4, 5, 0), (5, 6, 0)]
    assert shared_runs([[5, 5, 5]], min_shared=1) == [(0, 1, 2)]
    with pytest.raises(ValueError, match="at least one token"):
        shared_runs([[1], []], min_shared=1)


def caption_requests() -> list[Request]:
    """A caption's questions, as the filter's caption path asks them, two captions interleaved."""
    captions = ["A red circle is left of the blue square. There are 3 circles.",
                "A green triangle is above the yellow square. How many triangles are there? 1"]
    questions = ["How many circles are there?", "What is 1 + 4?", "A red circle?", "Is the blue square above?"]
    return [Request([{"role": "user", "content": [{"type": "text", "text": f"Caption: {c}\n{q}"}]}], id=f"{i}|{q}")
            for q in questions for i, c in enumerate(captions)]


def test_the_caption_path_gives_generates_tokens_with_fewer_prompt_rows(tiny_model_dir, monkeypatch):
    reqs = caption_requests()
    plain = HFBackend(tiny_model_dir, batch_size=8, progress=False, threads=1)
    want = plain.generate(reqs, GREEDY)
    rows = []
    real = plain.model.forward

    def counting(*a, **k):
        if k.get("past_key_values") is not None and k["past_key_values"].get_seq_length() == 0:
            rows.append(k["input_ids"].shape[0])   # a prefill from an empty cache
        return real(*a, **k)

    monkeypatch.setattr(plain.model, "forward", counting)
    options = dict(model=plain.model, processor=plain.processor, progress=False, threads=1, lean=True)
    for batch_size in (8, 3):
        rows.clear()
        got = HFBackend(batch_size=batch_size, **options).generate(reqs, GREEDY)
        assert [r.id for r in got] == [r.id for r in reqs]
        assert [r.texts for r in got] == [r.texts for r in want]
        assert [r.n_tokens for r in got] == [r.n_tokens for r in want]
        # each caption's prefix once a batch (8: one batch, two captions), not once a question
        assert sum(rows) == (2 if batch_size == 8 else 4)
    rows.clear()
    off = HFBackend(batch_size=8, shared_prefix=None, **options).generate(reqs, GREEDY)
    assert [r.texts for r in off] == [r.texts for r in want] and sum(rows) == len(reqs)
    with pytest.raises(ValueError, match="shared_prefix must be a positive int"):
        HFBackend(shared_prefix=0, **options)


def test_positions_continue_as_in_a_whole_prefill(tiny_model_dir):
    """The logits that start decoding equal a plain prefill's for every prompt of a run."""
    from capcurriculum.generation.shared_prefix import prefill_shared
    from capcurriculum.sampling.rollout import _prefill, prompt_positions

    backend = HFBackend(tiny_model_dir, progress=False)
    tok, model = backend.tokenizer, backend.model
    texts = [backend._prompt_text(r) for r in caption_requests()]
    ids = sorted(tok(t, add_special_tokens=False).input_ids for t in texts)
    logits, _, mask, positions = prefill_shared(model, ids, tok.pad_token_id, min_shared=8)
    enc = tok.pad({"input_ids": ids}, return_tensors="pt", padding_side="left")
    with torch.no_grad():
        want, _ = _prefill(model, dict(enc), prompt_positions(model, enc), 1)
    torch.testing.assert_close(logits, want, atol=1e-5, rtol=1e-5)
    assert positions.amax(dim=(0, 2)).tolist() == [len(x) - 1 for x in ids]
    assert mask.sum(1).tolist() == [len(x) for x in ids]
