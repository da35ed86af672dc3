"""Curriculum stages: which set a slot trains on, what its boundary carries, and the stage recipe.

    spec = stage_spec(cfg, "train_2")        # slot 2 of curriculum.order; or "merged"
    metrics = run_stage(cfg, spec, init_dir=..., out_dir=...)

Stage boundaries are explicit (DESIGN.md section 8), each a config value recorded with the checkpoint:
  train.optimizer_state  fresh (default, as the authors' scripts: each stage a new run) | carry
  grpo.reference         stage_start (default: KL towards the model the stage starts from) | base
  the data order         each stage draws its own set in a fresh seeded order (epoch 0, position 0)
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from capcurriculum.config import (
    BALANCES,
    DIFFICULTY_ORDERS,
    OPTIMIZER_STATES,
    ConfigError,
    check_choice,
    check_method,
    parse_order,
    parse_steps,
    select,
)
from capcurriculum.answers import gold_is_gradeable
from capcurriculum.data.schema import Example
from capcurriculum.evaluation.capabilities import accuracy, generate, no_look_correct, score
from capcurriculum.io import read_jsonl, sha256_file, write_json, write_jsonl
from capcurriculum.runtime import seed_everything
from capcurriculum.training.balance import (
    answer_balance_weights,
    constant_answer_reward,
    drop_single_answer_types,
)
from capcurriculum.training.batching import Item
from capcurriculum.training.difficulty import keep_signal, load_pass_rates, order_items, wants_pass_rates
from capcurriculum.training.grpo_config import GRPOSettings
from capcurriculum.training.precision import PrecisionChoice
from capcurriculum.training.rewards import RewardConfig

log = logging.getLogger(__name__)

SET_MODES = {"perc": "perc_image", "text": "text_math", "vis": "vis_math"}
SLOTS = ("train_1", "train_2", "train_3")
TRAINER_STATE = "trainer_state"  # sub-directory of a stage checkpoint: optimizer, boundary record


@dataclass
class StageSpec:
    node: str                # train_1..3 or merged
    sets: list[str]          # the sets it trains on
    steps: int               # GRPO steps (rollouts)
    vision_lr_scale: float   # 0 freezes the vision tower
    difficulty: str
    optimizer_state: str
    reference: str
    method: str = "grpo"     # grpo | sft (perception only: caption SFT, the paper's RLVR-vs-SFT ablation)
    balance: str = "none"    # none | answer | question (training/balance.py)
    signal_only: bool = False  # train only on items the base sometimes solves, sometimes not (training/difficulty.py)
    merger_lr_scale: float = 1.0  # the tower's mergers into the language model; 0 freezes them


def _train_value(cfg: DictConfig, key: str, allowed: tuple[str, ...] | None = None) -> Any:
    value = select(cfg, f"train.{key}")
    return check_choice(f"train.{key}", value, allowed) if allowed else value


def stage_spec(cfg: DictConfig, node: str) -> StageSpec:
    """The stage a node runs, with every check that must fail before training."""
    order = parse_order(select(cfg, "curriculum.order"))
    if len(order) != len(SLOTS):
        raise ConfigError("curriculum.order", f"the staged run has {len(SLOTS)} slots; got {len(order)} sets "
                          f"({', '.join(order)})")
    steps = parse_steps(cfg, order)
    balance = check_choice("train.balance", OmegaConf.select(cfg, "train.balance", default="none"), BALANCES)
    signal_only = OmegaConf.select(cfg, "train.signal_only", default=False)
    if not isinstance(signal_only, bool):
        raise ConfigError("train.signal_only", f"expected true or false, got {signal_only!r}")
    common = {"difficulty": _train_value(cfg, "difficulty", DIFFICULTY_ORDERS), "balance": balance,
              "signal_only": signal_only,
              "optimizer_state": _train_value(cfg, "optimizer_state", OPTIMIZER_STATES),
              "reference": str(select(cfg, "grpo.reference"))}
    if node == "merged":
        # the sets in a fixed order, so the merged baseline does not depend on the staged order
        total = int(OmegaConf.select(cfg, "merged.steps", default=sum(steps)))  # derived at composition: the sum
        return StageSpec("merged", list(SET_MODES), total, _lr_scale(cfg, "merged.vision_lr_scale"),
                         merger_lr_scale=_lr_scale(cfg, "merged.merger_lr_scale", 1.0), **common)
    if node not in SLOTS:
        raise ConfigError("stage", f"unknown training node {node!r}; expected one of {', '.join(SLOTS)}, merged")
    k = SLOTS.index(node)
    method = check_method(order[k], select(cfg, f"curriculum.method.{order[k]}"))
    return StageSpec(node, [order[k]], steps[k], _lr_scale(cfg, "train.vision_lr_scale"), method=method,
                     merger_lr_scale=_lr_scale(cfg, "train.merger_lr_scale", 1.0), **common)


def _lr_scale(cfg: DictConfig, key: str, default: float | None = None) -> float:
    """A learning-rate multiplier (0 freezes the part); a missing key without a default is an error."""
    value = OmegaConf.select(cfg, key, default=default) if default is not None else select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(key, f"expected a number >= 0, got {value!r}")
    return float(value)


HELD_OUT_SPLITS = ("val", "test")


def set_file(sets_dir: Path, name: str, split: str) -> Path:
    return sets_dir / name / f"{name}_{split}.jsonl"


def held_out_set_items(name: str, sets_dir: str | Path, raw_dir: str | Path) -> list[Item]:
    """A set's held-out splits (val, and test where the set has one) as prompt items."""
    return [it for split in HELD_OUT_SPLITS if set_file(Path(sets_dir), name, split).exists()
            for it in load_set_items(name, sets_dir, raw_dir, split=split)[0]]


