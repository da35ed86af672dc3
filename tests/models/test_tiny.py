"""Tiny Qwen3-VL: processor geometry, config checks, deterministic init, save and plain reload."""

import json

import pytest
import torch
from PIL import Image, ImageDraw

from capcurriculum.models import (
    build_processor,
    build_tiny_model,
    count_parameters,
    default_mrope_section,
    image_token_count,
    save_pretrained_dir,
    tiny_config,
    train_tokenizer,
)

CORPUS = [
    f"A {c} {s} is {p} the {c2} {s2}. How many {s}s? {n} What is {n} + {n * 7}? <think>{n} {s}s</think> \\boxed{{{n * 8}}}"
    for n, (c, c2) in enumerate([("red", "blue"), ("green", "yellow"), ("blue", "red"), ("purple", "green")])
    for s, s2 in [("circle", "square"), ("triangle", "star"), ("square", "circle")]
    for p in ["left of", "above", "below"]
] * 3


def scene(color=(200, 30, 30), size=96) -> Image.Image:
    img = Image.new("RGB", (size, size), (255, 255, 255))
    ImageDraw.Draw(img).ellipse([20, 20, 60, 60], fill=color)
    return img


def messages(img, question="How many circles?"):
    return [{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": question}]}]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, vocab_size=400)


@pytest.fixture(scope="module")
def processor(tok):
    return build_processor(tok, image_size=96)


@pytest.fixture(scope="module")
def model(tok):
    return build_tiny_model(tiny_config(tok), seed=1234)


@pytest.fixture(scope="module")
def saved(model, processor, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "tiny"
    save_pretrained_dir(model, processor, out)
    return out


def chat_inputs(processor, imgs, questions=None):
    questions = questions or ["How many circles?"] * len(imgs)
    convs = [messages(img, q) for img, q in zip(imgs, questions)]
    return processor.apply_chat_template(
        convs, tokenize=True, add_generation_prompt=True, return_dict=True, return_tensors="pt",
        processor_kwargs={"padding": True},
    )


# --- processor -------------------------------------------------------------------------------


def test_96px_image_is_nine_tokens_unresized(processor, tok):
    assert image_token_count(96) == 9
    inputs = chat_inputs(processor, [scene()])
    ids = inputs["input_ids"][0].tolist()
    image_id = tok.convert_tokens_to_ids("<|image_pad|>")
    assert ids.count(image_id) == 9
    assert ids.count(tok.convert_tokens_to_ids("<|vision_start|>")) == 1
    assert ids.count(tok.convert_tokens_to_ids("<|vision_end|>")) == 1
    assert inputs["image_grid_thw"].tolist() == [[1, 6, 6]]
    # 36 patches, each 3 channels x 2 frames x 16 x 16 pixels.
    assert tuple(inputs["pixel_values"].shape) == (36, 3 * 2 * 16 * 16)
    assert (inputs["mm_token_type_ids"][0] == 1).sum().item() == 9


def test_larger_images_are_scaled_to_the_budget(processor):
    out = processor.image_processor(images=[scene(size=192)], return_tensors="pt")
    assert out["image_grid_thw"].tolist() == [[1, 6, 6]]
    with pytest.raises(ValueError, match="multiple"):
        build_processor(processor.tokenizer, image_size=100)


def test_processor_pads_left_in_a_batch(processor, tok):
    inputs = chat_inputs(processor, [scene(), scene((0, 0, 255))], ["How many circles?", "What colour is it here?"])
    assert inputs["input_ids"].shape[0] == 2
    assert inputs["attention_mask"][:, -1].tolist() == [1, 1]
    assert inputs["input_ids"][0, 0].item() == tok.pad_token_id
    assert inputs["image_grid_thw"].tolist() == [[1, 6, 6], [1, 6, 6]]


def test_assistant_mask_survives_image_expansion(processor, tok):
    conv = messages(scene()) + [{"role": "assistant", "content": "<think>1 circle</think> \\boxed{1}"}]
    out = processor.apply_chat_template(
        [conv], tokenize=True, return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"][0], out["assistant_masks"][0].bool()
    assert (ids == tok.convert_tokens_to_ids("<|image_pad|>")).sum() == 9
    assert tok.decode(ids[mask]) == "<think>1 circle</think> \\boxed{1}<|im_end|>"


# --- config ----------------------------------------------------------------------------------


def test_config_takes_ids_from_the_tokenizer(tok):
    cfg = tiny_config(tok)
    text, vision = cfg.text_config, cfg.vision_config
    assert cfg.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert cfg.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    assert cfg.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert cfg.vision_end_token_id == tok.convert_tokens_to_ids("<|vision_end|>")
    assert text.eos_token_id == tok.eos_token_id and text.pad_token_id == tok.pad_token_id
    assert text.vocab_size == len(tok)
    assert vision.out_hidden_size == text.hidden_size
    assert text.rope_parameters["mrope_section"] == [6, 5, 5]
    assert text.rope_parameters["mrope_interleaved"] is True
    assert vision.num_position_embeddings == 36


def test_config_from_a_plain_dict(tok):
    sizes = {"hidden_size": 256, "num_layers": 3, "num_heads": 4, "num_kv_heads": 4, "head_dim": 64,
             "intermediate_size": 768, "vision_depth": 3, "vision_hidden": 128, "vision_heads": 4,
             "deepstack_visual_indexes": [0, 1], "image_size": 128}
    cfg = tiny_config(tok, **sizes)
    assert cfg.text_config.num_hidden_layers == 3 and cfg.text_config.head_dim == 64
    assert cfg.text_config.rope_parameters["mrope_section"] == default_mrope_section(64) == [12, 10, 10]
    assert cfg.vision_config.num_position_embeddings == 64
    assert list(cfg.vision_config.deepstack_visual_indexes) == [0, 1]
    with pytest.raises(TypeError):
        tiny_config(tok, hidden_sise=128)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"head_dim": 16, "mrope_section": [4, 2, 2]}, "head_dim=16 < 32"),
        ({"mrope_section": [8, 5, 5]}, "mrope_section"),
        ({"num_position_embeddings": 40}, "perfect square"),
        ({"deepstack_visual_indexes": [2]}, "deepstack"),
        ({"vision_heads": 4}, "vision head dim 16"),
        ({"num_kv_heads": 3}, "num_kv_heads"),
        ({"vocab_size": 10}, "smaller than the tokenizer"),
    ],
)
def test_config_refuses_what_breaks_later(tok, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(tok, **kwargs)


# --- model -----------------------------------------------------------------------------------


def test_same_seed_same_weights(tok, model):
    cfg = tiny_config(tok)
    state = torch.get_rng_state()
    a = build_tiny_model(cfg, seed=1234).state_dict()
    assert torch.equal(torch.get_rng_state(), state), "building must not move the global RNG"
    b = model.state_dict()
    c = build_tiny_model(cfg, seed=1235).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].numel() > 1 and a[k].std() > 0)
    assert all(v.dtype == torch.float32 for v in a.values())


