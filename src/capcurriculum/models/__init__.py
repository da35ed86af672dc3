"""Tiny Qwen3-VL models built offline (tokenizer, processor, config, weights) and model loading.

    tok = train_tokenizer(texts, vocab_size=420)
    processor = build_processor(tok, image_size=96)          # 96 px -> 9 image tokens
    model = build_tiny_model(tiny_config(tok, **sizes), seed=0)
    save_pretrained_dir(model, processor, "data/models/base")
    model, processor = load_model_and_processor("data/models/base")   # or a model_ref.json dir / hub id
"""

from capcurriculum.models.loading import (
    MODEL_REF_FILE,
    ModelRefError,
    count_parameters,
    load_model_and_processor,
    load_processor,
    resolve_model_ref,
    write_model_ref,
)
from capcurriculum.models.tiny import (
    build_processor,
    build_tiny_model,
    default_generation_config,
    default_mrope_section,
    image_token_count,
    save_pretrained_dir,
    tiny_config,
)
from capcurriculum.models.tokenizer import (
    SPECIAL_TOKENS,
    THINK_TOKENS,
    chat_template,
    special_token_ids,
    train_tokenizer,
)

__all__ = [
    "MODEL_REF_FILE",
    "SPECIAL_TOKENS",
    "THINK_TOKENS",
    "ModelRefError",
    "build_processor",
    "build_tiny_model",
    "chat_template",
    "count_parameters",
    "default_generation_config",
    "default_mrope_section",
    "image_token_count",
    "load_model_and_processor",
    "load_processor",
    "resolve_model_ref",
    "save_pretrained_dir",
    "special_token_ids",
    "tiny_config",
    "train_tokenizer",
    "write_model_ref",
]
