"""`sdpa_gqa`: the same numbers as transformers' sdpa, and nothing of it in a saved checkpoint."""

import copy
import json

import torch
from transformers import AutoModelForImageTextToText

from capcurriculum.models import (
    build_processor,
    build_tiny_model,
    save_pretrained_dir,
    tiny_config,
    train_tokenizer,
)
from capcurriculum.models.attention import NAME, attention_implementation

TEXTS = [f"{n} red circles and {n + 2} blue squares. How many shapes? \\boxed{{{2 * n + 2}}}" for n in range(40)]


def _pair():
    tok = train_tokenizer(TEXTS, vocab_size=300)
    processor = build_processor(tok, image_size=96)
    cfg = tiny_config(tok, num_heads=4, num_kv_heads=2)  # grouped heads: the case the copy is for
    a = build_tiny_model(cfg, seed=0).eval()
    b = build_tiny_model(copy.deepcopy(cfg), seed=0).eval()
    b.set_attn_implementation(attention_implementation(NAME))
    return processor, a, b


def test_matches_sdpa_on_padded_batches_prefill_and_decode():
    processor, a, b = _pair()
    assert b.config._attn_implementation == NAME and a.config._attn_implementation == "sdpa"
    enc = processor.tokenizer(TEXTS[:3] + ["short"], return_tensors="pt", padding=True, padding_side="left")
    with torch.no_grad():
        torch.testing.assert_close(b(**enc).logits, a(**enc).logits, atol=1e-5, rtol=1e-5)
        ga = a.generate(**enc, max_new_tokens=6, do_sample=False)
        gb = b.generate(**enc, max_new_tokens=6, do_sample=False)
    assert torch.equal(ga, gb)


def test_gradients_match_sdpa():
    processor, a, b = _pair()
    enc = processor.tokenizer(TEXTS[:4], return_tensors="pt", padding=True, padding_side="left")
    for m in (a, b):
        m.train()
        m(**enc, labels=enc["input_ids"]).loss.backward()
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        if pa.grad is not None:
            torch.testing.assert_close(pb.grad, pa.grad, atol=1e-5, rtol=1e-4, msg=n)


def test_a_checkpoint_trained_with_it_loads_with_plain_transformers(tmp_path):
    processor, _, b = _pair()
    save_pretrained_dir(b, processor, tmp_path)
    assert NAME not in (tmp_path / "config.json").read_text()
    plain = AutoModelForImageTextToText.from_pretrained(tmp_path)
    assert plain.config._attn_implementation != NAME
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "qwen3_vl"
