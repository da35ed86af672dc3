"""Stand-ins in the paper models' architectures: built offline, reloaded by plain transformers, generated
from through the project's hf backend (image prompts included for the VL ones)."""

import json

import pytest
import torch
from PIL import Image, ImageDraw
from transformers import (
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2ForCausalLM,
    Qwen3VLForConditionalGeneration,
)

from capcurriculum.generation import Request, SamplingConfig, make_backend
from capcurriculum.models import load_model_and_processor, train_tokenizer
from capcurriculum.models.standins import (
    build_standin,
    qwen2_5_vl_config,
    qwen2_config,
    qwen25_mrope_section,
)

CORPUS = [
    f"A {c} circle is {p} {n} squares. How many squares? <think>{n} squares</think> \\boxed{{{n}}}"
    for n in range(8) for c in ("red", "blue", "green") for p in ("left of", "above")
] * 2
GREEDY = SamplingConfig(max_new_tokens=6, temperature=0)
EXPECTED = {  # arch -> (class, model_type, processor class)
    "qwen2_5_vl": (Qwen2_5_VLForConditionalGeneration, "qwen2_5_vl", "Qwen2_5_VLProcessor"),
    "qwen2": (Qwen2ForCausalLM, "qwen2", None),
    "qwen3_vl": (Qwen3VLForConditionalGeneration, "qwen3_vl", "Qwen3VLProcessor"),
}


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, vocab_size=320)


@pytest.fixture(scope="module")
def built(tok, tmp_path_factory):
    root = tmp_path_factory.mktemp("standins")
    # the text model last: the shared tokenizer has then been through two VL processors' save_pretrained
    return {arch: build_standin(arch, tok, root / arch, seed=3) for arch in ("qwen2_5_vl", "qwen3_vl", "qwen2")}


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    img = Image.new("RGB", (96, 96), "white")
    draw = ImageDraw.Draw(img)
    draw.ellipse([8, 8, 44, 44], fill=(220, 30, 30))
    draw.rectangle([52, 52, 88, 88], fill=(30, 70, 225))
    path = tmp_path_factory.mktemp("img") / "scene.png"
    img.save(path)
    return str(path)


def _messages(question, image=None):
    parts = ([{"type": "image", "image": image}] if image else []) + [{"type": "text", "text": question}]
    return [{"role": "user", "content": parts}]


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_a_standin_is_a_plain_from_pretrained_directory(built, arch):
    out = built[arch]
    cls, model_type, processor_class = EXPECTED[arch]
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
            "chat_template.jinja"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl"))]
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == model_type and config["architectures"] == [cls.__name__]
    auto = AutoModelForCausalLM if processor_class is None else AutoModelForImageTextToText
    model = auto.from_pretrained(out)
    assert type(model) is cls
    processor = AutoProcessor.from_pretrained(out)
    if processor_class is None:  # a text LLM: its processor is its tokenizer (no image processor to look for)
        assert not hasattr(processor, "image_processor") and "processor_class" not in json.loads(
            (out / "tokenizer_config.json").read_text())
    else:
        assert type(processor).__name__ == processor_class
    tokenizer = getattr(processor, "tokenizer", processor)
    assert tokenizer.convert_ids_to_tokens(model.generation_config.eos_token_id) == "<|im_end|>"
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    prompt = tokenizer.apply_chat_template(_messages("How many squares?"), add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")


def test_qwen25_vl_places_the_papers_image_tokens(built, image_path):
    processor = AutoProcessor.from_pretrained(built["qwen2_5_vl"])
    text = processor.apply_chat_template(_messages("How many squares?", image_path), add_generation_prompt=True,
                                         tokenize=False)
    enc = processor(text=[text], images=[Image.open(image_path).convert("RGB")], return_tensors="pt")
    # Qwen's smart_resize: 96 px rounds to 84 (3 x 28) -> 6x6 patches of 14 -> 3x3 merged = 9 image tokens
    assert enc["image_grid_thw"].tolist() == [[1, 6, 6]]
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert enc["input_ids"][0].tolist().count(image_id) == 9
    big = processor(text=[text], images=[Image.new("RGB", (400, 400), "white")], return_tensors="pt")
    assert big["image_grid_thw"].tolist() == [[1, 8, 8]]   # scaled down to the 112-px budget


def test_the_same_seed_gives_the_same_weights_and_another_seed_does_not(tok, built, tmp_path):
    from safetensors.torch import load_file

    again = build_standin("qwen2_5_vl", tok, tmp_path / "again", seed=3)
    other = build_standin("qwen2_5_vl", tok, tmp_path / "other", seed=4)
    a, b, c = (load_file(d / "model.safetensors") for d in (built["qwen2_5_vl"], again, other))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_the_hf_backend_generates_what_plain_transformers_generates(built, arch, image_path):
    """Greedy tokens through the project's backend equal plain `generate` on the reloaded model, for a text
    prompt and (VL models) an image prompt: the backend loads the right class and feeds the pixels."""
    out = built[arch]
    with_image = arch != "qwen2"
    requests = [Request.from_prompt("text", "How many squares?")]
    if with_image:
        requests.append(Request.from_prompt("image", "How many squares?", image=image_path))
    with make_backend({"backend": "hf", "batch_size": 1, "progress": False, "threads": 1}, out) as backend:
        assert type(backend.model) is EXPECTED[arch][0]
        results = backend.generate(requests, GREEDY)
        sampled = backend.generate(requests, SamplingConfig(max_new_tokens=4, temperature=1.0, n=2, seed=0))
    assert all(r.ok for r in results + sampled), [r.error for r in results + sampled]
    assert all(len(r.texts) == 2 and all(1 <= n <= 4 for n in r.n_tokens) for r in sampled)

    model, processor = load_model_and_processor(out)
    tokenizer = getattr(processor, "tokenizer", processor)
    for req, res in zip(requests, results, strict=True):
        image = Image.open(image_path).convert("RGB") if req.id == "image" else None
        text = tokenizer.apply_chat_template(_messages("How many squares?", image), add_generation_prompt=True,
                                             tokenize=False)
        enc = (processor(text=[text], images=[image], return_tensors="pt") if image is not None
               else tokenizer([text], return_tensors="pt", add_special_tokens=False))
        with torch.no_grad():
            ids = model.generate(**enc, max_new_tokens=6, do_sample=False,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        new = ids[0, enc["input_ids"].shape[1]:].tolist()
        if tokenizer.eos_token_id in new:
            new = new[: new.index(tokenizer.eos_token_id) + 1]
        assert res.n_tokens == [len(new)]
        assert res.text == tokenizer.decode(new, skip_special_tokens=True)


def test_configs_refuse_shapes_the_real_architectures_cannot_have(tok):
    assert qwen25_mrope_section(32) == [4, 6, 6] and qwen25_mrope_section(128) == [16, 24, 24]
    with pytest.raises(ValueError, match="window_size=50"):
        qwen2_5_vl_config(tok, window_size=50)
    with pytest.raises(ValueError, match="fullatt_block_indexes"):
        qwen2_5_vl_config(tok, vision_depth=2, fullatt_block_indexes=(2,))
    with pytest.raises(ValueError, match="head_dim=16 < 32"):
        qwen2_config(tok, hidden_size=64, num_heads=4)
    with pytest.raises(ValueError, match="unknown stand-in architecture 'llama'"):
        build_standin("llama", tok, "/nonexistent", seed=0)
