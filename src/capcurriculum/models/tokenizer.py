"""A byte-level BPE tokenizer for the tiny profile, trained offline with the `tokenizers` library.

It mirrors what a Qwen3-VL checkpoint ships: Qwen's special tokens, `<|endoftext|>` as padding,
`<|im_end|>` as end of turn, a Qwen-style chat template, and left padding (TRL's GRPO with
Qwen3-VL needs it). Digits are split one per token so arithmetic stays learnable, and `<think>`,
`</think>` are whole tokens (added, not special, so decoding keeps them) so reasoning traces stay
short.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib import resources

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

# Ids 0..6 in this order (the trainer assigns special tokens first).
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD)
THINK_TOKENS = (THINK_OPEN, THINK_CLOSE)

# GPT-4 style word splitting with every digit on its own (\p{N} matches one character), the shape
# Qwen's own pre-tokenizer has. Byte-level encoding follows without its own regex.
_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    r"|[^\r\n\p{L}\p{N}]?\p{L}+"
    r"|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+"
    r"|\s+(?!\S)"
    r"|\s+"
)

# Text the chat template always adds; trained on so role headers tokenize compactly.
_SCAFFOLD = ("system\n", "user\n", "assistant\n", "\n")
_SCAFFOLD_WEIGHT = 32

_BYTE_ALPHABET = 256
MIN_VOCAB_SIZE = _BYTE_ALPHABET + len(SPECIAL_TOKENS) + len(THINK_TOKENS)


def chat_template() -> str:
    """The project's Qwen-style chat template (src/capcurriculum/templates/chat_template.jinja)."""
    return resources.files("capcurriculum").joinpath("templates/chat_template.jinja").read_text("utf-8")


def _with_scaffold(texts: Iterable[str]) -> Iterator[str]:
    for _ in range(_SCAFFOLD_WEIGHT):
        yield from _SCAFFOLD
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"tokenizer corpus items must be str, got {type(text).__name__}")
        yield text


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    *,
    min_frequency: int = 2,
    model_max_length: int | None = None,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts` and wrap it as a transformers tokenizer.

    `vocab_size` counts everything, specials and `<think>`/`</think>` included, so
    `len(tokenizer) <= vocab_size` (less when the corpus has too few pairs to merge).
    Training is deterministic: the same texts in the same order give the same vocabulary.
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size={vocab_size} is below {MIN_VOCAB_SIZE} "
            f"(256 bytes + {len(SPECIAL_TOKENS)} special + {len(THINK_TOKENS)} think tokens)"
        )
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(THINK_TOKENS),
        min_frequency=min_frequency,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_with_scaffold(texts), trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])

    extra = {} if model_max_length is None else {"model_max_length": model_max_length}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        unk_token=None,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        padding_side="left",
        chat_template=chat_template(),
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        **extra,
    )
    for name, token in (("vision_start", VISION_START), ("vision_end", VISION_END),
                        ("image_pad", IMAGE_PAD), ("video_pad", VIDEO_PAD)):
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:  # pragma: no cover - guards a change in tokenizers' added-token handling
            raise RuntimeError(f"{name} token {token!r} is not a single id: {ids}")
    return tokenizer


def special_token_ids(tokenizer) -> dict[str, int]:
    """The ids a Qwen3-VL config needs, read from the tokenizer (raises if one is missing)."""
    out = {}
    for key, token in (
        ("image_token_id", IMAGE_PAD),
        ("video_token_id", VIDEO_PAD),
        ("vision_start_token_id", VISION_START),
        ("vision_end_token_id", VISION_END),
        ("eos_token_id", IM_END),
        ("pad_token_id", ENDOFTEXT),
        ("bos_token_id", ENDOFTEXT),
    ):
        tid = tokenizer.convert_tokens_to_ids(token)
        if tid is None or tid == getattr(tokenizer, "unk_token_id", object()) or not isinstance(tid, int):
            raise ValueError(f"tokenizer has no {token!r} token (needed for {key})")
        out[key] = tid
    return out
