"""The `hf` backend: batched transformers `generate`, left-padded, requests sorted by length.

Greedy when `temperature == 0`; otherwise sampled with the torch RNG seeded from `sampling.seed`
(inside `fork_rng`, so the caller's RNG state is untouched): the same requests, sampling config
and `batch_size` give the same texts. Sampling settings come only from the SamplingConfig (top-k
and repetition penalty are off), so a checkpoint's generation_config.json cannot change them.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from tqdm.auto import tqdm

from capcurriculum.generation.base import (
    Backend,
    ImageCache,
    Request,
    Result,
    SamplingConfig,
    error_text,
    load_request_images,
    template_messages,
)
from capcurriculum.generation.shared_prefix import prefill_shared
from capcurriculum.generation.vision_cache import VisionFeatureCache

log = logging.getLogger(__name__)


def _eos_ids(tokenizer, model) -> list[int]:
    ids: list[int] = []
    for value in (
        tokenizer.eos_token_id,
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
    ):
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, int) and v not in ids:
                ids.append(v)
    if not ids:
        raise ValueError("the tokenizer has no eos token; generation could not stop")
    return ids


class HFBackend(Backend):
    """transformers generation on one model held in memory.

    Options: `batch_size` (prompts per `generate` call), `dtype` ("float32", "bfloat16", ...),
    `device` ("cpu", "cuda", "cuda:1"), `threads` (torch intra-op threads while generating, restored
    afterwards; None leaves torch's setting. On a CPU shared with other jobs, 1 can be far faster
    for a tiny model: OpenMP threads that wait for a descheduled sibling stall every small op),
    `attn_implementation`, `trust_remote_code`, `progress` (a tqdm bar over batches), `lean` (greedy
    batches whose prompts all hold one image, or none, decode through models/lean.py: the same tokens
    as `generate` without transformers' per-token machinery, and each distinct image of a call goes
    through the processor and the vision tower once (generation/vision_cache.py; `vision_cache: false` turns
    that off), and text prompts that begin alike for at least `shared_prefix` tokens (a caption's questions)
    are batched together and prefill their common part once (generation/shared_prefix.py; null turns that
    off); Qwen3-VL models only; sampled requests and mixed batches still go through `generate`).
    `model` and `processor` may be given instead of `model_ref` to generate with a model already
    in memory (a training loop's policy); it is then not moved or cast.
    """

    name = "hf"

    def __init__(
        self,
        model_ref=None,
        *,
        batch_size: int = 8,
        dtype: str = "float32",
        device: str = "cpu",
        threads: int | None = None,
        attn_implementation: str | None = None,
        trust_remote_code: bool = False,
        progress: bool = True,
        lean: bool = False,
        vision_cache: bool = True,
        shared_prefix: int | None = 16,
        model=None,
        processor=None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be an int >= 1 or None, got {threads!r}")
        self.threads = threads
        self.batch_size = batch_size
        self.progress = progress
        if model is not None or processor is not None:
            if model is None or processor is None:
                raise ValueError("give both model and processor, or neither (then model_ref)")
            self.model, self.processor = model, processor
        else:
            if model_ref is None:
                raise ValueError("the hf backend needs a model_ref (or model= and processor=)")
            from capcurriculum.models.loading import load_model_and_processor

            extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
            self.model, self.processor = load_model_and_processor(
                model_ref, dtype=dtype, device=device, trust_remote_code=trust_remote_code, **extra
            )
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        if self.tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; batched generation needs one")
        self.eos_ids = _eos_ids(self.tokenizer, self.model)
        if not isinstance(lean, bool):
            raise ValueError(f"lean must be true or false, got {lean!r}")
        from capcurriculum.models.lean import SUPPORTED, supports

        if lean and not supports(self.model):
            raise ValueError(f"lean decodes {SUPPORTED} models only, not {self.model.config.model_type!r}")
        if not isinstance(vision_cache, bool):
            raise ValueError(f"vision_cache must be true or false, got {vision_cache!r}")
        if shared_prefix is not None and (isinstance(shared_prefix, bool) or not isinstance(shared_prefix, int)
                                          or shared_prefix < 1):
            raise ValueError(f"shared_prefix must be a positive int (tokens) or null, got {shared_prefix!r}")
        self.lean, self.vision_cache, self.shared_prefix_min = lean, vision_cache, shared_prefix
        self._vision: VisionFeatureCache | None = None
        self._image_token_estimate = self._image_tokens_per_pixel()

    # -- preparing prompts -------------------------------------------------------------------------

    def _image_tokens_per_pixel(self) -> float:
        ip = getattr(self.processor, "image_processor", None)
        patch = getattr(ip, "patch_size", None) or 14
        merge = getattr(ip, "merge_size", None) or 1
        return 1.0 / float(patch * merge) ** 2

    def _prompt_text(self, request: Request) -> str:
        return self.processor.apply_chat_template(
            template_messages(request), add_generation_prompt=True, tokenize=False
        )

    def _length_key(self, ids: list[int], images) -> float:
        """Approximate prompt tokens (text tokens + image tokens by area), for sorting only."""
        return len(ids) + sum(im.width * im.height * self._image_token_estimate for im in images)

    def _shares_prefixes(self, sampling: SamplingConfig) -> bool:
        return self.lean and sampling.greedy and self.shared_prefix_min is not None

    # -- generating --------------------------------------------------------------------------------

    def _generate(self, requests: list[Request], sampling: SamplingConfig) -> list[Result]:
        if self.model is None:
            raise RuntimeError("this hf backend is closed")
        cache = ImageCache()
        results: list[Result | None] = [None] * len(requests)
        prepared: list[tuple[int, str, list, float, list[int]]] = []
        for i, req in enumerate(requests):
            try:
                images = load_request_images(req, cache)
                text = self._prompt_text(req)
                ids = self.tokenizer(text, add_special_tokens=False).input_ids
                prepared.append((i, text, images, self._length_key(ids, images), ids))
            except Exception as e:  # noqa: BLE001 - this request fails, the others go on
                results[i] = Result.failed(req.id, error_text(e))
        prepared.sort(key=lambda p: (p[3], p[0]))
        # lean: prompts with one image and text-only prompts in batches of their own (its decoder takes
        # one kind at a time); otherwise one run of batches
        groups: dict[int, list] = {}
        for p in prepared:
            groups.setdefault(len(p[2]) if self.lean else 0, []).append(p)
        if self._shares_prefixes(sampling) and 0 in groups:
            groups[0].sort(key=lambda p: (p[4], p[0]))   # prompts that begin alike side by side
        batches = [g[k : k + self.batch_size] for _, g in sorted(groups.items())
                   for k in range(0, len(g), self.batch_size)]

        device = getattr(self.model, "device", torch.device("cpu"))
        devices = [device] if device.type == "cuda" else []
        # greedy lean batches of image prompts: each distinct image through the processor and tower once
        self._vision = (VisionFeatureCache(self.model, self.processor)
                        if self.lean and self.vision_cache and sampling.greedy else None)
        was_training = getattr(self.model, "training", False)
        self.model.eval()  # a policy handed over by a training loop: no dropout while generating
        threads_before = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            self._generate_batches(batches, requests, sampling, results, devices)
        finally:
            if self._vision is not None and self._vision.computed:
                log.info("hf generate: %d distinct images through the vision tower for %d image prompts",
                         self._vision.computed, self._vision.computed + self._vision.reused)
            self._vision = None
            if was_training:
                self.model.train()
            if self.threads is not None:
                torch.set_num_threads(threads_before)
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def _generate_batches(self, batches, requests, sampling, results, devices) -> None:
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            if not sampling.greedy:
                if sampling.seed is not None:
                    torch.manual_seed(sampling.seed)
                else:
                    torch.seed()
            for batch in tqdm(
                batches, desc="hf generate", unit="batch", disable=not self.progress, leave=False
            ):
                for (i, *_), res in zip(
                    batch, self._run_batch_isolating(batch, requests, sampling), strict=True
                ):
                    results[i] = res

    def _run_batch_isolating(self, batch, requests, sampling) -> list[Result]:
        """Run a batch; if it raises, run its requests one by one so only the bad one fails."""
        try:
            return self._run_batch(batch, requests, sampling)
        except Exception as e:  # noqa: BLE001
            if len(batch) == 1:
                return [Result.failed(requests[batch[0][0]].id, error_text(e))]
            log.warning("hf batch of %d failed (%s); retrying its requests one at a time", len(batch), e)
            return [self._run_batch_isolating([p], requests, sampling)[0] for p in batch]

    def _run_batch(self, batch, requests, sampling) -> list[Result]:
        texts = [p[1] for p in batch]
        images = [im for p in batch for im in p[2]]
        # a lean backend's batches hold one kind of prompt (grouped in _generate); more than one image: generate
        lean = self.lean and sampling.greedy and len(batch[0][2]) <= 1
        prefilled = None
        if lean and not images and self._shares_prefixes(sampling):
            prefilled = prefill_shared(self.model, [p[4] for p in batch], self.tokenizer.pad_token_id,
                                       self.shared_prefix_min)
            enc = None
        elif lean and images and self._vision is not None:
            # ImageCache hands out one object per path for the whole call: its identity names the picture
            enc = self._vision.encode(texts, images, [id(im) for im in images], add_special_tokens=False)
        else:
            enc = self.processor(text=texts, images=images or None, return_tensors="pt", padding=True,
                                 padding_side="left", add_special_tokens=False)
        if enc is not None:
            enc = {k: v.to(self.model.device) if hasattr(v, "to") else v for k, v in enc.items()}
        n = sampling.n
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.eos_ids,
            "repetition_penalty": 1.0,
        }
        if sampling.greedy:
            gen_kwargs.update(do_sample=False, num_return_sequences=1)
        else:  # top_k=0: no top-k cut (transformers' default would be 50)
            gen_kwargs.update(
                do_sample=True,
                temperature=float(sampling.temperature),
                top_p=float(sampling.top_p),
                top_k=0,
                num_return_sequences=n,
            )
        if lean:
            from capcurriculum.sampling.rollout import decode

            _, new_ids, _ = decode(self.model, enc, group_size=1, max_new_tokens=sampling.max_new_tokens,
                                   eos_ids=self.eos_ids, pad_id=self.tokenizer.pad_token_id, temperature=0,
                                   lean=True, prefilled=prefilled)
            new = new_ids.tolist()
        else:
            out = self.model.generate(**enc, **gen_kwargs)
            new = out[:, enc["input_ids"].shape[1] :].tolist()
        per = 1 if sampling.greedy else n
        results = []
        for b, p in enumerate(batch):
            texts_b, counts, reasons = [], [], []
            for row in new[b * per : (b + 1) * per]:
                stop = next((k for k, t in enumerate(row) if t in self.eos_ids), None)
                ids = row if stop is None else row[: stop + 1]
                texts_b.append(self.tokenizer.decode(ids, skip_special_tokens=True))
                counts.append(len(ids))
                reasons.append("length" if stop is None else "stop")
            if per == 1 and n > 1:  # greedy: all n samples are the same text
                texts_b, counts, reasons = texts_b * n, counts * n, reasons * n
            results.append(
                Result(id=requests[p[0]].id, texts=texts_b, n_tokens=counts, finish_reasons=reasons)
            )
        return results

    def close(self) -> None:
        self.model = None
        self.processor = None
