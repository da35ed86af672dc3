"""The trl engine (`train.engine: trl`): TRL 1.16's GRPOTrainer running the paper's GRPO.

TRL brings what a one-machine loop cannot: accelerate with DeepSpeed ZeRO across processes and machines,
vLLM generation (colocated with sleep mode, or a server), gradient checkpointing, micro-batches. The stage
around the engine (data, held-out passes, boundaries, checkpoints, resume) is the lean engine's
(training/curriculum.py), so the two engines differ only in how a step is computed:

    engine = TRLEngine(model, processor, settings, reward_cfg, output_dir=..., seed=...)
    history = engine.train(stream, steps, on_log=..., checkpoint=..., checkpoint_every=10)

`PaperGRPOTrainer` subclasses TRL's trainer only where the paper's semantics differ from TRL's
(trl_config.TRL_GAPS), each override saying which gap it closes:
- the loss is the project's `grpo_loss` on the log-probs TRL's model pass computes: the k3 KL clamped, the
  log-ratio clamped, and the token mean over the whole optimizer step's mini-batch (TRL's 'bnpo'/'dapo'
  normalise per micro-batch or per generation batch);
- advantages are the project's `group_advantages`, epsilon 1e-6 (TRL hard-codes 1e-4), on TRL's gathered rewards;
- the optimizer is the stage's (vision tower and mergers at their scales, a carried state) and its learning
  rate follows `schedule_factor` from the stage's step, so a resumed stage continues the schedule.
Prompts over grpo.max_prompt_length never reach it (curriculum.drop_overlong drops them, as EasyR1 does).

Prompts come in the stage's PromptStream order (difficulty order, balance weights, the seeded shuffle), the
same sequence the lean engine would draw, and TRL's sampler does not reshuffle them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from capcurriculum.config import ROLLOUTS, ConfigError, check_choice
from capcurriculum.sampling.batching import Item
from capcurriculum.sampling.rewards import RewardConfig, reward
from capcurriculum.settings.grpo import GRPOSettings
from capcurriculum.training.grpo import PromptStream, schedule_factor, stage_optimizer
from capcurriculum.training.grpo_loss import group_advantages, grpo_loss
from capcurriculum.training.precision import resolve_precision
from capcurriculum.training.switches import TrainSwitches
from capcurriculum.training.trl_config import to_trl_config

log = logging.getLogger(__name__)

# The multimodal inputs TRL's batches carry and its model pass takes (trl/trainer/grpo_trainer.py, _compute_loss)
_MM_KEYS = ("pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask", "spatial_shapes", "num_tiles",
            "image_sizes", "token_type_ids", "mm_token_type_ids", "image_position_ids")


def trl_rows(items: Sequence[Item], processor):
    """TRL's input for a list of prompts: a conversational "prompt" (the question's text; TRL puts the image
    block first, as `prompts.build_messages` does), an "image" (None for a text prompt among image ones; no column
    when none has one) and "idx", the item's position, for the rewards to find its gold answer. Images are kept as
    paths and decoded (to RGB, as `batching.load_image`) when TRL reads a row: a stage's prompt sequence repeats
    its images, and the paper's holds half a million rows. Refuses to go on if TRL would render a prompt other
    than the lean engine's (`batching.prompt_texts`): the two engines must train on the same text."""
    from datasets import Dataset
    from datasets import Image as ImageFeature
    from trl.data_utils import prepare_multimodal_messages

    from capcurriculum.prompts import build_messages
    from capcurriculum.sampling.batching import prompt_texts

    rows, checked = [], set()
    for i, it in enumerate(items):
        content = build_messages(it.example, it.mode, it.caption)[0]["content"]
        text = content if isinstance(content, str) else next(c["text"] for c in content if c["type"] == "text")
        rows.append({"prompt": [{"role": "user", "content": text}], "idx": i,
                     "image": str(it.image_path) if it.image_path else None})
        key = (it.example.get("id"), it.mode)
        if key in checked:  # a stream repeats its items every epoch: one check an item
            continue
        checked.add(key)
        images = [it.image_path] if it.image_path else None  # a placeholder is all the template renders
        theirs = processor.apply_chat_template(prepare_multimodal_messages(rows[-1]["prompt"], images=images),
                                               add_generation_prompt=True, tokenize=False)
        ours = prompt_texts(processor, [it])[0]
        if theirs != ours:
            raise RuntimeError(f"item {it.example.get('id')}: TRL would render a different prompt:\n"
                               f"{theirs!r}\nvs the lean engine's\n{ours!r}")
    if all(r["image"] is None for r in rows):  # text prompts only: no image column (TRL then sends no images)
        return Dataset.from_list([{k: v for k, v in r.items() if k != "image"} for r in rows])
    return Dataset.from_list(rows).cast_column("image", ImageFeature(mode="RGB"))