def test_parameter_counts(model):
    counts = count_parameters(model)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["vision"] + counts["language_model"] + counts["lm_head"] == counts["total"]
    assert counts["other"] == 0
    assert 500_000 < counts["total"] < 2_000_000


def test_saved_directory_is_safetensors_only(saved):
    names = sorted(p.name for p in saved.iterdir())
    assert "model.safetensors" in names and "config.json" in names
    assert "generation_config.json" in names and "tokenizer.json" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".pickle"))]
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".")], "temp dir left behind"
    gen = json.loads((saved / "generation_config.json").read_text())
    config = json.loads((saved / "config.json").read_text())
    assert gen["eos_token_id"] == config["text_config"]["eos_token_id"]
    assert gen["pad_token_id"] == config["text_config"]["pad_token_id"]
    assert gen["do_sample"] is False
    assert (saved / "model.safetensors").stat().st_mode & 0o044, "weights must be readable by others"


def test_plain_transformers_reload_gives_the_same_logits(model, processor, saved):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    again = AutoModelForImageTextToText.from_pretrained(saved)
    proc = AutoProcessor.from_pretrained(saved)
    assert type(again).__name__ == "Qwen3VLForConditionalGeneration"
    assert type(proc).__name__ == "Qwen3VLProcessor"
    assert proc.tokenizer.padding_side == "left"
    assert again.dtype == torch.float32

    imgs = [scene(), scene((30, 200, 30))]
    before = chat_inputs(processor, imgs)
    after = chat_inputs(proc, imgs)
    for key in before:
        assert torch.equal(before[key], after[key]), key
    with torch.no_grad():
        a = model(**before).logits
        b = again(**after).logits
    assert a.shape == (2, before["input_ids"].shape[1], len(processor.tokenizer))
    assert torch.allclose(a, b, atol=1e-5, rtol=0)


