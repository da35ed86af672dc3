"""The staged chain (and its baselines): held-out accuracy after every stage, the per-stage lifts, the reward curves.

    write_train_report(metrics_dir="data/metrics/train", models_dir="data/models", out_dir="data/reports",
                       baselines=["merged"])

Writes `train.md` (tables), `train_rewards.png` (reward by curriculum step, staged stages and each baseline on
one axis) and `train_accuracy.png` (held-out accuracy per capability after each stage and for each baseline).
`baselines`: the baseline nodes the DAG ran (merged when merged.enabled; none by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from capcurriculum.io import atomic_path, read_json, read_jsonl, write_text

CAPS = ("perc_image", "text_math", "vis_math")
STAGES = ("train_1", "train_2", "train_3")


def _cell(m: dict, tag: str, cap: str) -> str:
    if f"{tag}/{cap}/acc" not in m:  # not measured: no held-out items of it (a paper-profile set without a split)
        return "n/a"
    return f"{m[f'{tag}/{cap}/acc']:.3f} ± {m[f'{tag}/{cap}/se']:.3f}"


def _num(m: dict, key: str, spec: str = ".3f") -> str:
    return format(m[key], spec) if key in m else "n/a"


def write_train_report(metrics_dir: str | Path, models_dir: str | Path, out_dir: str | Path,
                       profile: str = "tiny", baselines: Sequence[str] = ()) -> str:
    metrics_dir, models_dir, out_dir = map(Path, (metrics_dir, models_dir, out_dir))
    nodes = (*STAGES, *baselines)
    m = {node: read_json(metrics_dir / f"{node}.json") for node in nodes}
    bounds = {node: read_json(models_dir / node / "trainer_state" / "boundary.json") for node in m}
    first = m["train_1"]
    lines = [f"# Curriculum training ({profile} profile)", "",
             ("Greedy held-out accuracy ± standard error (n per capability in brackets in the header); the "
             "no-look baseline is the best score from the question alone."), "",
             "| model | " + " | ".join(f"{c} [n={first.get(f'before/{c}/n', 0)}]" for c in CAPS) + " | mean |",
             "|---" * (len(CAPS) + 2) + "|",
             "| no-look | " + " | ".join(_num(first, f"before/{c}/no_look") for c in CAPS) + " | |",
             "| base | " + " | ".join(_cell(first, "before", c) for c in CAPS) + f" | {_num(first, 'before/mean_acc')} |"]
    for node in nodes:
        sets = bounds[node]["sets"]
        label = f"{node} (+{','.join(sets)})" if node in STAGES else f"{node} (all sets)"
        lines.append(f"| {label} | " + " | ".join(_cell(m[node], "after", c) for c in CAPS)
                     + f" | {_num(m[node], 'after/mean_acc')} |")

    lines += ["", "## What each stage changed (paired over the same held-out items)", "",
              ("| stage | set | Δ on its capability ± se | Δ mean ± se | reward first → last tenth | "
              "greedy / sampled pass@1 / pass@G / greedy mass before → after | s |"), "|---" * 7 + "|"]
    for node in nodes:
        x = m[node]
        sets = bounds[node]["sets"]
        caps = [{"perc": "perc_image", "text": "text_math", "vis": "vis_math"}[s] for s in sets]
        delta = "; ".join(f"{c} {x[f'delta/{c}']:+.3f} ± {x[f'delta/{c}/se']:.3f}" for c in caps
                          if f"delta/{c}" in x) or "n/a"
        head = []
        for s in sets:
            if f"before/headroom/{s}/greedy_pass_at_1" not in x:  # a caption-SFT stage samples nothing
                head.append(f"{s}: n/a ({bounds[node]['method']})")
                continue
            keys = [k.split("/")[-1] for k in x if k.startswith(f"before/headroom/{s}/pass_at_")]
            g = keys[0] if keys else "pass_at_G"
            head.append(f"{s}: " + " → ".join(
                f"{x[f'{t}/headroom/{s}/greedy_pass_at_1']:.2f} / {x[f'{t}/headroom/{s}/sampled_pass_at_1']:.2f} / "
                f"{x[f'{t}/headroom/{s}/{g}']:.2f} / {x.get(f'{t}/headroom/{s}/greedy_mass', float('nan')):.2f}"
                for t in ("before", "after")))
        lines.append(f"| {node} | {','.join(sets)} | {delta} | {_num(x, 'delta/mean_acc', '+.3f')} ± "
                     f"{_num(x, 'delta/mean_acc/se')} | {x.get('reward/first_tenth', float('nan')):.3f} → "
                     f"{x.get('reward/last_tenth', float('nan')):.3f} | {'; '.join(head)} | "
                     f"{x['train/seconds']:.0f} |")
    lines += ["", "## Each stage on its own set, held out", "",
              ("The stage's set's own held-out split (D_perc: val and test; a math set: val), where the training "
               "data's answer priors hold. *Blind per question* answers each question text with its commonest "
               "train-split answer; *blind draws* is what that earns on the stage's training draws (under "
               "`train.balance`). A stage that beats its blind baselines here but not on the benchmark above "
               "learnt its set's selection, not the capability."), "",
              "| stage | set | n | blind per question | before → after | Δ ± se | blind draws (type / question) |",
              "|---" * 7 + "|"]
    for node in nodes:
        x = m[node]
        for s in bounds[node]["sets"]:
            if f"delta/set/{s}" not in x:
                continue
            lines.append(f"| {node} | {s} | {x[f'set/{s}/n']} | {x[f'set/{s}/no_look']:.3f} | "
                         f"{x[f'before/set/{s}/acc']:.3f} → {x[f'after/set/{s}/acc']:.3f} | "
                         f"{x[f'delta/set/{s}']:+.3f} ± {x[f'delta/set/{s}/se']:.3f} | "
                         f"{x.get('data/const_answer_reward', float('nan')):.2f} / "
                         f"{x.get('data/question_prior_reward', float('nan')):.2f} |")
    lines += ["", (f"Final mean held-out accuracy: base {_num(first, 'before/mean_acc')}, staged "
                   f"{_num(m['train_3'], 'after/mean_acc')}"
                   + "".join(f", {b} {_num(m[b], 'after/mean_acc')}" for b in baselines) + "."), "", "![reward](train_rewards.png)", "", "![accuracy](train_accuracy.png)"]
    text = "\n".join(lines) + "\n"
    _plots(m, bounds, models_dir, out_dir, baselines)
    write_text(out_dir / "train.md", text)
    return text


def _plots(m: dict, bounds: dict, models_dir: Path, out_dir: Path, baselines: Sequence[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    offset = 0
    for node in STAGES:
        hist = read_jsonl(models_dir / node / "trainer_state" / "history.jsonl")
        sets = bounds[node]["sets"]
        rewarded = [r for r in hist if "reward" in r]  # a caption-SFT stage has a loss, no reward
        ax.plot([offset + r["step"] for r in rewarded], [r["reward"] for r in rewarded], label=f"{node} ({sets[0]})")
        offset += len(hist)
        ax.axvline(offset, color="grey", lw=0.5)
    for b in baselines:
        hist = read_jsonl(models_dir / b / "trainer_state" / "history.jsonl")
        ax.plot([r["step"] for r in hist], [r["reward"] for r in hist], label=b, color="black", alpha=0.6)
    ax.set(xlabel="curriculum step (rollouts)", ylabel="mean reward",
           title="GRPO reward" + (f", staged vs {', '.join(baselines)}" if baselines else ", staged"))
    ax.legend(fontsize=8)
    _save(fig, out_dir / "train_rewards.png")

    fig, ax = plt.subplots(figsize=(8, 4))
    rows = [("base", m["train_1"], "before")] + [(n, m[n], "after") for n in (*STAGES, *baselines)]
    width = 0.8 / len(rows)
    for i, (name, x, tag) in enumerate(rows):
        ax.bar([c + i * width for c in range(len(CAPS))], [x.get(f"{tag}/{c}/acc", float("nan")) for c in CAPS],
               width, yerr=[x.get(f"{tag}/{c}/se", 0.0) for c in CAPS], label=name)
    ax.scatter([c + 0.4 - width / 2 for c in range(len(CAPS))],
               [m["train_1"].get(f"before/{c}/no_look", float("nan")) for c in CAPS],
               marker="_", s=400, color="red", label="no-look", zorder=3)
    ax.set_xticks([c + 0.4 - width / 2 for c in range(len(CAPS))], CAPS)
    ax.set(ylabel="greedy held-out accuracy", title="after each stage")
    ax.legend(fontsize=8)
    _save(fig, out_dir / "train_accuracy.png")


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