def mixed_batch_processor(processor):
    """`processor` for TRL batches that mix prompts with and without an image (the merged baseline): TRL 1.16 hands
    the processor one image list a prompt, None for a text prompt (grpo_trainer.py:2403, :2529), which
    transformers 5's image fetching refuses; the Qwen processors take the images flat, in the order of the
    prompts' image tokens, which is what this copy passes on. Other calls are unchanged."""
    import copy

    base = type(processor)

    class FlatImages(base):
        def __call__(self, images=None, text=None, *args, **kwargs):
            if isinstance(images, list) and any(x is None or isinstance(x, list) for x in images):
                images = [im for x in images if x for im in (x if isinstance(x, list) else [x])] or None
            return super().__call__(images, text, *args, **kwargs)

    FlatImages.__name__ = FlatImages.__qualname__ = base.__name__
    flat = copy.copy(processor)
    flat.__class__ = FlatImages
    return flat


class StageRewards:
    """The paper's reward as TRL reward functions: `accuracy` and `format`, weighted by train.reward's weights
    through TRL's reward_weights (so TRL logs them apart). Completions are decoded from their ids as the lean
    engine decodes its own (special tokens skipped), and each (completion, item) is graded once for both."""

    def __init__(self, items: Sequence[Item], tokenizer, cfg: RewardConfig,
                 reward_fn: Callable[[str, Item], dict[str, float]] | None = None):
        self.items, self.tokenizer, self.cfg = list(items), tokenizer, cfg
        self.reward_fn = reward_fn or (lambda text, it: reward(text, it.example["answer"], it.example["answer_type"],
                                                               cfg))
        self.funcs = [self._func("accuracy"), self._func("format")]
        self.weights = [cfg.accuracy_weight, cfg.format_weight]

    @lru_cache(maxsize=4096)  # noqa: B019 - one instance a stage; the cache is what lets two funcs grade once
    def _score(self, text: str, idx: int) -> dict[str, float]:
        return self.reward_fn(text, self.items[idx])

    def _func(self, key: str) -> Callable[..., list[float]]:
        def func(prompts, completions, completion_ids, idx, **_) -> list[float]:
            texts = self.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
            return [self._score(t, int(i))[key] for t, i in zip(texts, idx, strict=True)]

        func.__name__ = key  # TRL names its reward columns and metrics after the function
        return func


