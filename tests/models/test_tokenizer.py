"""The tiny profile's tokenizer: byte-level BPE with Qwen's special tokens and chat template."""

import pytest

from capcurriculum.models.tokenizer import (
    IM_END,
    IMAGE_PAD,
    MIN_VOCAB_SIZE,
    SPECIAL_TOKENS,
    THINK_TOKENS,
    VISION_END,
    VISION_START,
    special_token_ids,
    train_tokenizer,
)

COLORS = ["red", "green", "blue", "yellow", "purple"]
SHAPES = ["circle", "square", "triangle", "star"]


def corpus() -> list[str]:
    texts = []
    for i, c in enumerate(COLORS):
        for j, s in enumerate(SHAPES):
            texts.append(f"A {c} {s} is to the left of a {COLORS[j]} {SHAPES[i % 4]}.")
            texts.append(f"How many {s}s are in the image? Answer: {i + j}")
            texts.append(f"What is {i * 17 + j} + {j * 23}? <think>{i * 17 + j} + {j * 23}</think> \\boxed{{{i * 17 + 24 * j}}}")
    return texts * 4


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(corpus(), vocab_size=420)


def test_round_trip(tok):
    for text in ["A red circle is left of a blue star.", "What is 1234 + 98? \\boxed{1332}",
                 "Ünïcødé 🙂 and\nnew lines\t tabs", "<think>2 circles</think> \\boxed{6}"]:
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_vocab_size_and_determinism(tok):
    assert MIN_VOCAB_SIZE < len(tok) <= 420
    again = train_tokenizer(corpus(), vocab_size=420)
    assert again.get_vocab() == tok.get_vocab()
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(corpus(), vocab_size=100)


def test_special_tokens_are_single_ids(tok):
    for i, token in enumerate(SPECIAL_TOKENS):
        assert tok.encode(token, add_special_tokens=False) == [i]
    for token in THINK_TOKENS:
        ids = tok.encode(token, add_special_tokens=False)
        assert len(ids) == 1 and ids[0] >= len(SPECIAL_TOKENS)
    # <think> is kept when special tokens are skipped; <|im_end|> is not.
    ids = tok.encode(f"<think>x</think>{IM_END}", add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == "<think>x</think>"
    # No BOS or other token is added around plain text.
    assert tok.encode("red", add_special_tokens=True) == tok.encode("red", add_special_tokens=False)


def test_special_token_ids(tok):
    ids = special_token_ids(tok)
    assert ids["pad_token_id"] == tok.pad_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    assert ids["eos_token_id"] == tok.eos_token_id == tok.convert_tokens_to_ids(IM_END)
    assert ids["image_token_id"] == tok.convert_tokens_to_ids(IMAGE_PAD)
    assert len(set(ids.values())) == 6  # bos and pad share <|endoftext|>


def test_digits_are_one_token_each(tok):
    for text in ["12345", "x = 9876543210", " 100"]:
        tokens = tok.convert_ids_to_tokens(tok.encode(text, add_special_tokens=False))
        digits = [t.lstrip("Ġ") for t in tokens if any(ch.isdigit() for ch in t)]
        assert all(len(d) == 1 for d in digits), tokens
        assert "".join(digits) == "".join(ch for ch in text if ch.isdigit())


def test_padding_is_left_with_endoftext(tok):
    assert tok.padding_side == "left"
    batch = tok(["red", "a blue square is here"], padding=True)
    short = batch["input_ids"][0]
    assert short[0] == tok.pad_token_id and batch["attention_mask"][0][0] == 0
    assert batch["attention_mask"][0][-1] == 1


def test_chat_template_renders_one_image_placeholder(tok):
    messages = [
        {"role": "system", "content": "Think first."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many circles?"}]},
        {"role": "assistant", "content": "<think>2 circles</think> \\boxed{2}"},
    ]
    text = tok.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|im_start|>system\nThink first.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>How many circles?<|im_end|>\n"
        "<|im_start|>assistant\n<think>2 circles</think> \\boxed{2}<|im_end|>\n"
    )
    prompt = tok.apply_chat_template(messages[1:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    ids = tok.encode(prompt, add_special_tokens=False)
    for token in (VISION_START, IMAGE_PAD, VISION_END):
        assert ids.count(tok.convert_tokens_to_ids(token)) == 1
    # A plain-string user turn and an {"image": ...} part both work.
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == (
        "<|im_start|>user\nhi<|im_end|>\n"
    )
    parts = [{"image": "x.png"}, {"type": "text", "text": "a"}, {"type": "image"}]
    text = tok.apply_chat_template([{"role": "user", "content": parts}], tokenize=False)
    assert text.count(IMAGE_PAD) == 2


def test_assistant_tokens_mask_covers_the_answer_and_im_end(tok):
    conv = [{"role": "user", "content": "What is 2 + 3?"},
            {"role": "assistant", "content": "<think>2 + 3</think> \\boxed{5}"}]
    out = tok.apply_chat_template(conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    answer = [i for i, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tok.decode(answer) == "<think>2 + 3</think> \\boxed{5}<|im_end|>"


def test_save_and_reload_keeps_everything(tok, tmp_path):
    from transformers import AutoTokenizer

    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = "What is 12 + 30? <think>12 + 30</think> \\boxed{42}"
    assert again.encode(text) == tok.encode(text)
    assert again.padding_side == "left"
    assert again.pad_token == tok.pad_token and again.eos_token == tok.eos_token
    assert again.chat_template == tok.chat_template
