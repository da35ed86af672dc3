"""The hf backend on a tiny Qwen3-VL checkpoint: batching, ordering, images, sampling, failures."""

from __future__ import annotations

import pytest
import torch

from capcurriculum.generation import HFBackend, Request, SamplingConfig, make_backend

GREEDY = SamplingConfig(max_new_tokens=12, temperature=0)


def mixed_requests(image_paths):
    """Image and text-only requests, deliberately not in prompt-length order."""
    qs = [
        "How many circles?",
        "What is 3 + 4? Think step by step and put the answer in a box.",
        "Where is the red circle relative to the blue square? Answer briefly.",
        "Count.",
    ]
    reqs = [Request.from_prompt(f"img{i}", q, image=p) for i, (q, p) in enumerate(zip(qs, image_paths))]
    reqs += [
        Request.from_prompt("txt0", "What is 2 + 5?"),
        Request(
            id="txt1",
            messages=[
                {"role": "system", "content": "You are a careful counter."},
                {
                    "role": "user",
                    "content": "How many stars are there in a row of five "
                    "stars and two circles? Answer with a number.",
                },
            ],
        ),
        Request.from_prompt("txt2", "Hi"),
        # two images in one request
        Request(
            id="two_img",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "image": image_paths[0]},
                        {"type": "image", "image": image_paths[1]},
                        {"type": "text", "text": "Which picture has more circles?"},
                    ],
                }
            ],
        ),
    ]
    return reqs


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    # threads=1: on a shared 2-core machine two OpenMP threads make tiny-model steps ~30x slower
    with make_backend(
        {"backend": "hf", "batch_size": 8, "progress": False, "threads": 1}, tiny_model_dir
    ) as b:
        yield b


def test_greedy_is_deterministic_and_well_formed(backend, image_paths):
    reqs = mixed_requests(image_paths)
    a = backend.generate(reqs, GREEDY)
    b = backend.generate(reqs, GREEDY)
    assert [r.id for r in a] == [r.id for r in reqs]
    assert all(r.ok for r in a), [r.error for r in a]
    assert [r.texts for r in a] == [r.texts for r in b]
    assert [r.n_tokens for r in a] == [r.n_tokens for r in b]
    for r in a:
        assert len(r.texts) == len(r.n_tokens) == len(r.finish_reasons) == 1
        assert 1 <= r.n_tokens[0] <= GREEDY.max_new_tokens
        if r.finish_reasons[0] == "length":
            assert r.n_tokens[0] == GREEDY.max_new_tokens
        # decoded without special tokens
        assert "<|im_end|>" not in r.texts[0] and "<|endoftext|>" not in r.texts[0]
    assert any(r.texts[0] for r in a)
    # the fixture model stops early on some prompts: eos must cut those rows inside a padded batch
    assert {r.finish_reasons[0] for r in a} == {"stop", "length"}, [r.n_tokens for r in a]


def test_batch_size_1_and_8_agree_and_order_is_restored(backend, tiny_model_dir, image_paths):
    """Each request generated alone is the reference: batching, padding and length-sorting must
    not change any text, and every text must come back to its own request."""
    reqs = mixed_requests(image_paths)
    batched = backend.generate(reqs, GREEDY)
    single = HFBackend(
        model=backend.model, processor=backend.processor, batch_size=1, progress=False, threads=1
    )
    backend.model.train()  # a training loop's policy: generated in eval mode, handed back in train mode
    threads = torch.get_num_threads()
    try:
        alone = single.generate(reqs, GREEDY)
        assert backend.model.training and torch.get_num_threads() == threads
    finally:
        backend.model.eval()
    assert [r.id for r in alone] == [r.id for r in batched] == [r.id for r in reqs]
    assert [r.texts for r in alone] == [r.texts for r in batched]
    assert [r.n_tokens for r in alone] == [r.n_tokens for r in batched]
    # a reversed order gives the same text per id (results follow their requests)
    rev = backend.generate(list(reversed(reqs)), GREEDY)
    assert [r.id for r in rev] == [r.id for r in reversed(reqs)]
    assert {r.id: r.texts for r in rev} == {r.id: r.texts for r in batched}
    # the prompts really differ in length, so the sort did reorder them
    keys = [backend._length_key(backend.tokenizer(backend._prompt_text(r), add_special_tokens=False).input_ids, [])
            for r in reqs]
    assert keys != sorted(keys)


