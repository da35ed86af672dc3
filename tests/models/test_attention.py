"""`sdpa_gqa` and the batched vision attention: the same numbers as transformers' sdpa, and nothing of
them in a saved checkpoint."""

import copy
import json

import torch
from PIL import Image, ImageDraw
from transformers import AutoModelForImageTextToText

from capcurriculum.models import (
    build_processor,
    build_tiny_model,
    load_model_and_processor,
    save_pretrained_dir,
    tiny_config,
    train_tokenizer,
)
from capcurriculum.models.attention import (
    NAME,
    _batched_vision_attention,
    attention_implementation,
    batch_vision_attention,
)

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


def _scenes(n):
    imgs = []
    for i in range(n):
        img = Image.new("RGB", (96, 96), (255, 255, 255))
        ImageDraw.Draw(img).ellipse([10 + 5 * i, 20, 50 + 5 * i, 60], fill=(200, 30 * i, 30))
        imgs.append(img)
    return imgs


def test_batched_vision_attention_gives_transformers_numbers_on_equal_size_images():
    processor, _, b = _pair()
    routed = copy.deepcopy(b)
    assert batch_vision_attention(routed) == routed.config.vision_config.depth
    assert routed.config.vision_config._attn_implementation in ("sdpa", NAME)  # the batched path, not the fallback
    msgs = [[{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "How many?"}]}]
            for img in _scenes(3)]
    enc = processor.apply_chat_template(msgs, tokenize=True, return_dict=True, return_tensors="pt",
                                        padding=True, add_generation_prompt=True)
    with torch.no_grad():
        assert torch.equal(routed(**enc).logits, b(**enc).logits)


def test_batched_vision_attention_falls_back_on_images_of_different_sizes():
    _, _, b = _pair()
    attn = b.model.visual.blocks[0].attn
    routed = copy.deepcopy(attn)
    batch_vision_attention(routed)
    dim = b.config.vision_config.hidden_size // b.config.vision_config.num_heads
    x = torch.randn(100, b.config.vision_config.hidden_size)
    rope = (torch.randn(100, dim), torch.randn(100, dim))
    for cu in ([0, 36, 100], [0, 50, 100]):  # unequal: transformers' loop; equal: one batched call
        cu = torch.tensor(cu, dtype=torch.int32)
        with torch.no_grad():
            torch.testing.assert_close(routed(x, cu, rope), attn(x, cu, rope), atol=1e-6, rtol=1e-6)


def test_loading_with_sdpa_gqa_routes_the_vision_tower(tmp_path):
    processor, _, b = _pair()
    save_pretrained_dir(b, processor, tmp_path)
    loaded, _ = load_model_and_processor(tmp_path, attn_implementation=attention_implementation(NAME))
    plain, _ = load_model_and_processor(tmp_path)
    assert all(getattr(blk.attn.forward, "__func__", None) is _batched_vision_attention
               for blk in loaded.model.visual.blocks)
    assert not any(getattr(blk.attn.forward, "__func__", None) is _batched_vision_attention
                   for blk in plain.model.visual.blocks)