def test_generate_from_an_image_and_a_question(saved):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(saved)
    proc = AutoProcessor.from_pretrained(saved)
    inputs = chat_inputs(proc, [scene(), scene((0, 0, 200))])
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    new = out[:, inputs["input_ids"].shape[1]:]
    assert new.shape[0] == 2 and 1 <= new.shape[1] <= 6
    assert isinstance(proc.batch_decode(new, skip_special_tokens=True)[0], str)


def test_training_step_reaches_the_vision_tower(model, processor, tok):
    model = build_tiny_model(model.config, seed=0)
    model.train()
    inputs = chat_inputs(processor, [scene()])
    labels = inputs["input_ids"].clone()
    out = model(**inputs, labels=labels)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert model.model.visual.patch_embed.proj.weight.grad.abs().sum() > 0
    assert model.model.visual.deepstack_merger_list[0].linear_fc2.weight.grad.abs().sum() > 0


VLLM_SCRIPT = r'''
import json, sys
from PIL import Image, ImageDraw

def scene(color):
    img = Image.new("RGB", (96, 96), (255, 255, 255))
    ImageDraw.Draw(img).ellipse([20, 20, 60, 60], fill=tuple(color))
    return img

def main(model_dir, colors):
    from vllm import LLM, SamplingParams
    llm = LLM(model=model_dir, dtype="float32", gpu_memory_utilization=0.1, max_model_len=512,
              kv_cache_memory_bytes=256 * 2**20,
              enforce_eager=True, limit_mm_per_prompt={"image": 1, "video": 0}, seed=0)
    convs = [[{"role": "user", "content": [{"type": "image_pil", "image_pil": scene(c)},
                                           {"type": "text", "text": "How many circles?"}]}] for c in colors]
    outs = llm.chat(convs, SamplingParams(temperature=0, max_tokens=8))
    print("RESULT " + json.dumps({"prompt_lens": [len(o.prompt_token_ids) for o in outs],
                                  "tokens": [list(o.outputs[0].token_ids) for o in outs]}), flush=True)

if __name__ == "__main__":  # vLLM spawns worker processes
    main(sys.argv[1], json.loads(sys.argv[2]))
'''


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_vllm_cpu_generates_what_transformers_generates(saved, processor, tmp_path):
    """vLLM (CPU) loads the saved directory and its greedy tokens equal transformers' (float32)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("vllm")
    from transformers import AutoModelForImageTextToText

    colors = [[200, 30, 30], [30, 30, 200]]
    script = tmp_path / "run_vllm.py"
    script.write_text(VLLM_SCRIPT)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, str(script), str(saved), json.dumps(colors)],
                          check=False, capture_output=True, text=True, timeout=850, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    result = json.loads(lines[-1][len("RESULT "):])

    model = AutoModelForImageTextToText.from_pretrained(saved)
    inputs = chat_inputs(processor, [scene(tuple(c)) for c in colors])
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    hf = out[:, inputs["input_ids"].shape[1]:].tolist()
    assert result["prompt_lens"] == [inputs["input_ids"].shape[1]] * 2
    assert result["tokens"] == hf
