"""Held-out accuracy per capability, always beside its no-look baseline.

The no-look baseline is the best one can score from the question alone (the most common training
answer to the same question, else to the same question type): a model that does not look at the
image scores about this much, so learning to see means beating it, not beating zero.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from capcurriculum.answers import committed_answer, gold_is_gradeable, matches, normalize
from capcurriculum.sampling.batching import Item, encode_prompts
from capcurriculum.sampling.rollout import rollout


@torch.no_grad()
def generate(model, processor, items: Sequence[Item], *, batch_size: int = 64, max_new_tokens: int = 48,
             desc: str = "generate", lean: bool = False) -> list[dict[str, Any]]:
    """Greedy responses, each with its token length. `lean`: a batch of one prompt mode decodes through
    models/lean.py (the same tokens as `model.generate`)."""
    tok = processor.tokenizer
    model.eval()
    out: list[dict[str, Any]] = []
    for i in tqdm(range(0, len(items), batch_size), desc=desc, unit="batch", leave=False):
        chunk = list(items[i:i + batch_size])
        if lean and len({it.mode for it in chunk}) == 1:
            ro = rollout(model, processor, chunk, group_size=1, max_new_tokens=max_new_tokens, temperature=0,
                         lean=True, suppress_vision=False)
            out += [{"response": t, "n_tokens": int(n)} for t, n in zip(ro.texts, ro.completion_mask.sum(1))]
            continue
        enc = encode_prompts(processor, chunk)
        gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        new = gen[:, enc["input_ids"].shape[1]:]
        for row in new:
            ids = row.tolist()
            n = ids.index(tok.eos_token_id) + 1 if tok.eos_token_id in ids else len(ids)
            out.append({"response": tok.decode(ids[:n], skip_special_tokens=True), "n_tokens": n})
    return out


def score(items: Sequence[Item], responses: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for it, r in zip(items, responses, strict=True):
        ex = it.example
        pred = committed_answer(r["response"])
        gradeable = gold_is_gradeable(ex["answer"], ex["answer_type"])
        rows.append({"id": ex["id"], "mode": it.mode, "question": ex["question"], "gold": ex["answer"],
                     "pred": pred, "correct": gradeable and matches(pred, ex["answer"], ex["answer_type"]),
                     "ungradeable_gold": not gradeable,
                     "response": r["response"], "n_tokens": r["n_tokens"],
                     "qtype": (ex.get("meta") or {}).get("qtype")})
    return rows


def accuracy(flags: Sequence[bool]) -> dict[str, float]:
    n = len(flags)
    acc = sum(flags) / n if n else float("nan")
    se = math.sqrt(acc * (1 - acc) / n) if n else float("nan")
    return {"acc": acc, "n": n, "se": se}


def no_look_predictor(train: Sequence[dict[str, Any]]):
    """Majority training answer by exact question, then by question type, then overall."""
    by_q: dict[str, Counter] = defaultdict(Counter)
    by_type: dict[str, Counter] = defaultdict(Counter)
    overall: Counter = Counter()
    for ex in train:
        a = normalize(str(ex["answer"]))
        by_q[ex["question"]][a] += 1
        by_type[(ex.get("meta") or {}).get("qtype", "")][a] += 1
        overall[a] += 1

    def predict(ex: dict[str, Any]) -> str | None:
        for table in (by_q.get(ex["question"]), by_type.get((ex.get("meta") or {}).get("qtype", ""))):
            if table:
                return table.most_common(1)[0][0]
        return overall.most_common(1)[0][0] if overall else None

    return predict


def no_look_correct(train: Sequence[dict[str, Any]], test: Sequence[dict[str, Any]]) -> list[bool]:
    """Per test example: would the no-look predictor built from `train` answer it correctly?"""
    predict = no_look_predictor(train)
    return [matches(predict(ex), ex["answer"], ex["answer_type"]) for ex in test]
