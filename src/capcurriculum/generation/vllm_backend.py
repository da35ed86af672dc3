"""The `vllm` backend: offline batched generation with one `vllm.LLM` engine per backend object.

Prompts are rendered with the model's own processor chat template (the same text the `hf`
backend feeds transformers) and handed to `LLM.generate` as `{"prompt", "multi_modal_data"}`, so
both backends see identical prompts; generated token ids are decoded with the same HF tokenizer.
With `dtype="float32"` greedy texts match transformers'.

The engine is created on first use and reused across calls, so every path of one model (images,
captions, text-only) runs in one engine session. vLLM is imported only here, when the engine is
made. vLLM spawns worker processes: a script that uses this backend needs an
`if __name__ == "__main__":` guard.

If vLLM refuses a batch (a prompt over `max_model_len`, more images than `limit_mm_per_prompt`),
the batch is rerun one request at a time so only the offending requests fail.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

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

log = logging.getLogger(__name__)


class VLLMBackend(Backend):
    """Options (passed to `vllm.LLM`): `dtype` ("float32" on CPU for parity with transformers,
    "bfloat16"/"auto" on GPU), `gpu_memory_utilization` (about 0.1 on CPU, where it sizes the KV
    cache from system memory), `max_model_len`, `enforce_eager`, `limit_mm_per_prompt` (e.g.
    `{"image": 1, "video": 0}`), `tensor_parallel_size`, `seed`, `trust_remote_code`,
    `engine_kwargs` (any other `LLM(...)` keyword, e.g. `max_num_seqs`), `progress`.

    On the CPU give the KV cache an explicit size (`engine_kwargs: {kv_cache_memory_bytes: ...}`):
    vLLM's automatic one is utilization x memory minus the worker's own RSS, which goes negative
    for a ~1 GiB worker at utilization 0.1.
    """

    name = "vllm"

    def __init__(
        self,
        model_ref=None,
        *,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        enforce_eager: bool = False,
        limit_mm_per_prompt: dict[str, int] | None = None,
        tensor_parallel_size: int = 1,
        seed: int = 0,
        trust_remote_code: bool = False,
        engine_kwargs: dict[str, Any] | None = None,
        progress: bool = True,
    ) -> None:
        from capcurriculum.models.loading import resolve_model_ref

        if model_ref is None:
            raise ValueError("the vllm backend needs a model_ref")
        problems = []
        if (
            isinstance(gpu_memory_utilization, bool)
            or not isinstance(gpu_memory_utilization, (int, float))
            or not 0 < gpu_memory_utilization <= 1
        ):
            problems.append(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization!r}")
        if max_model_len is not None and (not isinstance(max_model_len, int) or max_model_len < 1):
            problems.append(f"max_model_len must be an int >= 1 or None, got {max_model_len!r}")
        if not isinstance(tensor_parallel_size, int) or tensor_parallel_size < 1:
            problems.append(f"tensor_parallel_size must be an int >= 1, got {tensor_parallel_size!r}")
        if limit_mm_per_prompt is not None and not isinstance(limit_mm_per_prompt, dict):
            problems.append("limit_mm_per_prompt must be a mapping like {'image': 1, 'video': 0}")
        if engine_kwargs is not None and not isinstance(engine_kwargs, dict):
            problems.append("engine_kwargs must be a mapping")
        if problems:
            raise ValueError("vllm backend: " + "; ".join(problems))
        self.model_ref = model_ref
        self.source, self.revision = resolve_model_ref(model_ref)
        self.engine_args: dict[str, Any] = {
            "model": self.source,
            "revision": self.revision,
            "dtype": dtype,
            "gpu_memory_utilization": float(gpu_memory_utilization),
            "max_model_len": max_model_len,
            "enforce_eager": bool(enforce_eager),
            "tensor_parallel_size": tensor_parallel_size,
            "seed": seed,
            "trust_remote_code": bool(trust_remote_code),
        }
        if limit_mm_per_prompt is not None:
            self.engine_args["limit_mm_per_prompt"] = dict(limit_mm_per_prompt)
        self.engine_args.update(engine_kwargs or {})
        self.trust_remote_code = bool(trust_remote_code)
        self.progress = progress
        self._llm = None
        self._processor = None
        self._closed = False

    # -- the engine --------------------------------------------------------------------------------

    @property
    def llm(self):
        """The engine, created on first use (import ~15 s, load ~1 min on CPU for a tiny model)."""
        if self._closed:
            raise RuntimeError("this vllm backend is closed")
        if self._llm is None:
            from vllm import LLM

            log.info("starting vLLM engine for %s", self.source)
            self._llm = LLM(**self.engine_args)
        return self._llm

    @property
    def processor(self):
        if self._processor is None:
            from capcurriculum.models.loading import load_processor

            self._processor = load_processor(self.model_ref, trust_remote_code=self.trust_remote_code)
        return self._processor

    def _sampling_params(self, sampling: SamplingConfig):
        from vllm import SamplingParams

        # Texts are decoded here with the HF tokenizer (as the hf backend does), not by vLLM's
        # incremental detokenizer, which drops a trailing partial UTF-8 character.
        common = {
            "max_tokens": sampling.max_new_tokens,
            "detokenize": False,
            "top_k": 0,
            "repetition_penalty": 1.0,
        }
        if sampling.greedy:  # all n greedy texts are the same: generate one, repeat it
            return SamplingParams(n=1, temperature=0.0, top_p=1.0, **common)
        return SamplingParams(
            n=sampling.n,
            temperature=float(sampling.temperature),
            top_p=float(sampling.top_p),
            seed=sampling.seed,
            **common,
        )

    # -- generating --------------------------------------------------------------------------------

    def _generate(self, requests: list[Request], sampling: SamplingConfig) -> list[Result]:
        llm = self.llm
        cache = ImageCache()
        results: list[Result | None] = [None] * len(requests)
        prompts: list[tuple[int, dict[str, Any]]] = []
        for i, req in enumerate(requests):
            try:
                images = load_request_images(req, cache)
                text = self.processor.apply_chat_template(
                    template_messages(req), add_generation_prompt=True, tokenize=False
                )
                prompt: dict[str, Any] = {"prompt": text}
                if images:
                    prompt["multi_modal_data"] = {"image": images if len(images) > 1 else images[0]}
                prompts.append((i, prompt))
            except Exception as e:  # noqa: BLE001 - this request fails, the others go on
                results[i] = Result.failed(req.id, error_text(e))
        params = self._sampling_params(sampling)
        if prompts:
            for (i, _), res in zip(
                prompts, self._run_isolating(llm, prompts, params, requests, sampling), strict=True
            ):
                results[i] = res
        return results  # type: ignore[return-value]

    def _run_isolating(self, llm, prompts, params, requests, sampling) -> list[Result]:
        try:
            outputs = llm.generate(
                [p for _, p in prompts],
                params,
                use_tqdm=self.progress,
                tokenization_kwargs={"add_special_tokens": False},
            )
        except Exception as e:  # noqa: BLE001
            if len(prompts) == 1:
                return [Result.failed(requests[prompts[0][0]].id, error_text(e))]
            log.warning(
                "vllm refused a batch of %d (%s); running its requests one at a time", len(prompts), e
            )
            return [self._run_isolating(llm, [p], params, requests, sampling)[0] for p in prompts]
        if len(outputs) != len(prompts):  # pragma: no cover - vLLM returns one output per prompt
            raise RuntimeError(f"vllm returned {len(outputs)} outputs for {len(prompts)} prompts")
        results = []
        for (i, _), out in zip(prompts, outputs, strict=True):
            comps = sorted(out.outputs, key=lambda c: c.index)
            tok = getattr(self.processor, "tokenizer", self.processor)
            texts = [tok.decode(list(c.token_ids), skip_special_tokens=True) for c in comps]
            counts = [len(c.token_ids) for c in comps]
            reasons = [c.finish_reason or "unknown" for c in comps]
            if sampling.greedy and sampling.n > 1:
                texts, counts, reasons = texts * sampling.n, counts * sampling.n, reasons * sampling.n
            results.append(Result(id=requests[i].id, texts=texts, n_tokens=counts, finish_reasons=reasons))
        return results

    def close(self) -> None:
        """Shut the engine's worker processes down; the backend cannot generate afterwards."""
        self._closed = True
        llm, self._llm = self._llm, None
        if llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception as e:  # noqa: BLE001 - best effort; the finaliser runs at exit anyway
                log.debug("vllm shutdown: %s", e)
            del llm
            gc.collect()
