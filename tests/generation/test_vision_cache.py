"""generation/vision_cache.py: the processor's batch, with each distinct image through the tower once."""

import pytest
import torch
from PIL import Image, ImageDraw

from capcurriculum.models import build_processor, build_tiny_model, tiny_config, train_tokenizer
from capcurriculum.generation.vision_cache import VisionFeatureCache

CORPUS = [f"What color is the {s} at {p}? <think>{p}: {c} {s}</think> \\boxed{{{c}}}"
          for c in ("red", "green", "blue") for s in ("circle", "square") for p in ("top left", "center")] * 4
COLORS = [(200, 30, 30), (30, 160, 40), (30, 60, 200)]


def scene(color, size=(96, 96)) -> Image.Image:
    img = Image.new("RGB", size, (240, 240, 240))
    ImageDraw.Draw(img).ellipse([8, 8, 40, 40], fill=color)
    return img


@pytest.fixture(scope="module")
def tiny():
    tok = train_tokenizer(CORPUS, vocab_size=320)
    return build_tiny_model(tiny_config(tok, max_position_embeddings=512), seed=3).eval(), \
        build_processor(tok, image_size=96)


def chat(processor, question: str) -> str:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def batch(processor):
    """Repeated images, questions of different lengths, and one image of another size (another grid)."""
    images = [scene(c) for c in COLORS] + [scene(COLORS[0], size=(128, 64))]
    questions = ["What color?", "What color is the circle at top left?", "Is there a square?"]
    texts, ims, keys = [], [], []
    for i, im in enumerate(images):
        for q in questions[: 1 + i % 3]:
            texts.append(chat(processor, q))
            ims.append(im)
            keys.append(f"scene_{i}.png")
    return texts, ims, keys


@pytest.mark.parametrize("special", [None, False])
def test_the_batch_is_the_processors_and_the_logits_are_bit_identical(tiny, special):
    model, processor = tiny
    texts, images, keys = batch(processor)
    extra = {} if special is None else {"add_special_tokens": special}
    want = processor(text=texts, images=images, return_tensors="pt", padding=True, padding_side="left", **extra)
    cache = VisionFeatureCache(model, processor)
    cache.encode(texts[:3], images[:3], keys[:3], add_special_tokens=special)   # a second call reuses these
    got = cache.encode(texts, images, keys, add_special_tokens=special)
    assert "pixel_values" not in got and "mm_encoder_outputs" in got
    for k in ("input_ids", "attention_mask", "mm_token_type_ids", "image_grid_thw"):
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k
    with torch.no_grad():
        assert torch.equal(model(**got).logits, model(**want).logits)
    assert cache.computed == len(set(keys)) == 4 and len(cache) == 4
    assert cache.reused == (3 - 2) + (len(keys) - 2)   # 3 slots of 2 pictures, then 7 of 4 (2 of them new)


def test_a_full_cache_drops_its_oldest_images_and_still_gives_the_same_batch(tiny):
    model, processor = tiny
    texts, images, keys = batch(processor)
    first = [i for i, k in enumerate(keys) if k in ("scene_0.png", "scene_1.png")]
    rest = [i for i in range(len(keys)) if i not in first]
    pick = lambda idx: ([texts[i] for i in idx], [images[i] for i in idx], [keys[i] for i in idx])  # noqa: E731
    small = VisionFeatureCache(model, processor, max_bytes=1)   # room for the newest call's images only
    small.encode(*pick(first))
    small.encode(*pick(rest))
    assert len(small) == 2                   # scene_0 and scene_1 made way for scene_2 and scene_3
    got = small.encode(*pick(first))
    assert small.computed == 6
    want = VisionFeatureCache(model, processor).encode(*pick(first))
    with torch.no_grad():
        assert torch.equal(model(**got).logits, model(**want).logits)


def test_keys_must_match_images_and_other_models_are_refused(tiny):
    model, processor = tiny
    with pytest.raises(ValueError, match="2 images but 1 keys"):
        VisionFeatureCache(model, processor).encode(["a", "b"], [scene(COLORS[0])] * 2, ["k"])

    class Other(torch.nn.Module):
        class config:  # noqa: N801 - stands in for a transformers config
            model_type = "llava"

    with pytest.raises(ValueError, match="qwen3_vl.*llava"):
        VisionFeatureCache(Other(), processor)


def test_the_hf_backend_sends_each_image_of_a_call_through_the_tower_once(tiny, tmp_path, monkeypatch):
    from capcurriculum.generation import Request, SamplingConfig
    from capcurriculum.generation.hf import HFBackend

    model, processor = tiny
    paths = []
    for i, c in enumerate(COLORS):
        scene(c).save(tmp_path / f"s{i}.png")
        paths.append(str(tmp_path / f"s{i}.png"))
    questions = ("What color?", "Is there a circle at top left?", "What shape is the red object?")
    requests = [Request([{"role": "user", "content": [{"type": "image", "image": p}, {"type": "text", "text": q}]}],
                        id=f"{i}|{q}") for i, p in enumerate(paths) for q in questions]
    greedy = SamplingConfig(max_new_tokens=6, temperature=0.0)

    def texts(**options):
        backend = HFBackend(model=model, processor=processor, batch_size=4, progress=False, **options)
        return [r.text for r in backend.generate(requests, greedy)]

    plain = texts(lean=False)   # transformers' generate
    seen = []
    real = model.model.get_image_features
    monkeypatch.setattr(model.model, "get_image_features",
                        lambda pv, grid, **kw: seen.append(len(grid)) or real(pv, grid, **kw))
    assert texts(lean=True, vision_cache=False) == plain
    assert sum(seen) == len(requests)
    seen.clear()
    assert texts(lean=True) == plain
    assert sum(seen) == len(paths)          # 9 prompts, 3 pictures
    with pytest.raises(ValueError, match="vision_cache must be true or false"):
        HFBackend(model=model, processor=processor, vision_cache="yes")