def _trl_trainer_class():
    from trl import GRPOTrainer

    class PaperGRPOTrainer(GRPOTrainer):
        """TRL's GRPOTrainer with the paper's GRPO where TRL's differs (module docstring; TRL_GAPS)."""

        def __init__(self, *args, settings: GRPOSettings, optimizer: torch.optim.Optimizer, first_update: int,
                     total_updates: int, **kwargs):
            self.settings, self._stage_opt = settings, optimizer
            self._first_update, self._total_updates = first_update, total_updates
            self._gathered_rewards: torch.Tensor | None = None
            self._counted: list | None = None
            self._loss_stats: list[dict[str, float]] = []
            self.mixed_kinds = False  # prompts with and without an image in one set (the merged baseline)
            super().__init__(*args, **kwargs)

        # the stage's optimizer (its param groups and carried state), not TRL's AdamW: both engines step alike
        def create_optimizer(self, model=None):
            if self.optimizer is None:
                self.optimizer = self._stage_opt
            return self.optimizer

        def create_scheduler(self, num_training_steps: int, optimizer=None):
            if self.lr_scheduler is None:  # the rate at the stage's optimizer step, so a resumed stage continues it
                s, first, total = self.settings, self._first_update, self._total_updates
                self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                    optimizer or self.optimizer,
                    lambda i: schedule_factor(first + i, total, s.lr_scheduler_type, s.lr_warmup_ratio))
            return self.lr_scheduler

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                               batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                               pixel_values=None, image_grid_thw=None, num_images=None, **kwargs):
            """TRL's pass, run apart on each run of consecutive rows with and without an image (the merged
            baseline): TRL 1.16 hands a chunk of text rows an empty pixel tensor, which Qwen-VL's vision tower
            cannot take. Batches of one kind go through unchanged."""
            runs = _image_runs(num_images)
            if len(runs) <= 1:
                return super()._get_per_token_logps_and_entropies(
                    model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy, compute_aux_loss,
                    pixel_values=pixel_values if num_images is None or sum(num_images) else None,
                    image_grid_thw=image_grid_thw, num_images=num_images if num_images and sum(num_images) else None,
                    **kwargs)
            rows = input_ids.size(0)
            per_image = image_grid_thw.prod(dim=-1).tolist()
            first_image = [0]
            for k in num_images:
                first_image.append(first_image[-1] + k)
            first_row = [0]
            for k in per_image:
                first_row.append(first_row[-1] + k)
            parts = []
            for a, b in runs:
                i, j = first_image[a], first_image[b]
                sliced = {k: v[a:b] if torch.is_tensor(v) and v.dim() and v.size(0) == rows else v
                          for k, v in kwargs.items()}
                with_images = j > i
                parts.append(super()._get_per_token_logps_and_entropies(
                    model, input_ids[a:b], attention_mask[a:b], logits_to_keep, batch_size, compute_entropy,
                    compute_aux_loss, pixel_values=pixel_values[first_row[i]:first_row[j]] if with_images else None,
                    image_grid_thw=image_grid_thw[i:j] if with_images else None,
                    num_images=list(num_images[a:b]) if with_images else None, **sliced))
            logps = torch.cat([p[0] for p in parts])
            entropies = torch.cat([p[1] for p in parts]) if compute_entropy else None
            aux = torch.stack([p[2] for p in parts]).mean() if compute_aux_loss else None
            return logps, entropies, aux

        # TRL_GAPS "adv_eps": advantages from the gathered rewards with the paper's epsilon
        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            self._gathered_rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            return self._gathered_rewards

        def _generate_and_score_completions(self, inputs):
            if all(x.get("image") is None for x in inputs):  # a mixed set's batch of text prompts only: TRL 1.16
                inputs = [{k: v for k, v in x.items() if k != "image"} for x in inputs]  # wants no image key then
            out = super()._generate_and_score_completions(inputs)
            rewards = (self._gathered_rewards * self.reward_weights.to(self._gathered_rewards.device)).nansum(dim=1)
            adv = group_advantages(rewards, self.num_generations, self.settings.adv_eps)
            n, rank = len(out["prompt_ids"]), self.accelerator.process_index
            out["advantages"] = adv[rank * n:(rank + 1) * n].to(out["advantages"].device)
            return out

        # TRL_GAPS "loss_agg_mode": each optimizer step's token count, over its micro-batches and processes
        def _prepare_inputs(self, generation_batch):
            inputs = super()._prepare_inputs(generation_batch)
            if self.model.training and self._buffered_inputs is not self._counted:  # a new generation batch
                ga, buffered = self.args.gradient_accumulation_steps, self._buffered_inputs
                local = torch.tensor([float(b["completion_mask"].sum()) for b in buffered],
                                     device=buffered[0]["completion_mask"].device)
                per_step = self.accelerator.gather(local.view(-1, ga).sum(1)).view(-1, len(local) // ga).sum(0)
                for i, b in enumerate(buffered):
                    b["step_tokens"] = per_step[i // ga]
                self._counted = buffered
            return inputs

        # TRL_GAPS "kl_clamp", "(log-ratio clamp)", "loss_agg_mode": the project's loss
        def _compute_loss(self, model, inputs):
            ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
            mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
            C = inputs["completion_ids"].size(1)
            logp, _, _ = self._get_per_token_logps_and_entropies(
                model, ids, mask, C, **{k: inputs.get(k) for k in _MM_KEYS})
            old = inputs.get("old_per_token_logps")
            n_tokens = inputs.get("step_tokens")
            loss, st = grpo_loss(logp, logp.detach() if old is None else old, inputs.get("ref_per_token_logps"),
                                 inputs["advantages"], inputs["completion_mask"], self.settings,
                                 n_tokens=None if n_tokens is None else float(n_tokens))
            self._loss_stats.append(st)
            if self.mixed_kinds and self.is_deepspeed_enabled and not sum(inputs.get("num_images") or [0]):
                # A mixed set's micro-batch of text prompts reaches no vision weight while another process's may:
                # ZeRO-2 must reduce a gradient for each trainable weight on every process (it aborts otherwise),
                # so these get an exact zero. Not elsewhere: a None gradient keeps AdamW off the weight.
                loss = loss + 0.0 * sum(p.sum() for p in self._vision_params())
            # DDP and DeepSpeed average gradients over processes: scale back to the step's token mean
            return loss * self.accelerator.num_processes if n_tokens is not None else loss

        def _vision_params(self) -> list[torch.nn.Parameter]:
            from capcurriculum.training.pretrain import vision_part

            if not hasattr(self, "_vision"):
                self._vision = [p for n, p in self.model.named_parameters() if p.requires_grad and vision_part(n)]
            return self._vision

        def take_loss_stats(self) -> dict[str, float]:
            """The loss terms since the last call as the lean engine reports a step's: each micro-batch's part of
            its optimizer step's token mean, summed over micro-batches and processes; the ratio statistics
            averaged."""
            stats, self._loss_stats = self._loss_stats, []
            if not stats:
                return {}
            keys = sorted(stats[0])
            local = torch.tensor([[st[k] for k in keys] + [1.0] for st in stats], dtype=torch.float64).sum(0)
            total = self.accelerator.reduce(local.to(self.accelerator.device), "sum").cpu().tolist()
            summed = {"pg_loss", "loss", "kl"}
            return {k: v if k in summed else v / total[-1] for k, v in zip(keys, total)}

    return PaperGRPOTrainer


def _image_runs(num_images: Sequence[int] | None) -> list[tuple[int, int]]:
    """[a, b) runs of consecutive rows that all have images or all have none."""
    if not num_images:
        return []
    runs, start = [], 0
    for i in range(1, len(num_images) + 1):
        if i == len(num_images) or bool(num_images[i]) != bool(num_images[start]):
            runs.append((start, i))
            start = i
    return runs


def row_of(logs: dict[str, float]) -> dict[str, float]:
    """A GRPO step's row in the lean engine's names, from what TRL logged over the step's optimizer steps (the
    loss terms come from `take_loss_stats`)."""
    pick = {"reward": "reward", "reward/accuracy": "rewards/accuracy/mean", "reward/format": "rewards/format/mean",
            "reward/zero_std_frac": "frac_reward_zero_std", "response_length": "completions/mean_length",
            "grad_norm": "grad_norm", "lr": "learning_rate"}
    return {ours: float(logs[theirs]) for ours, theirs in pick.items() if theirs in logs}


class TRLEngine:
    """The trl engine: the surface the stage drives (as the lean `grpo.GRPOTrainer`): `model`, `opt`, `precision`,
    `step_count`, `train(...)`; and `engine`, what DeepSpeed saves a resumable point through. TRL's trainer is
    built in `train`, once the stage's prompt sequence is known."""

    def __init__(self, model, processor, settings: GRPOSettings, reward_cfg: RewardConfig, *, output_dir: str | Path,
                 seed: int, ref_model=None, vision_lr_scale: float = 0.1, merger_lr_scale: float = 1.0,
                 optimizer_state: dict | None = None, switches: TrainSwitches = TrainSwitches(),
                 per_device_train_batch_size: int | None = None, rollout: str = "hf",
                 vllm_gpu_memory_utilization: float = 0.7, accelerator=None,
                 reward_fn: Callable[[str, Item], dict[str, float]] | None = None):
        """`ref_model`: the KL reference when it is not the policy's own checkpoint (grpo.reference: base); TRL
        builds the stage-start reference itself from the policy's path. `per_device_train_batch_size`:
        completions a process scores in one forward/backward (train.trl; None: the whole mini-batch).
        `rollout`: hf (transformers' generate), vllm_colocate (vLLM in the training processes, slept between
        rollouts) or vllm_server (`trl vllm-serve` elsewhere). `reward_fn(text, item)` -> {"accuracy", "format"}:
        the paper's reward by default (the two are weighted by train.reward's weights). `switches`: its precision
        and gradient checkpointing (lean and compile are the lean engine's; config.check_engine refuses them here)."""
        refuse(settings, rollout)
        self.model, self.processor, self.s, self.reward_cfg = model, processor, settings, reward_cfg
        self.output_dir, self.seed = Path(output_dir), seed
        self.ref_override, self.rollout, self.reward_fn = ref_model, rollout, reward_fn
        self.vllm_gpu_memory_utilization = vllm_gpu_memory_utilization
        device = accelerator.device if accelerator is not None else model.device
        self.precision_choice = resolve_precision(switches.precision, device)
        self.precision = self.precision_choice.precision
        self.gradient_checkpointing = switches.gradient_checkpointing
        self.world = accelerator.num_processes if accelerator is not None else 1
        self.per_device = per_device_train_batch_size
        self.opt = stage_optimizer(model, settings, vision_lr_scale, merger_lr_scale, optimizer_state)
        ds = accelerator.state.deepspeed_plugin if accelerator is not None else None
        self.deepspeed = ds is not None
        if ds is not None and int((ds.deepspeed_config.get("zero_optimization") or {}).get("stage", 0)) == 3:
            raise ConfigError("train.launcher.config_file", "ZeRO-3 partitions the weights, and the stage's held-out "
                                                            "passes and checkpoint read them whole on one process: "
                                                            "use conf/accelerate/zero2.yaml with the trl engine")
        self.step_count = 0
        self.trainer = None

    @property
    def engine(self):
        """What DeepSpeed saves and loads a resumable point through: TRL's wrapped model once training runs."""
        return self.trainer.model_wrapped if self.trainer is not None else self.model

    def trl_config(self, max_steps: int):
        cuda = torch.cuda.is_available()
        extra: dict[str, Any] = {}
        if self.rollout != "hf":
            extra = {"use_vllm": True, "vllm_mode": self.rollout.removeprefix("vllm_")}
            if self.rollout == "vllm_colocate":
                extra.update(vllm_enable_sleep_mode=True, vllm_gpu_memory_utilization=self.vllm_gpu_memory_utilization)
        # grpo.reference: base is honoured by replacing TRL's reference after construction (TRL_GAPS "reference")
        settings = replace(self.s, reference="stage_start") if self.ref_override is not None else self.s
        return to_trl_config(
            settings, str(self.output_dir), per_device_train_batch_size=self.per_device, num_processes=self.world,
            max_steps=max_steps, logging_steps=self.s.updates_per_rollout * self.s.ppo_epochs, report_to="none",
            save_strategy="no",  # the stage's own resumable points (checkpoint.py), every train.checkpoint_every
            shuffle_dataset=False, seed=self.seed, bf16=self.precision == "bf16",
            # DeepSpeed without CUDA: not use_cpu (accelerate's CPU mode turns DeepSpeed off), and gloo named for the
            # processes (launched_accelerator does the same); plain CPU runs are use_cpu
            use_cpu=not cuda and not self.deepspeed, ddp_backend="gloo" if not cuda and self.world > 1 else None,
            gradient_checkpointing=self.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if self.gradient_checkpointing else None,
            disable_tqdm=True, dataloader_num_workers=0, dataloader_pin_memory=cuda,
            # log_multimodal off: TRL gathers images only on processes whose batch has some, which deadlocks (or
            # garbles) a mixed set's processes when one holds text prompts only
            remove_unused_columns=False, log_completions=False, log_multimodal=False,
            ddp_find_unused_parameters=self.world > 1 or None, reward_weights=list(self.reward_weights), **extra)

    def build(self, items: Sequence[Item], first: int, steps: int, callbacks: Sequence = ()):
        """TRL's trainer (`PaperGRPOTrainer`) for GRPO steps first..steps of the stage, on `items` in order
        (grpo.rollout_batch_size of them a step)."""
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        per_step = self.s.updates_per_rollout * self.s.ppo_epochs  # optimizer steps a GRPO step
        rewards = StageRewards(items, self.processor.tokenizer, self.reward_cfg, self.reward_fn)
        self.reward_weights = rewards.weights
        rows = trl_rows(items, self.processor)
        trainer = _trl_trainer_class()(
            model=self.model, reward_funcs=rewards.funcs, args=self.trl_config((steps - first) * per_step),
            train_dataset=rows, processing_class=mixed_batch_processor(self.processor),
            callbacks=list(callbacks), settings=self.s, optimizer=self.opt, first_update=first * per_step,
            total_updates=steps * per_step)
        trainer.mixed_kinds = len({it.image_path is None for it in items}) > 1
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)  # it prints every log's dict; the stage's bar counts GRPO steps
        if self.ref_override is not None:  # grpo.reference: base (TRL_GAPS "reference"), placed as TRL places its own
            trainer.ref_model = _prepare_reference(trainer, self.ref_override)
        if trainer.is_deepspeed_enabled != self.deepspeed or trainer.accelerator.num_processes != self.world:
            raise RuntimeError(f"TRL's trainer runs {trainer.accelerator.num_processes} process(es), DeepSpeed "
                               f"{trainer.is_deepspeed_enabled}; the launcher started {self.world}, DeepSpeed "
                               f"{self.deepspeed}")
        self.trainer = trainer
        return trainer

    def train(self, stream: PromptStream, steps: int, *, on_log: Callable[[int, dict], None] | None = None,
              checkpoint: Callable[[int], None] | None = None, checkpoint_every: int = 0, progress: bool = True,
              restore: Callable[[], None] | None = None) -> list[dict[str, float]]:
        from tqdm.auto import tqdm
        from transformers import TrainerCallback

        s, first = self.s, self.step_count
        per_step = s.updates_per_rollout * s.ppo_epochs  # optimizer steps a GRPO step
        if first >= steps:
            return []
        positions, items = [], []  # the stream's position before each remaining step, and its prompts
        for _ in range(first, steps):
            positions.append(stream.state())
            items += stream.next(s.rollout_batch_size)
        end = stream.state()
        engine, history = self, []

        class StageCallback(TrainerCallback):
            """Resumable points and curves on GRPO steps; a resumed point restored once TRL has prepared the
            model and optimizer (under DeepSpeed, the engine loads its own partition) and made its data iterator."""

            restored = restore is None

            def on_step_begin(self, args, state, control, **kw):
                # At the first step's start rather than at train begin: creating the data iterator draws from
                # the global RNG, which the uninterrupted stage did before its first point, not after
                if not self.restored:
                    restore()
                    self.restored = True

            def on_log(self, args, state, control, logs=None, **kw):
                if state.global_step % per_step or "reward" not in (logs or {}):  # not a step's end, or the summary
                    return
                engine.step_count = first + state.global_step // per_step
                row = {**row_of(logs), **engine.trainer.take_loss_stats()}
                # the rate of the step's last update (TRL logs the next one's), as the lean engine logs it
                row["lr"] = s.learning_rate * schedule_factor((engine.step_count * per_step) - 1, steps * per_step,
                                                              s.lr_scheduler_type, s.lr_warmup_ratio)
                history.append(row)
                bar.update(1)
                bar.set_postfix(reward=f"{row['reward']:.3f}", acc=f"{row.get('reward/accuracy', 0.0):.3f}")
                if on_log:
                    on_log(engine.step_count, row)
                if checkpoint and checkpoint_every and engine.step_count % checkpoint_every == 0 \
                        and engine.step_count < steps:
                    stream.load_state(positions[engine.step_count - first])  # where the data stands after it
                    checkpoint(engine.step_count)
                    stream.load_state(end)

        trainer = self.build(items, first, steps, callbacks=[StageCallback()])
        bar = tqdm(total=steps, initial=first, desc="grpo (trl)", unit="step", disable=not progress, mininterval=2.0)
        try:
            trainer.train()
        finally:
            bar.close()
        self.step_count = steps
        self.model.eval()
        return history


def _prepare_reference(trainer, ref):
    from trl.models.utils import prepare_deepspeed

    if trainer.is_deepspeed_enabled:
        return prepare_deepspeed(ref, trainer.accelerator)
    return trainer.accelerator.prepare_model(ref, evaluation_mode=True)


def refuse(settings: GRPOSettings, rollout: str) -> None:
    """The GRPO knobs the trl engine cannot honour, each refused naming the key (settings/grpo.py's help says what
    each engine does)."""
    check_choice("train.rollout", rollout, ROLLOUTS)
    if settings.micro_batch_tokens:
        raise ConfigError("grpo.micro_batch_tokens", "the trl engine micro-batches by completions, not tokens: set "
                                                     "train.trl.per_device_train_batch_size and grpo.micro_batch_tokens: 0")