def test_images_reach_the_model(backend, image_paths):
    """The same question about different pictures does not always get the same answer."""
    reqs = [Request.from_prompt(f"q{i}", "How many circles?", image=p) for i, p in enumerate(image_paths)]
    texts = {r.texts[0] for r in backend.generate(reqs, SamplingConfig(max_new_tokens=8))}
    assert len(texts) > 1


def test_seeded_sampling_reproduces(backend, image_paths):
    reqs = mixed_requests(image_paths)[:5]
    s = SamplingConfig(max_new_tokens=10, temperature=1.0, top_p=0.95, n=3, seed=123)
    a = backend.generate(reqs, s)
    b = backend.generate(reqs, s)
    assert all(r.ok and len(r.texts) == 3 and len(r.n_tokens) == 3 for r in a)
    assert [r.texts for r in a] == [r.texts for r in b]
    assert any(len(set(r.texts)) > 1 for r in a), "n samples of one prompt should differ"
    c = backend.generate(reqs, SamplingConfig(max_new_tokens=10, temperature=1.0, top_p=0.95, n=3, seed=124))
    assert [r.texts for r in c] != [r.texts for r in a]
    # greedy with n > 1 repeats the one greedy text
    g = backend.generate(reqs[:1], SamplingConfig(max_new_tokens=10, n=2))[0]
    assert (
        g.texts[0] == g.texts[1] == backend.generate(reqs[:1], SamplingConfig(max_new_tokens=10))[0].texts[0]
    )


def test_unreadable_image_fails_only_its_request(backend, image_paths, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"this is not a png")
    missing = tmp_path / "nowhere" / "missing.jpg"
    reqs = mixed_requests(image_paths)
    bad = [
        Request.from_prompt("missing", "How many?", image=str(missing)),
        Request.from_prompt("corrupt", "How many?", image=corrupt),
    ]
    out = backend.generate(reqs[:3] + bad + reqs[3:], GREEDY)
    assert [r.id for r in out] == [r.id for r in reqs[:3]] + ["missing", "corrupt"] + [r.id for r in reqs[3:]]
    by_id = {r.id: r for r in out}
    assert str(missing) in by_id["missing"].error and by_id["missing"].texts == []
    assert str(corrupt) in by_id["corrupt"].error
    good = backend.generate(reqs, GREEDY)
    assert [by_id[r.id].texts for r in reqs] == [r.texts for r in good]


def test_backend_options_are_checked(tiny_model_dir):
    with pytest.raises(ValueError, match="batch_size"):
        HFBackend(tiny_model_dir, batch_size=0)
    with pytest.raises(ValueError, match="model_ref"):
        HFBackend()
    with pytest.raises(ValueError, match="lean must be true or false"):
        HFBackend(tiny_model_dir, lean="yes")


def test_lean_decoding_gives_generates_tokens(backend, image_paths, monkeypatch):
    """`lean`: one-image and text-only batches decode through models/lean.py with the same greedy tokens
    (and eos handling) as `generate`; the two-image request and sampled requests still use `generate`."""
    import capcurriculum.sampling.rollout as rollout

    calls = []
    real = rollout.decode
    def rows(enc, prefilled=None):   # a text batch arrives prefilled (generation/shared_prefix.py)
        return enc["input_ids"].shape[0] if enc is not None else prefilled[0].shape[0]

    monkeypatch.setattr(rollout, "decode",
                        lambda *a, **k: calls.append(rows(a[1], k.get("prefilled"))) or real(*a, **k))
    reqs = mixed_requests(image_paths)
    plain = backend.generate(reqs, GREEDY)
    lean = HFBackend(model=backend.model, processor=backend.processor, batch_size=8, progress=False, threads=1,
                     lean=True)
    got = lean.generate(reqs, GREEDY)
    assert sorted(calls) == [3, 4]  # the three text prompts, the four one-image prompts; not the two-image one
    assert [r.texts for r in got] == [r.texts for r in plain]
    assert [r.n_tokens for r in got] == [r.n_tokens for r in plain]
    assert [r.finish_reasons for r in got] == [r.finish_reasons for r in plain]
    calls.clear()
    lean.generate(reqs, SamplingConfig(max_new_tokens=4, temperature=1.0, n=2, seed=0))
    assert calls == []
