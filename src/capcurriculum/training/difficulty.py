"""The difficulty curriculum: order a stage's items easy -> hard.

Two measures of difficulty (`train.difficulty`):
- `easy_to_hard`: the item's own `difficulty` field (a source's level: MATH levels, the world's
  number of operations);
- `pass_rate`: the base policy's sampled pass rate on the item (G samples at the training
  temperature), computed once by the `difficulty` node and cached in `data/difficulty/<set>.jsonl`;
  a high pass rate is easy.

The same cache serves `train.signal_only`: an item the base never or always solves gives every
completion of its group the same reward, so GRPO's group-normalised advantage is zero and the item
costs a rollout for no gradient (DAPO filters such groups on the fly; here they go before training).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from capcurriculum.io import DataError, iter_jsonl, write_json, write_jsonl
from capcurriculum.sampling.batching import Item
from capcurriculum.sampling.rewards import RewardConfig
from capcurriculum.settings.train import TrainSettings
from capcurriculum.training.switches import TrainSwitches

log = logging.getLogger(__name__)


def pass_rates(model, processor, items: Sequence[Item], *, group_size: int, max_new_tokens: int,
               temperature: float = 1.0, batch_size: int = 32, reward_cfg: RewardConfig | None = None,
               desc: str = "pass rate", lean: bool = False) -> list[dict]:
    """[{id, pass_rate, n}] per item: the fraction of `group_size` samples the accuracy reward grades right."""
    from capcurriculum.sampling.headroom import sample_groups

    sampled, _ = sample_groups(model, processor, items, group_size=group_size, max_new_tokens=max_new_tokens,
                               temperature=temperature, batch_size=batch_size, reward_cfg=reward_cfg, desc=desc,
                               lean=lean)
    return [{"id": it.example["id"], "pass_rate": sum(acc) / group_size, "n": group_size}
            for it, acc in zip(items, sampled, strict=True)]


def load_pass_rates(path: str | Path) -> dict[str, float]:
    """{id: pass_rate} from a `difficulty` node's file; a malformed line is an error naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no pass rates; the `difficulty` node writes them when "
                                f"train.difficulty is pass_rate or train.signal_only is true (dvc repro difficulty)")
    rates = {}
    for line, row in iter_jsonl(path):
        rate = row.get("pass_rate")
        if "id" not in row or not isinstance(rate, (int, float)) or not 0 <= rate <= 1 or math.isnan(rate):
            raise DataError(path, f"expected {{id, pass_rate in [0, 1]}}, got {row}", line)
        rates[str(row["id"])] = float(rate)
    return rates


def wants_pass_rates(difficulty: str, signal_only: bool) -> bool:
    """Whether the training config needs the `difficulty` node's cache."""
    return difficulty == "pass_rate" or bool(signal_only)


def _require_rates(items: list[Item], rates: dict[str, float] | None, key: str) -> dict[str, float]:
    rates = rates or {}
    missing = [it.example["id"] for it in items if it.example["id"] not in rates]
    if missing:
        raise ValueError(f"{key}: {len(missing)} items have no cached pass rate (first: {missing[0]}); "
                         f"re-run the `difficulty` node")
    return rates


def keep_signal(items: list[Item], rates: dict[str, float] | None, where: str) -> tuple[list[Item], int]:
    """The items with 0 < pass rate < 1, and how many were dropped (logged)."""
    rates = _require_rates(items, rates, "train.signal_only")
    kept = [it for it in items if 0 < rates[it.example["id"]] < 1]
    log.info("%s: %d of %d items have signal (0 < base pass rate < 1); the rest dropped", where, len(kept), len(items))
    return kept, len(items) - len(kept)


def order_items(items: list[Item], difficulty: str, rates: dict[str, float] | None = None) -> list[Item]:
    """Items easy -> hard; ties (and `none`) keep the seeded set order (sorted() is stable)."""
    if difficulty == "none":
        return items
    if difficulty == "easy_to_hard":
        # items without a level go last
        return sorted(items, key=lambda it: (it.example.get("difficulty") is None, it.example.get("difficulty") or 0))
    if difficulty == "pass_rate":
        rates = _require_rates(items, rates, "train.difficulty pass_rate")
        return sorted(items, key=lambda it: -rates[it.example["id"]])
    raise ValueError(f"train.difficulty: unknown order {difficulty!r}")


SETS = ("perc", "text", "vis")


def write_pass_rates(cfg, *, policy_dir: str | Path, sets_dir: str | Path, raw_dir: str | Path,
                     out_dir: str | Path) -> dict[str, float]:
    """The `difficulty` node: the base policy's pass rate on every train item of every set, when
    train.difficulty or train.signal_only asks for it; otherwise an empty cache that says so. Written whole or not at all."""
    from capcurriculum.models.loading import load_model_and_processor
    from capcurriculum.runtime import seed_everything
    from capcurriculum.sampling.world_data import load_set_items

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    train = TrainSettings.from_config(cfg)
    mode = train.difficulty
    wanted = wants_pass_rates(mode, train.signal_only)
    metrics: dict[str, float] = {"computed": float(wanted)}
    if wanted:
        pcfg = cfg.pass_rate
        torch.set_num_threads(train.threads)
        seed_everything(cfg.seed)
        model, processor = load_model_and_processor(policy_dir)
        lean = TrainSwitches.of(cfg, model).lean
        reward_cfg = RewardConfig(**train.reward)
        for name in SETS:
            items, _ = load_set_items(name, sets_dir, raw_dir)
            rows = pass_rates(model, processor, items, group_size=int(pcfg.group_size),
                              max_new_tokens=int(pcfg.max_new_tokens), temperature=float(pcfg.temperature),
                              batch_size=int(pcfg.batch_size), reward_cfg=reward_cfg, desc=f"pass rate {name}",
                              lean=lean)
            write_jsonl(tmp / f"{name}.jsonl", rows)
            rates = [r["pass_rate"] for r in rows]
            n = max(1, len(rates))
            # a group whose samples all agree gives GRPO no advantage: the share of items with signal
            metrics |= {f"{name}/items": len(rates), f"{name}/mean_pass_rate": sum(rates) / n,
                        f"{name}/never_solved": sum(r == 0 for r in rates) / n,
                        f"{name}/always_solved": sum(r == 1 for r in rates) / n}
            log.info("pass rates of %s: %s", name, json.dumps({k: v for k, v in metrics.items() if k.startswith(name)}))
    write_json(tmp / "status.json", {"train.difficulty": mode, "computed": wanted,
                                     "policy": str(policy_dir), "sets": list(SETS) if wanted else []})
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return metrics