class SetsHeldOut:
    """The held-out passes' items on a profile without the synthetic world (the paper's DOCCI): each capability's
    own set's held-out splits under data/sets (D_perc's val and test; a math set's val, which exists when
    sets.val_fraction holds one out), with the set's train split for the no-look baseline; perception's caption
    mode joins each image's DOCCI description from data/raw. WorldData's interface, so the same held-out pass
    (training/base.py's evaluate_capabilities) runs on either, and nothing under data/world is read."""

    held_out_split, baseline_split = "held_out", "train"
    SETS = {"perception": "perc", "text_math": "text", "vis_math": "vis"}  # WorldData's names -> data/sets

    def __init__(self, sets_dir: str | Path, raw_dir: str | Path, on_error: str = "raise"):
        self.sets_dir, self.raw_dir, self.on_error = Path(sets_dir), Path(raw_dir), on_error
        self._captions: dict[str, str] | None = None

    def examples(self, name: str, split: str) -> list[dict]:
        return [it.example for it in self._items(name, split)]

    def items(self, name: str, mode: str, split: str, limit: int | None = None) -> list[Item]:
        items = self._items(name, split)[:limit]
        if mode != "perc_caption":
            return items
        return [Item(it.example, mode, image_path=it.image_path, caption=self.captions().get(Path(it.image_path).name))
                for it in items]

    def _items(self, name: str, split: str) -> list[Item]:
        set_name = self.SETS[name]
        if split == self.held_out_split:
            return held_out_set_items(set_name, self.sets_dir, self.raw_dir)
        if not set_file(self.sets_dir, set_name, split).exists():
            return []
        return load_set_items(set_name, self.sets_dir, self.raw_dir, split=split)[0]

    def captions(self) -> dict[str, str]:
        """DOCCI's description of each image, by file name."""
        if self._captions is None:
            from capcurriculum.data.docci import load_docci

            corpus = load_docci(self.raw_dir, on_error=self.on_error)
            self._captions = {Path(r.image_path).name: r.description for r in corpus.records}
        return self._captions


def held_out_data(cfg: DictConfig, raw_dir: str | Path, world_dir: str | Path, sets_dir: str | Path):
    """What the held-out passes read: the synthetic world's test split where the profile builds the world
    (raw.source: world), else the stages' own sets' held-out splits (SetsHeldOut)."""
    from capcurriculum.training.base import WorldData

    if OmegaConf.select(cfg, "raw.source") == "world":
        return WorldData(raw_dir, world_dir, on_error=cfg.raw.on_error)
    return SetsHeldOut(sets_dir, raw_dir, on_error=cfg.raw.on_error)


