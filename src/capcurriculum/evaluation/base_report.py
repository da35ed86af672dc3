"""The base models' table: held-out accuracy per capability beside the no-look baseline."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from capcurriculum.io import read_json, write_text

CAPS = ("perc_image", "perc_caption", "text_math", "vis_math")


def write_base_report(metric_files: Mapping[str, str | Path], out: str | Path, profile: str) -> str:
    lines = [f"# Base models ({profile} profile)", "",
             "Greedy held-out accuracy ± standard error; in brackets the no-look baseline (the best score "
             "from the question alone). Learning to see means beating the bracket, not zero.", "",
             "| model | " + " | ".join(CAPS) + " | pre-train s |", "|---" * (len(CAPS) + 2) + "|"]
    for role, path in metric_files.items():
        m = read_json(path)
        if not m:
            lines.append(f"| {role} | " + " | ".join("hub model, not measured here" for _ in CAPS) + " | - |")
            continue
        cells = [f"{m[f'{c}/acc']:.3f} ± {m[f'{c}/se']:.3f} [{m[f'{c}/no_look']:.3f}]" for c in CAPS]
        if "lineage/step" in m:  # a filter of the policy's lineage: its pre-training is the policy's, to that step
            lines.append(f"| {role} (the policy at step {m['lineage/step']:.0f}) | " + " | ".join(cells) + " | - |")
            continue
        lines.append(f"| {role} | " + " | ".join(cells) + f" | {m.get('pretrain/seconds', float('nan')):.0f} |")
    measured = {role: read_json(path) for role, path in metric_files.items()}
    measured = {role: m for role, m in measured.items() if m}
    lines += _by_question_type(measured) + _vision_probes(measured)
    text = "\n".join(lines) + "\n"
    write_text(out, text)
    return text


def _by_question_type(measured: Mapping[str, dict]) -> list[str]:
    qtypes = sorted({k.split("/")[1] for m in measured.values() for k in m
                     if k.startswith("perc_image/") and k.count("/") == 2 and k.endswith("/acc")})
    if not qtypes:
        return []
    lines = ["", "Perception from the image by question type: accuracy [no-look baseline] (n).", "",
             "| model | " + " | ".join(qtypes) + " |", "|---" * (len(qtypes) + 1) + "|"]
    for role, m in measured.items():
        cells = [f"{m[f'perc_image/{q}/acc']:.2f} [{m[f'perc_image/{q}/no_look']:.2f}] ({m[f'perc_image/{q}/n']:.0f})"
                 if f"perc_image/{q}/acc" in m else "-" for q in qtypes]
        lines.append(f"| {role} | " + " | ".join(cells) + " |")
    return lines


def _vision_probes(measured: Mapping[str, dict]) -> list[str]:
    attrs = ("cell", "occupied", "color", "shape", "size")
    rows = {role: m for role, m in measured.items() if "vision_probe/cell/acc" in m}
    if not rows:
        return []
    lines = ["", ("Vision tokens, linear probe (sampling/vision_probe.py): held-out accuracy (majority rate). "
                  "A tower that carries colour under a model that answers colour at chance is not being read."), "",
             "| model | " + " | ".join(attrs) + " |", "|---" * (len(attrs) + 1) + "|"]
    for role, m in rows.items():
        cells = [f"{m[f'vision_probe/{a}/acc']:.2f} ({m[f'vision_probe/{a}/chance']:.2f})" for a in attrs]
        lines.append(f"| {role} | " + " | ".join(cells) + " |")
    return lines
