"""Curriculum stages: which set a slot trains on, what its boundary carries, and the stage recipe.

    spec = stage_spec(cfg, "train_2")        # slot 2 of curriculum.order; or "merged"
    metrics = StageRecipe(cfg, spec, StagePaths.of(init_dir=..., out_dir=..., ...)).run()   # or run_stage(...)

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
    LEAN_ONE_PROCESS,
    OPTIMIZER_STATES,
    ConfigError,
    check_choice,
    check_method,
    parse_order,
    parse_steps,
    select,
)
from capcurriculum.io import sha256_file, write_json, write_jsonl
from capcurriculum.runtime import seed_everything
from capcurriculum.sampling.batching import Item
from capcurriculum.sampling.capabilities import accuracy, generate, no_look_correct, score
from capcurriculum.sampling.rewards import RewardConfig
from capcurriculum.sampling.world_data import SET_MODES, load_set_items, set_file
from capcurriculum.settings import read
from capcurriculum.settings.grpo import GRPOSettings
from capcurriculum.settings.train import TrainSettings
from capcurriculum.training.balance import (
    answer_balance_weights,
    constant_answer_reward,
    drop_single_answer_types,
)
from capcurriculum.training.difficulty import keep_signal, load_pass_rates, order_items, wants_pass_rates
from capcurriculum.training.precision import PrecisionChoice
from capcurriculum.training.switches import TrainSwitches

log = logging.getLogger(__name__)

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
    common = {"difficulty": _train_value(cfg, "difficulty", DIFFICULTY_ORDERS),
              "balance": read.choice(cfg, "train.balance", BALANCES),
              "signal_only": read.boolean(cfg, "train.signal_only"),
              "optimizer_state": _train_value(cfg, "optimizer_state", OPTIMIZER_STATES),
              "reference": str(select(cfg, "grpo.reference"))}
    if node == "merged":
        # the sets in a fixed order, so the merged baseline does not depend on the staged order
        total = read.integer(cfg, "merged.steps", minimum=0)  # derived at composition: the sum of the steps
        return StageSpec("merged", list(SET_MODES), total, _lr_scale(cfg, "merged.vision_lr_scale"),
                         merger_lr_scale=_lr_scale(cfg, "merged.merger_lr_scale"), **common)
    if node not in SLOTS:
        raise ConfigError("stage", f"unknown training node {node!r}; expected one of {', '.join(SLOTS)}, merged")
    k = SLOTS.index(node)
    method = check_method(order[k], select(cfg, f"curriculum.method.{order[k]}"))
    return StageSpec(node, [order[k]], steps[k], _lr_scale(cfg, "train.vision_lr_scale"), method=method,
                     merger_lr_scale=_lr_scale(cfg, "train.merger_lr_scale"), **common)


def _lr_scale(cfg: DictConfig, key: str) -> float:
    """A learning-rate multiplier (0 freezes the part); a missing key is an error naming it."""
    value = select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(key, f"expected a number >= 0, got {value!r}")
    return float(value)


HELD_OUT_SPLITS = ("val", "test")


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
    from capcurriculum.sampling.world_data import WorldData

    if OmegaConf.select(cfg, "raw.source") == "world":
        return WorldData(raw_dir, world_dir, on_error=cfg.raw.on_error)
    return SetsHeldOut(sets_dir, raw_dir, on_error=cfg.raw.on_error)


def drop_overlong(items: list[Item], processor, max_prompt_length: int, where: str) -> tuple[list[Item], int]:
    """EasyR1's filter_overlong_prompts: a prompt longer than max_prompt_length tokens (image tokens
    included) is dropped from the data, counted and logged, rather than truncated."""
    from capcurriculum.sampling.batching import encode_prompts
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
    value = read.present(cfg, "train.seed")
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


@dataclass(frozen=True)
class StagePaths:
    """Where a stage reads and writes (stages/train.py's DVC paths; tests and benches pass temporary ones)."""
    init_dir: Path        # the weights the stage starts from (the previous stage's output, or the base policy)
    base_dir: Path        # the base policy: grpo.reference: base's KL reference
    sets_dir: Path        # data/sets: the curriculum's sets and their held-out splits
    raw_dir: Path         # data/raw: images, DOCCI descriptions
    world_dir: Path       # data/world: the synthetic world's test split (tiny and smoke profiles only)
    out_dir: Path         # the stage's checkpoint (from_pretrained) and its trainer_state/
    resume_dir: Path      # the resumable point while the stage runs; removed when it ends
    difficulty_dir: Path  # data/difficulty: pass rates for train.difficulty / train.signal_only

    @classmethod
    def of(cls, *, init_dir, base_dir, sets_dir, raw_dir, world_dir, out_dir, resume_dir,
           difficulty_dir=None) -> StagePaths:
        return cls(*map(Path, (init_dir, base_dir, sets_dir, raw_dir, world_dir, out_dir, resume_dir,
                               difficulty_dir or "data/difficulty")))


def run_stage(cfg: DictConfig, spec: StageSpec, *, on_log: Callable[[int, dict], None] | None = None,
              accelerator=None, precision: PrecisionChoice | None = None, **paths) -> dict[str, float]:
    """One stage, start to end (StageRecipe); `paths`: StagePaths' fields."""
    return StageRecipe(cfg, spec, StagePaths.of(**paths), on_log=on_log, accelerator=accelerator,
                       precision=precision).run()


class StageRecipe:
    """One curriculum stage, in torchtune's recipe shape around an engine component:

        recipe = StageRecipe(cfg, spec, paths)   # validates: every config error before any work
        recipe.setup()                           # the stage's data, the policy, the engine, the held-out items
        recipe.measure("before")                 # held-out accuracy, the stage's own set, RL headroom
        recipe.train()                           # the engine's steps, with resumable points
        recipe.measure("after"); recipe.save()   # from_pretrained weights, optimizer, boundary, history

    `run()` is that sequence, resume included. The engine is `train.engine`: the lean loop (training/grpo.py:
    one process, the CPU) or TRL's GRPOTrainer (training/trl_engine.py: accelerate, DeepSpeed, vLLM); around it
    everything is shared. `accelerator`: set under a launcher (stages/train.py; the trl engine only, the lean one
    is refused there); each process rolls out and updates on its share of every batch, the main process measures
    and writes, every process takes part in the resumable points. `precision`: train.precision as the node
    resolved it; None resolves it from the config.
    """

    def __init__(self, cfg: DictConfig, spec: StageSpec, paths: StagePaths, *,
                 on_log: Callable[[int, dict], None] | None = None, accelerator=None,
                 precision: PrecisionChoice | None = None):
        self.cfg, self.spec, self.paths, self.on_log, self.accelerator = cfg, spec, paths, on_log, accelerator
        self.settings = GRPOSettings.from_dict(OmegaConf.to_container(cfg.grpo, resolve=True))
        self.train_settings = TrainSettings.from_config(cfg)
        self.reward_cfg = RewardConfig(**self.train_settings.reward)
        self.precision = precision.precision if precision else None  # None: train.precision, as configured
        self.min_items = self.train_settings.min_items
        self.threads = self.train_settings.threads
        self.processes = accelerator.num_processes if accelerator is not None else 1
        self.main = accelerator is None or accelerator.is_main_process
        if accelerator is not None and self.train_settings.engine == "lean" and spec.method == "grpo":
            raise ConfigError("train.launcher.kind", f"{LEAN_ONE_PROCESS} (this stage was started under a launcher, "
                                                     f"{self.processes} process(es))")
        self.deepspeed = accelerator is not None and accelerator.state.deepspeed_plugin is not None
        if self.deepspeed and spec.optimizer_state == "carry":
            raise ConfigError("train.optimizer_state", "carry is not supported under DeepSpeed (its optimizer state "
                                                       "is partitioned); use fresh")
        self.seed = training_seed(cfg)
        self.metrics: dict[str, float] = {}
        self.flags: dict[str, dict[str, list[bool]]] = {}  # per-item correctness per pass, for paired deltas
        self.history: list[dict] = []
        self.closing: dict[str, Any] = {}  # the last pass's figures, saved for the next stage's "before"
        self._restore: Callable[[], None] | None = None

    # -- setup ---------------------------------------------------------------------------------------------------

    def setup(self) -> None:
        from capcurriculum.models.attention import attention_implementation
        from capcurriculum.models.loading import load_model_and_processor

        spec = self.spec
        torch.set_num_threads(max(1, self.threads // self.processes))  # a launcher's processes share the cores
        seed_everything(self.seed)
        self.attn = attention_implementation(self.train_settings.attn_implementation)
        items = self._load_sets()  # before the weights: a set too small to train on fails at once
        self.model, self.processor = load_model_and_processor(self.paths.init_dir, attn_implementation=self.attn,
                                                              dtype=self.train_settings.weights_dtype)
        self._setup_data(items)
        if spec.method == "grpo":
            self._setup_engine()
            self._setup_held_out()

    def _load_sets(self) -> list[Item]:
        """The stage's sets' train splits, gradeable items only (the rest counted)."""
        items, self.train_rows, p = [], {}, self.paths
        for name in self.spec.sets:
            part, counts = load_set_items(name, p.sets_dir, p.raw_dir)
            self.train_rows[name] = [it.example for it in part]
            if len(part) < self.min_items:
                raise ValueError(f"{set_file(p.sets_dir, name, 'train')}: {len(part)} gradeable items, fewer than "
                                 f"train.min_items ({self.min_items}); the {name!r} set is too small to train on")
            items += part
            self.metrics.update(counts)
        return items

    def _setup_data(self, items: list[Item]) -> None:
        """The stage's training items in the order they are drawn: not over-long, with signal and a balance where
        asked, ordered by difficulty."""
        spec, metrics, p = self.spec, self.metrics, self.paths
        if spec.method == "grpo":
            items, metrics["train/skipped_overlong"] = drop_overlong(items, self.processor,
                                                                     self.settings.max_prompt_length, spec.node)
        rates = None
        if wants_pass_rates(spec.difficulty, spec.signal_only):
            rates = {}
            for name in spec.sets:
                rates |= load_pass_rates(p.difficulty_dir / f"{name}.jsonl")
        if spec.signal_only and spec.method == "grpo":  # a pass rate says nothing about a caption to imitate
            items, metrics["train/skipped_no_signal"] = keep_signal(items, rates, spec.node)
        balanced = spec.balance != "none" and spec.method == "grpo"  # a caption to imitate has no answer to pay
        if balanced:
            items, metrics["train/skipped_single_answer"] = drop_single_answer_types(items, spec.node, spec.balance)
            if not items and self.min_items > 0:
                raise ValueError(f"{spec.node}: every item of {', '.join(spec.sets)} belongs to a group with a "
                                 f"single answer (train.balance: {spec.balance}; nothing to balance; none trains on "
                                 "them)")
        self.items = order_items(items, spec.difficulty, rates)
        self.steps = spec.steps
        if not self.items:  # only reachable with train.min_items: 0 (paper_dry: random filter models may keep nothing)
            log.warning("%s: no items in %s; training 0 of %d steps", spec.node, ", ".join(spec.sets), spec.steps)
            metrics["train/empty_set"], self.steps = 1, 0
        weights = answer_balance_weights(self.items, spec.balance) if balanced and self.items else None
        if self.items:  # what a blind policy earns on the draws: one answer a question type, one a question text
            metrics["data/const_answer_reward"] = constant_answer_reward(self.items, weights)
            metrics["data/question_prior_reward"] = constant_answer_reward(self.items, weights, by="question")
        from capcurriculum.training.grpo import PromptStream

        self.stream = PromptStream(self.items or [None], seed=self.seed, shuffle=spec.difficulty == "none",
                                   weights=weights)

    def _setup_engine(self) -> None:
        """The KL reference, the carried optimizer state and the engine (lean or TRL)."""
        from capcurriculum.models.loading import load_model_and_processor
        from capcurriculum.training.checkpoint import load_optimizer
        from capcurriculum.training.grpo import GRPOTrainer, reference_dtype

        cfg, spec, p, acc = self.cfg, self.spec, self.paths, self.accelerator
        ref = None
        # loaded once, straight onto the device in the policy's compute dtype (no fp32 copy); the trl engine builds
        # the stage-start reference itself from the policy's checkpoint
        if self.settings.kl_coef > 0 and (self.train_settings.engine == "lean" or spec.reference == "base"):
            ref = load_model_and_processor(p.base_dir if spec.reference == "base" else p.init_dir,
                                           attn_implementation=self.attn, dtype=reference_dtype(acc),
                                           device=str(acc.device) if acc is not None else "cpu")[0]
        carried = p.init_dir / TRAINER_STATE
        self.opt_state = None
        if spec.optimizer_state == "carry" and (carried / "optimizer.safetensors").exists():
            self.opt_state = load_optimizer(carried)
        self.switches = TrainSwitches.of(cfg, self.model, self.precision)
        common = {"ref_model": ref, "vision_lr_scale": spec.vision_lr_scale, "merger_lr_scale": spec.merger_lr_scale,
                  "optimizer_state": self.opt_state, "switches": self.switches}
        if self.train_settings.engine == "trl":
            from capcurriculum.training.trl_engine import TRLEngine

            train = self.train_settings
            self.trainer = TRLEngine(self.model, self.processor, self.settings, self.reward_cfg,
                                     output_dir=trl_output_dir(p.resume_dir), seed=self.seed,
                                     per_device_train_batch_size=train.per_device_train_batch_size,
                                     rollout=train.rollout, accelerator=acc,
                                     vllm_gpu_memory_utilization=train.vllm_gpu_memory_utilization, **common)
        else:
            self.trainer = GRPOTrainer(self.model, self.processor, self.settings, self.reward_cfg, **common)
        self.metrics["train/bf16"] = float(self.trainer.precision == "bf16")

    def _setup_held_out(self) -> None:
        """Each capability's held-out items, the stage's own set held out, and the pass's identity (to reuse the
        previous stage's closing pass: training/held_out_record.py)."""
        from capcurriculum.sampling.world_data import CAPABILITIES
        from capcurriculum.training.held_out_record import fingerprint_items

        p, n, headroom_n = self.paths, self.train_settings.eval_n, self.train_settings.headroom_n
        self.world = held_out_data(self.cfg, p.raw_dir, p.world_dir, p.sets_dir)
        # perc_caption, a diagnostic with ~5x longer prompts: the first headroom_n
        evaluated = {cap: self.world.items(name, mode, self.world.held_out_split,
                                           limit=headroom_n if cap == "perc_caption" else n)
                     for cap, (name, mode) in CAPABILITIES.items()}
        self.held_out = {name: evaluated[SET_MODES[name]] for name in self.spec.sets if evaluated[SET_MODES[name]]}
        # The stage's own set held out (D_perc's val and test splits, a math set's val; the first
        # train.eval.headroom_n items): what the stage learnt of its data's distribution, beside a blind answer
        # per question text learnt from the train split. Off the world the capability pass above already runs on
        # these splits, so it is not run twice.
        on_sets = isinstance(self.world, SetsHeldOut)
        self.set_held_out = {name: [] if on_sets else held_out_set_items(name, p.sets_dir, p.raw_dir)[:headroom_n]
                             for name in self.spec.sets}
        for name, its in self.set_held_out.items():
            if its:
                blind = no_look_correct(self.train_rows[name], [it.example for it in its])
                self.metrics[f"set/{name}/no_look"], self.metrics[f"set/{name}/n"] = sum(blind) / len(blind), len(blind)
        self.eval_settings = {"n": n, "caption_n": headroom_n, "lean": self.switches.lean, "threads": self.threads}
        self.items_sha = fingerprint_items(evaluated)

    # -- measure, train, save --------------------------------------------------------------------------------------

    def measure(self, tag: str, record: dict | None = None) -> dict[str, float]:
        """The held-out pass as `<tag>/...` metrics: capabilities, the stage's own set, RL headroom. `record`: the
        previous stage's closing pass on these weights and items, reused instead of generating again."""
        from capcurriculum.sampling.headroom import headroom

        model, processor, flags, train = self.model, self.processor, self.flags, self.train_settings
        torch.set_num_threads(self.threads)  # the main process measures alone: the others wait in a collective
        if record is not None:
            out, rows = {f"{tag}/{k}": v for k, v in record["metrics"].items()}, record["rows"]
            flags[tag] = dict(record["flags"])
        else:
            out, rows = _evaluate(model, processor, self.world, train.eval_n, tag, flags,
                                  lean=self.switches.lean, caption_n=train.headroom_n)
        self.closing.update(metrics={k[len(tag) + 1:]: v for k, v in out.items()},
                            rows=rows, flags=dict(flags[tag]))  # the capabilities' flags, before the set's own join
        if record is not None:
            out[f"{tag}/reused"] = 1.0
        for name, its in self.set_held_out.items():
            if its:
                done = score(its, generate(model, processor, its, max_new_tokens=train.eval_max_new_tokens,
                                           desc=f"{tag} {name} held out", lean=self.switches.lean))
                flags[tag][f"set/{name}"] = [r["correct"] for r in done]
                out.update({f"{tag}/set/{name}/{k}": v for k, v in accuracy(flags[tag][f"set/{name}"]).items()
                            if k != "n"})
        for name, its in self.held_out.items():
            greedy = [r for r in rows if r["mode"] == SET_MODES[name]]  # the same items, already generated
            limit = train.headroom_n
            h, _ = headroom(model, processor, its[:limit], greedy_rows=greedy[:limit],
                            group_size=train.eval_group_size, max_new_tokens=train.eval_max_new_tokens,
                            reward_cfg=self.reward_cfg, desc=f"{tag} {name}", lean=self.switches.lean)
            out.update({f"{tag}/headroom/{name}/{k}": v for k, v in h.items()})
        torch.set_num_threads(max(1, self.threads // self.processes))
        return out

    def resume_or_measure(self) -> None:
        """Continue from the stage's resumable point if one matches this run, else the "before" pass (reusing the
        previous stage's closing pass where its weights and items are these)."""
        from capcurriculum.training.checkpoint import load_resume, restore_resume
        from capcurriculum.training.held_out_record import load_record

        p, acc = self.paths, self.accelerator
        self.fp = fingerprint(stage_params(self.cfg, self.spec), p.init_dir)
        resumed = load_resume(p.resume_dir, self.fp, accelerator=acc)
        if resumed:  # loaded once the engine is ready (under DeepSpeed through TRL's engine, once TRL prepared it)
            self._restore = lambda: restore_resume(p.resume_dir, self.model, self.trainer.opt, accelerator=acc,
                                                   engine=self._deepspeed_engine())
            self.stream.load_state(resumed["stream"])
            self.trainer.step_count, self.history = resumed["step"], resumed["history"]
            self.metrics.update(resumed["before"])
            self.flags["before"] = resumed["before_flags"]
            log.info("%s: resumed at step %d of %d from %s", self.spec.node, self.trainer.step_count, self.spec.steps,
                     p.resume_dir)
        elif self.main:
            record = load_record(p.init_dir, self.items_sha, self.eval_settings)
            if record is not None:
                log.info("%s: held-out accuracy before training from %s's closing pass (the same weights and items)",
                         self.spec.node, p.init_dir)
            self.metrics.update(self.measure("before", record))

    def train(self) -> None:
        t0 = time.time()
        self.trainer.train(self.stream, self.steps, on_log=self._logged, checkpoint=self._checkpoint,
                           checkpoint_every=self.train_settings.checkpoint_every, progress=self.main,
                           restore=self._restore)
        self.metrics["train/seconds"] = time.time() - t0

    def _checkpoint(self, step: int) -> None:
        from capcurriculum.training.checkpoint import save_resume

        save_resume(self.paths.resume_dir, self.model, self.processor, self.trainer.opt,
                    {"fingerprint": self.fp, "step": step, "stream": self.stream.state(), "history": self.history,
                     "before": {k: v for k, v in self.metrics.items() if k.startswith("before/")},
                     "before_flags": self.flags.get("before")}, accelerator=self.accelerator,
                    engine=self._deepspeed_engine())

    def _deepspeed_engine(self):
        """What DeepSpeed saves and loads a resumable point through (the trl engine's wrapped model), or None."""
        return self.trainer.engine if self.deepspeed else None

    def _logged(self, step: int, row: dict) -> None:
        self.history.append({"step": step, **row})
        if self.on_log:
            self.on_log(step, row)

    def save(self) -> None:
        """The stage's output: from_pretrained weights, the closing pass's record, the optimizer (for a carry), the
        boundary it crossed and its curve; the resumable point goes."""
        from capcurriculum.models.tiny import save_pretrained_dir
        from capcurriculum.training.checkpoint import save_optimizer
        from capcurriculum.training.held_out_record import save_record

        p, acc, spec = self.paths, self.accelerator, self.spec
        save_pretrained_dir(self.model, self.processor, p.out_dir)
        save_record(p.out_dir, self.items_sha, self.eval_settings, self.closing["metrics"], self.closing["flags"],
                    self.closing["rows"], rows_per_mode=self.train_settings.headroom_n)
        if not self.deepspeed:  # DeepSpeed partitions it: no whole state to carry (a carry is refused under it)
            save_optimizer(self.trainer.opt, p.out_dir / TRAINER_STATE)
        launcher = ("python" if acc is None
                    else f"accelerate ({acc.distributed_type.value}, {acc.num_processes} processes)")
        write_json(p.out_dir / TRAINER_STATE / "boundary.json", {
            **asdict(spec), "started_from": str(p.init_dir), "carried_optimizer": self.opt_state is not None,
            "engine": self.train_settings.engine, "launcher": launcher,
            "kl_reference": str(p.base_dir if spec.reference == "base" else p.init_dir),
            "steps_done": self.trainer.step_count, "data_position": self.stream.state()})
        write_jsonl(p.out_dir / TRAINER_STATE / "history.jsonl", self.history)
        shutil.rmtree(p.resume_dir, ignore_errors=True)
        shutil.rmtree(trl_output_dir(p.resume_dir), ignore_errors=True)

    def run(self) -> dict[str, float]:
        """setup, before (or resume), train, after, save; only the main process measures and writes. Caption SFT
        (curriculum.method.perc: sft) runs the supervised loop instead of an engine."""
        self.setup()
        p = self.paths
        if self.spec.method == "sft":
            return _caption_sft(self.cfg, self.spec, self.model, self.processor, self.items, self.metrics,
                                raw_dir=p.raw_dir, world_dir=p.world_dir, sets_dir=p.sets_dir, init_dir=p.init_dir,
                                out_dir=p.out_dir, on_log=self.on_log)
        self.resume_or_measure()
        self.train()
        if not self.main:
            return self.metrics
        self.metrics.update(self.measure("after"))
        self.metrics.update(summarize(self.history, self.metrics, self.flags, self.spec))
        self.save()
        return self.metrics


def trl_output_dir(resume_dir: str | Path) -> Path:
    """TRL's output_dir for a stage (it writes nothing there with the stage's own checkpoints; the resumable point
    beside it replaces its directory whole, so the two are siblings)."""
    resume_dir = Path(resume_dir)
    return resume_dir.with_name(f".{resume_dir.name}.trl")


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
    from capcurriculum.sampling.paired import mean_delta, paired_delta

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
    lean = TrainSwitches.of(cfg, model).lean
    train = TrainSettings.from_config(cfg)
    flags: dict[str, dict[str, list[bool]]] = {}
    history: list[dict] = []
    for tag in ("before", "after"):
        if tag == "after" and captions and spec.steps:
            sft = train.sft
            pcfg = PretrainConfig(steps=spec.steps, batch_size=sft.batch_size, lr=sft.lr,
                                  vision_lr_scale=spec.vision_lr_scale, merger_lr_scale=spec.merger_lr_scale,
                                  warmup_steps=sft.warmup_steps,
                                  weight_decay=float(cfg.grpo.weight_decay), grad_clip=float(cfg.grpo.max_grad_norm),
                                  threads=train.threads, mixture={"caption": 1.0})
            t0 = time.time()
            history = pretrain(model, processor, MixtureSampler({"caption": captions}, {"caption": 1.0}, training_seed(cfg)),
                               pcfg, on_log=on_log, log_every=1)
            metrics["train/seconds"] = time.time() - t0
        metrics.update(_evaluate(model, processor, world, train.eval_n, tag, flags, lean=lean,
                                 caption_n=train.headroom_n)[0])
    metrics.setdefault("train/seconds", 0.0)
    metrics.update(summarize(history, metrics, flags, spec))
    save_pretrained_dir(model, processor, out_dir)
    write_json(out_dir / TRAINER_STATE / "boundary.json", {
        **asdict(spec), "started_from": str(init_dir), "carried_optimizer": False, "kl_reference": None,
        "steps_done": spec.steps if captions else 0, "data_position": None})
    write_jsonl(out_dir / TRAINER_STATE / "history.jsonl", history)
    return metrics