def load_set_items(name: str, sets_dir: str | Path, raw_dir: str | Path, split: str = "train"
                   ) -> tuple[list[Item], dict[str, int]]:
    """A curriculum set as prompt items; items whose gold answer cannot be graded are skipped and counted."""
    sets_dir, raw_dir = Path(sets_dir), Path(raw_dir)
    path = set_file(sets_dir, name, split)
    if not path.exists():
        raise FileNotFoundError(f"{path}: the {name!r} set is missing (its DVC node writes it)")
    image_root = raw_dir / "images" if name == "perc" else sets_dir / name / f"{name}_images"
    items, skipped = [], 0
    for i, row in enumerate(read_jsonl(path), 1):
        ex = Example.from_dict(row, where=f"{path}:{i}").to_dict()
        if not gold_is_gradeable(ex["answer"], ex["answer_type"]):
            skipped += 1
            log.warning("%s:%d: gold answer %r cannot be graded; skipped", path, i, ex["answer"])
            continue
        image = str(image_root / ex["image"]) if ex.get("image") else None
        items.append(Item(ex, SET_MODES[name], image_path=image))
    return items, {f"data/{name}/items": len(items), f"data/{name}/skipped_ungradeable": skipped}


def drop_overlong(items: list[Item], processor, max_prompt_length: int, where: str) -> tuple[list[Item], int]:
    """EasyR1's filter_overlong_prompts: a prompt longer than max_prompt_length tokens (image tokens
    included) is dropped from the data, counted and logged, rather than truncated."""
    from capcurriculum.training.batching import encode_prompts
    from capcurriculum.training.grpo import by_mode

    kept, dropped = [], 0
    length: dict[int, int] = {}
    for i in range(0, len(items), 64):  # one mode per batch: image and text prompts encode apart
        for group in by_mode(items[i:i + 64]):
            length.update(zip(map(id, group), encode_prompts(processor, group)["attention_mask"].sum(1).tolist()))
    for it in items:
        n = length[id(it)]
        if n > max_prompt_length:
            dropped += 1
            log.warning("%s: item %s has a %d-token prompt > grpo.max_prompt_length %d; dropped",
                        where, it.example.get("id"), n, max_prompt_length)
        else:
            kept.append(it)
    return kept, dropped


def training_seed(cfg: DictConfig) -> int:
    """train.seed (sampling, data order, init of anything random in training); the global seed when unset.
    Varying it re-runs training only, with the world and the base models fixed."""
    value = OmegaConf.select(cfg, "train.seed", default=None)
    return int(cfg.seed if value is None else value)


def fingerprint(cfg_view: dict[str, Any], init_dir: Path) -> str:
    """What a resumable point must share with this run: its params and its starting weights."""
    h = hashlib.sha256(json.dumps(cfg_view, sort_keys=True, default=str).encode())
    for f in sorted(init_dir.glob("*.safetensors")):
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def stage_params(cfg: DictConfig, spec: StageSpec) -> dict[str, Any]:
    return {"stage": asdict(spec), "grpo": OmegaConf.to_container(cfg.grpo, resolve=True),
            "train": OmegaConf.to_container(cfg.train, resolve=True), "seed": cfg.seed}


