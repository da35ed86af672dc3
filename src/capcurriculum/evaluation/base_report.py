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
        lines.append(f"| {role} | " + " | ".join(cells) + f" | {m.get('pretrain/seconds', float('nan')):.0f} |")
    text = "\n".join(lines) + "\n"
    write_text(out, text)
    return text