def run_stage(cfg: DictConfig, spec: StageSpec, *, init_dir: str | Path, base_dir: str | Path,
              sets_dir: str | Path, raw_dir: str | Path, world_dir: str | Path, out_dir: str | Path,
              resume_dir: str | Path, on_log: Callable[[int, dict], None] | None = None,
              accelerator=None, difficulty_dir: str | Path | None = None,
              precision: PrecisionChoice | None = None) -> dict[str, float]:
    """`accelerator`: set under a launcher (stages/train.py: `accelerate launch`, or `train.processes` > 1):
    each process rolls out and updates on its share of every batch (DeepSpeed ZeRO, or plain data parallel
    with gradients summed across processes); the main process measures and writes, every process takes
    part in the resumable points. The optimizer-state carry needs plain data parallel (ZeRO partitions it).
    `precision`: train.precision as the node resolved it (stages/train.py records it); None resolves it here."""
    from capcurriculum.evaluation.headroom import headroom
    from capcurriculum.models.attention import attention_implementation
    from capcurriculum.models.lean import uses_lean
    from capcurriculum.models.loading import load_model_and_processor
    from capcurriculum.models.tiny import save_pretrained_dir
    from capcurriculum.training.base import CAPABILITIES
    from capcurriculum.training.checkpoint import (
        load_optimizer,
        load_resume,
        restore_resume,
        save_optimizer,
        save_resume,
    )
    from capcurriculum.training.grpo import GRPOTrainer, PromptStream, reference_dtype
    from capcurriculum.training.held_out_record import fingerprint_items, load_record, save_record

    init_dir, base_dir, out_dir, resume_dir = map(Path, (init_dir, base_dir, out_dir, resume_dir))
    settings = GRPOSettings.from_dict(OmegaConf.to_container(cfg.grpo, resolve=True))
    reward_cfg = RewardConfig(**OmegaConf.to_container(cfg.train.reward, resolve=True))
    ecfg = cfg.train.eval
    main = accelerator is None or accelerator.is_main_process
    threads, processes = int(cfg.train.threads), accelerator.num_processes if accelerator is not None else 1
    torch.set_num_threads(max(1, threads // processes))  # data-parallel processes share the cores while training
    seed = training_seed(cfg)
    seed_everything(seed)

    items, metrics, train_rows = [], {}, {}
    min_items = int(cfg.train.min_items)
    for name in spec.sets:
        part, counts = load_set_items(name, sets_dir, raw_dir)
        train_rows[name] = [it.example for it in part]
        if len(part) < min_items:
            raise ValueError(f"{set_file(Path(sets_dir), name, 'train')}: {len(part)} gradeable items, fewer than "
                             f"train.min_items ({min_items}); the {name!r} set is too small to train on")
        items += part
        metrics.update(counts)
    attn = attention_implementation(cfg.train.get("attn_implementation", "sdpa"))
    model, processor = load_model_and_processor(init_dir, attn_implementation=attn,
                                                dtype=cfg.train.get("weights_dtype", "float32"))
    if spec.method == "grpo":
        items, metrics["train/skipped_overlong"] = drop_overlong(items, processor, settings.max_prompt_length,
                                                                 spec.node)
    rates = None
    if wants_pass_rates(spec.difficulty, spec.signal_only):
        rates = {}
        for name in spec.sets:
            rates |= load_pass_rates(Path(difficulty_dir or "data/difficulty") / f"{name}.jsonl")
    if spec.signal_only and spec.method == "grpo":  # a pass rate says nothing about a caption to imitate
        items, metrics["train/skipped_no_signal"] = keep_signal(items, rates, spec.node)
    balanced = spec.balance != "none" and spec.method == "grpo"  # a caption to imitate has no answer to pay
    if balanced:
        items, metrics["train/skipped_single_answer"] = drop_single_answer_types(items, spec.node, spec.balance)
        if not items and int(cfg.train.min_items) > 0:
            raise ValueError(f"{spec.node}: every item of {', '.join(spec.sets)} belongs to a group with a single "
                             f"answer (train.balance: {spec.balance}; nothing to balance; none trains on them)")
    items = order_items(items, spec.difficulty, rates)
    steps = spec.steps
    if not items:  # only reachable with train.min_items: 0 (the smoke profile's toy filter keeps nothing)
        log.warning("%s: no items in %s; training 0 of %d steps", spec.node, ", ".join(spec.sets), spec.steps)
        metrics["train/empty_set"], steps = 1, 0
    weights = answer_balance_weights(items, spec.balance) if balanced and items else None
    if items:  # what a blind policy earns on the draws: one answer a question type, one a question text
        metrics["data/const_answer_reward"] = constant_answer_reward(items, weights)
        metrics["data/question_prior_reward"] = constant_answer_reward(items, weights, by="question")
    stream = PromptStream(items or [None], seed=seed, shuffle=spec.difficulty == "none", weights=weights)
    if spec.method == "sft":
        return _caption_sft(cfg, spec, model, processor, items, metrics, raw_dir=Path(raw_dir),
                            world_dir=Path(world_dir), sets_dir=Path(sets_dir), init_dir=init_dir, out_dir=out_dir,
                            on_log=on_log)
    engine = cfg.train.get("engine", "lean")
    ref = None
    # loaded once, straight onto the device in the policy's compute dtype (no fp32 copy); the trl engine builds the
    # stage-start reference itself from the policy's checkpoint
    if settings.kl_coef > 0 and (engine == "lean" or spec.reference == "base"):
        ref = load_model_and_processor(base_dir if spec.reference == "base" else init_dir, attn_implementation=attn,
                                       dtype=reference_dtype(accelerator),
                                       device=str(accelerator.device) if accelerator is not None else "cpu")[0]
    carried = init_dir / TRAINER_STATE
    opt_state = None
    if spec.optimizer_state == "carry" and (carried / "optimizer.safetensors").exists():
        opt_state = load_optimizer(carried)
    if accelerator is not None and accelerator.state.deepspeed_plugin is not None and spec.optimizer_state == "carry":
        raise ConfigError("train.optimizer_state", "carry is not supported under DeepSpeed (its optimizer state is "
                                                   "partitioned); use fresh")
    lean = uses_lean(cfg, model)
    common = {"ref_model": ref, "vision_lr_scale": spec.vision_lr_scale, "merger_lr_scale": spec.merger_lr_scale,
              "optimizer_state": opt_state, "accelerator": accelerator,
              "precision": precision.precision if precision else cfg.train.get("precision", "fp32"),
              "gradient_checkpointing": bool(cfg.train.get("gradient_checkpointing", False))}
    if engine == "trl":  # TRL's GRPOTrainer (training/trl_engine.py): accelerate, DeepSpeed, vLLM
        from capcurriculum.training.trl_engine import TRLEngine

        trl = cfg.train.trl
        trainer = TRLEngine(model, processor, settings, reward_cfg, output_dir=trl_output_dir(resume_dir), seed=seed,
                            per_device_train_batch_size=trl.per_device_train_batch_size, rollout=cfg.train.rollout,
                            vllm_gpu_memory_utilization=float(trl.vllm_gpu_memory_utilization), **common)
    else:
        trainer = GRPOTrainer(model, processor, settings, reward_cfg, lean=lean,
                              compile=bool(cfg.train.get("compile", False)), **common)
    model = trainer.model  # the unwrapped module (the same object without an accelerator)
    metrics["train/bf16"] = float(trainer.precision == "bf16")

    world = held_out_data(cfg, raw_dir, world_dir, sets_dir)
    n, headroom_n = eval_sizes(ecfg)
    # every capability's held-out items (perc_caption, a diagnostic with ~5x longer prompts: the first headroom_n)
    evaluated = {cap: world.items(name, mode, world.held_out_split, limit=headroom_n if cap == "perc_caption" else n)
                 for cap, (name, mode) in CAPABILITIES.items()}
    held_out = {name: evaluated[SET_MODES[name]] for name in spec.sets if evaluated[SET_MODES[name]]}

    # The stage's own set held out (D_perc's val and test splits, a math set's val; the first
    # train.eval.headroom_n items): what the stage learnt of its data's distribution, beside a blind answer
    # per question text learnt from the train split. Off the world the capability pass above already runs on
    # these splits, so it is not run twice.
    on_sets = isinstance(world, SetsHeldOut)
    set_held_out = {name: [] if on_sets else held_out_set_items(name, sets_dir, raw_dir)[:headroom_n]
                    for name in spec.sets}
    for name, its in set_held_out.items():
        if its:
            blind = no_look_correct(train_rows[name], [it.example for it in its])
            metrics[f"set/{name}/no_look"], metrics[f"set/{name}/n"] = sum(blind) / len(blind), len(blind)
    flags: dict[str, dict[str, list[bool]]] = {}
    # The held-out pass's identity, to reuse the previous stage's closing pass (training/held_out_record.py)
    eval_settings = {"n": n, "caption_n": headroom_n, "lean": lean, "threads": threads}
    items_sha = fingerprint_items(evaluated)
    closing: dict[str, Any] = {}

    def measure(tag: str, record: dict | None = None) -> dict[str, float]:
        torch.set_num_threads(threads)  # the main process measures alone: the others wait in a collective
        if record is not None:  # the previous stage's closing pass, on these weights and items
            out, rows = {f"{tag}/{k}": v for k, v in record["metrics"].items()}, record["rows"]
            flags[tag] = dict(record["flags"])
        else:
            out, rows = _evaluate(model, processor, world, n, tag, flags, lean=lean, caption_n=headroom_n)
        closing.update(metrics={k[len(tag) + 1:]: v for k, v in out.items()},
                       rows=rows, flags=dict(flags[tag]))  # the capabilities' flags, before the stage's own set joins
        if record is not None:
            out[f"{tag}/reused"] = 1.0
        for name, its in set_held_out.items():
            if its:
                done = score(its, generate(model, processor, its, max_new_tokens=int(ecfg.max_new_tokens),
                                           desc=f"{tag} {name} held out", lean=lean))
                flags[tag][f"set/{name}"] = [r["correct"] for r in done]
                out.update({f"{tag}/set/{name}/{k}": v for k, v in accuracy(flags[tag][f"set/{name}"]).items()
                            if k != "n"})
        for name, its in held_out.items():
            greedy = [r for r in rows if r["mode"] == SET_MODES[name]]  # the same items, already generated
            h, _ = headroom(model, processor, its[:headroom_n], greedy_rows=greedy[:headroom_n],
                            group_size=int(ecfg.group_size), max_new_tokens=int(ecfg.max_new_tokens),
                            reward_cfg=reward_cfg, desc=f"{tag} {name}", lean=lean)
            out.update({f"{tag}/headroom/{name}/{k}": v for k, v in h.items()})
        torch.set_num_threads(max(1, threads // processes))
        return out

    fp = fingerprint(stage_params(cfg, spec), init_dir)
    resumed = load_resume(resume_dir, fp, accelerator=accelerator)
    history: list[dict] = []
    restore = None
    if resumed:  # loaded once the engine is ready (under DeepSpeed through TRL's engine, once TRL prepared it)
        def restore() -> None:
            restore_resume(resume_dir, model, trainer.opt, accelerator=accelerator, engine=trainer.engine)

        stream.load_state(resumed["stream"])
        trainer.step_count, history = resumed["step"], resumed["history"]
        metrics.update(resumed["before"])
        flags["before"] = resumed["before_flags"]
        log.info("%s: resumed at step %d of %d from %s", spec.node, trainer.step_count, spec.steps, resume_dir)
    elif main:
        record = load_record(init_dir, items_sha, eval_settings)
        if record is not None:
            log.info("%s: held-out accuracy before training from %s's closing pass (the same weights and items)",
                     spec.node, init_dir)
        metrics.update(measure("before", record))

    def checkpoint(step: int) -> None:
        save_resume(resume_dir, model, processor, trainer.opt,
                    {"fingerprint": fp, "step": step, "stream": stream.state(), "history": history,
                     "before": {k: v for k, v in metrics.items() if k.startswith("before/")},
                     "before_flags": flags.get("before")}, accelerator=accelerator, engine=trainer.engine)

    def logged(step: int, row: dict) -> None:
        history.append({"step": step, **row})
        if on_log:
            on_log(step, row)

    t0 = time.time()
    trainer.train(stream, steps, on_log=logged, checkpoint=checkpoint,
                  checkpoint_every=int(cfg.train.checkpoint_every), progress=main, restore=restore)
    metrics["train/seconds"] = time.time() - t0
    if not main:  # only the main process measures and writes
        return metrics
    metrics.update(measure("after"))
    metrics.update(summarize(history, metrics, flags, spec))
    save_pretrained_dir(model, processor, out_dir)
    save_record(out_dir, items_sha, eval_settings, closing["metrics"], closing["flags"], closing["rows"],
                rows_per_mode=headroom_n)
    if not trainer.deepspeed:
        save_optimizer(trainer.opt, out_dir / TRAINER_STATE)
    write_json(out_dir / TRAINER_STATE / "boundary.json", {
        **asdict(spec), "started_from": str(init_dir), "carried_optimizer": opt_state is not None,
        "engine": engine, "launcher": "python" if accelerator is None else f"accelerate ({accelerator.distributed_type.value}, "
                                                          f"{accelerator.num_processes} processes)",
        "kl_reference": str(base_dir if spec.reference == "base" else init_dir), "steps_done": trainer.step_count,
        "data_position": stream.state()})
    write_jsonl(out_dir / TRAINER_STATE / "history.jsonl", history)
    shutil.rmtree(resume_dir, ignore_errors=True)
    shutil.rmtree(trl_output_dir(resume_dir), ignore_errors=True)
    return metrics


def trl_output_dir(resume_dir: str | Path) -> Path:
    """TRL's output_dir for a stage (it writes nothing there with the stage's own checkpoints; the resumable point
    beside it replaces its directory whole, so the two are siblings)."""
    resume_dir = Path(resume_dir)
    return resume_dir.with_name(f".{resume_dir.name}.trl")


def eval_sizes(ecfg: DictConfig) -> tuple[int | None, int]:
    """(`train.eval.n`: items per capability for the held-out greedy accuracy, None = the whole test split;
    `train.eval.headroom_n`: the slice that headroom sampling, the stage's own held-out set and the caption-mode
    diagnostic use, `n` when unset)."""
    n = None if ecfg.get("n") is None else int(ecfg.n)
    headroom_n = ecfg.get("headroom_n") or n
    if headroom_n is None:
        raise ConfigError("train.eval.headroom_n", "required when train.eval.n is null (the whole test split)")
    return n, int(headroom_n)


def _evaluate(model, processor, world, n: int | None, tag: str, flags: dict, *, caption_n: int,
              lean: bool = False) -> tuple[dict[str, float], list[dict]]:
    """Held-out greedy accuracy per capability as `<tag>/...` metrics; per-item flags kept for paired deltas.
    `caption_n`: the answer-from-caption diagnostic's items (its prompts are ~5x longer; no delta is read off it)."""
    from capcurriculum.training.base import evaluate_capabilities

    out, rows = evaluate_capabilities(model, processor, world, n, split=world.held_out_split,
                                      baseline_split=world.baseline_split, lean=lean, limits={"perc_caption": caption_n})
    flags[tag] = {m: [r["correct"] for r in rows if r["mode"] == m] for m in SET_MODES.values()}
    return {f"{tag}/{k}": v for k, v in out.items()}, rows


def summarize(history: list[dict], metrics: dict[str, float], flags: dict[str, dict[str, list[bool]]],
              spec: StageSpec) -> dict[str, float]:
    """Reward's first and last tenth; held-out change per capability, paired over the same items."""
    from capcurriculum.evaluation.paired import mean_delta, paired_delta

    out: dict[str, float] = {}
    if history:
        k = max(1, len(history) // 10)
        key = "reward" if "reward" in history[0] else "loss"  # caption SFT logs a loss, not a reward
        out[f"{key}/first_tenth"] = sum(r[key] for r in history[:k]) / k
        out[f"{key}/last_tenth"] = sum(r[key] for r in history[-k:]) / k
    # the capabilities measured (all three on the world; off it, those whose set holds items out)
    caps = tuple(c for c in ("perc_image", "text_math", "vis_math") if flags["before"].get(c) and flags["after"].get(c))
    if not caps:
        return out
    before = [metrics[f"before/{c}/acc"] for c in caps]
    after = [metrics[f"after/{c}/acc"] for c in caps]
    out["before/mean_acc"], out["after/mean_acc"] = sum(before) / len(caps), sum(after) / len(caps)
    for cap in caps:
        d = paired_delta(flags["before"][cap], flags["after"][cap])
        out[f"delta/{cap}"], out[f"delta/{cap}/se"] = d["delta"], d["se"]
    d = mean_delta([{"delta": out[f"delta/{c}"], "se": out[f"delta/{c}/se"]} for c in caps])
    out["delta/mean_acc"], out["delta/mean_acc/se"] = d["delta"], d["se"]
    for key in sorted(k for k in flags["before"] if k.startswith("set/") and k in flags["after"]):
        d = paired_delta(flags["before"][key], flags["after"][key])
        out[f"delta/{key}"], out[f"delta/{key}/se"] = d["delta"], d["se"]
    return out


def _caption_sft(cfg: DictConfig, spec: StageSpec, model, processor, items: list[Item], metrics: dict,
                 *, raw_dir: Path, world_dir: Path, sets_dir: Path, init_dir: Path, out_dir: Path,
                 on_log: Callable[[int, dict], None] | None) -> dict[str, float]:
    """The perception stage as caption SFT: image -> its description, on D_perc's images.

    Runs the project's supervised loop (the one `base` pre-trains with) rather than TRL's SFTTrainer: the
    same batching, loss masking and vision learning rate as pre-training, so the two differ only in data.
    Not resumable mid-way: a killed SFT stage restarts.
    """
    from capcurriculum.data.docci import load_docci
    from capcurriculum.models.lean import uses_lean
    from capcurriculum.models.tiny import save_pretrained_dir
    from capcurriculum.training.pretrain import MixtureSampler, PretrainConfig, pretrain

    by_image = {Path(r.image_path).name: r.description for r in load_docci(raw_dir, on_error=cfg.raw.on_error).records}
    seen, captions, missing = set(), [], 0
    for it in items:
        name = Path(it.image_path).name
        if name in seen:
            continue
        seen.add(name)
        if name not in by_image:
            missing += 1
            continue
        captions.append(Item({"id": name, "question": "", "answer": "", "answer_type": "text"}, "caption",
                             image_path=it.image_path, caption=by_image[name]))
    metrics.update({"sft/images": len(captions), "sft/images_without_caption": missing})
    world = held_out_data(cfg, raw_dir, world_dir, sets_dir)
    lean = uses_lean(cfg, model)
    n, caption_n = eval_sizes(cfg.train.eval)
    flags: dict[str, dict[str, list[bool]]] = {}
    history: list[dict] = []
    for tag in ("before", "after"):
        if tag == "after" and captions and spec.steps:
            sft = cfg.train.sft
            pcfg = PretrainConfig(steps=spec.steps, batch_size=int(sft.batch_size), lr=float(sft.lr),
                                  vision_lr_scale=spec.vision_lr_scale, merger_lr_scale=spec.merger_lr_scale,
                                  warmup_steps=int(sft.warmup_steps),
                                  weight_decay=float(cfg.grpo.weight_decay), grad_clip=float(cfg.grpo.max_grad_norm),
                                  threads=int(cfg.train.threads), mixture={"caption": 1.0})
            t0 = time.time()
            history = pretrain(model, processor, MixtureSampler({"caption": captions}, {"caption": 1.0}, training_seed(cfg)),
                               pcfg, on_log=on_log, log_every=1)
            metrics["train/seconds"] = time.time() - t0
        metrics.update(_evaluate(model, processor, world, n, tag, flags, lean=lean, caption_n=caption_n)[0])
    metrics.setdefault("train/seconds", 0.0)
    metrics.update(summarize(history, metrics, flags, spec))
    save_pretrained_dir(model, processor, out_dir)
    write_json(out_dir / TRAINER_STATE / "boundary.json", {
        **asdict(spec), "started_from": str(init_dir), "carried_optimizer": False, "kl_reference": None,
        "steps_done": spec.steps if captions else 0, "data_position": None})
    write_jsonl(out_dir / TRAINER_STATE / "history.jsonl", history)
    return metrics
