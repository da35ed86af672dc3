"""The evaluation report: each model x benchmark's headline number with Overall, paired deltas vs base
and vs merged, response lengths, skipped rows and perception/reasoning error counts, as Markdown, HTML
and plots.

The table shows each benchmark's official headline (evaluator.py), what stands beside it, and Overall
as their mean. Deltas are of per-row accuracy, paired over the same items (every model answers the
same held-out items), so their standard errors are the paired ones (sampling/paired.py).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from capcurriculum.evaluation.evaluator import in_overall, overall
from capcurriculum.io import read_json, read_jsonl, write_json, write_text
from capcurriculum.sampling.paired import mean_delta, paired_delta

# The paper's published accuracies (%), Qwen3-VL-8B, from its comparison table (paper-summary.txt).
PUBLISHED = {
    "base": {"mathvista": 72.40, "wemath": 50.86, "realworldqa": 70.85, "mmstar": 70.00},
    "staged": {"mathvista": 75.90, "wemath": 56.10, "realworldqa": 74.51, "mmstar": 73.07},
}
# What each evaluation.protocol means, said under the table (config.EVAL_PROTOCOLS).
PROTOCOLS = {"lenient": ("the project's rules: the answer read by rule from the text after </think> (last \\boxed{}, "
                         "an \"Answer:\" line, option text, a short reply), the judge only where official scoring "
                         "uses one; not VLMEvalKit's protocol, which the paper used"),
             "vlmevalkit": ("VLMEvalKit's, which the paper used: its rule first, the judge's LLM extraction where "
                            "the rule fails (multiple choice and free form), then each benchmark's own comparison "
                            "(letters; MathVista exact int/float; MathVision math equivalence); without a judge "
                            "the rule alone, and what it could not read is wrong and counted below")}
SKIPS_LISTED = 50  # per benchmark; the rest are named in summary.json
# How a headline or a figure beside it is named in a cell; accuracy is the unnamed default.
LABELS = {"score_strict": "strict", "score_loose": "loose", "f1": "F1", "accuracy": "acc"}
# The paper prints one WeMath number ("Acc %") without saying strict or loose.
PAPER_WEMATH = ("The paper prints one WeMath number (\"Acc %\") and does not say whether it is the strict "
                "or the loose four-dimensional score; its row is set beside Score (Strict), our headline "
                "and the first score VLMEvalKit prints (vlmeval/dataset/utils/wemath.py), so compare it "
                "with the strict figure and read the loose one as the other possibility.")


def _load(eval_dirs: Mapping[str, str | Path]) -> dict[str, dict[str, Any]]:
    models = {}
    for name, d in eval_dirs.items():
        d = Path(d)
        summaries = read_json(d / "summary.json")
        records = {b: read_jsonl(d / f"{b}.jsonl") for b in summaries}
        models[name] = {"summary": summaries, "records": records}
    return models


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _delta(a: list[dict], b: list[dict]) -> dict[str, float] | None:
    if not a or [r["id"] for r in a] != [r["id"] for r in b]:
        return None  # no items, or not the same ones: no paired delta
    return paired_delta([r["correct"] for r in a], [r["correct"] for r in b])


def _delta_cell(d: dict[str, float] | None) -> str:
    return "n/a" if d is None else f"{100 * d['delta']:+.1f} ± {100 * d['se']:.1f}"


def _headline_cell(s: Mapping[str, Any]) -> str:
    """"75.0 ± 1.2" for accuracy; else the named headline and what stands beside it: "strict 33.3 · loose 50.0"."""
    h = s["headline"]
    figures = {h["metric"]: h["value"], **h["beside"]}
    if list(figures) == ["accuracy"]:
        return f"{_pct(h['value'])} ± {_pct(s['se'])}"
    return " · ".join(f"{LABELS.get(k, k)} {_pct(v)}" for k, v in figures.items())


def protocol_lines(models: dict[str, dict[str, Any]], benches: list[str]) -> list[str]:
    """Under vlmevalkit: each model's think-split, judge (model and the versions its endpoint named),
    the extraction prompts' sha256, and per benchmark how answers were read and how many were not."""
    lines: list[str] = []
    for m, data in models.items():
        s = data["summary"]
        details = next((s[b].get("protocol_details") for b in benches
                        if (s[b].get("protocol_details") or {}).get("name") == "vlmevalkit"), None)
        if details is None:
            continue
        judge = details.get("judge")
        served = ", ".join(sorted((judge or {}).get("served") or {})) or "not reported"
        lines += ["", f"{m} (vlmevalkit): split_think {str(details['split_think']).lower()}; judge "
                  + (f"{judge['model']} (endpoint reported: {served})" if judge else
                     "none (the rule alone; what it could not read is scored wrong)")
                  + "; extraction prompts sha256: "
                  + ", ".join(f"{k} {v[:16]}" for k, v in details["prompt_sha256"].items()) + ".", "",
                  "| benchmark | rule | llm | unextracted | of which: no judge · reply unread |",
                  "|---|---|---|---|---|"]
        for b in benches:
            ext = s[b].get("extraction")
            if ext is None:
                continue
            c = ext["counts"]
            lines.append(f"| {b} | {c.get('rule', 0)} | {c.get('llm', 0)} | {ext['unextracted']} | "
                         f"{c.get('fell_through', 0)} · {c.get('llm_unparsed', 0)} |")
    return lines


def tables(models: dict[str, dict[str, Any]], profile: str) -> str:
    names = list(models)
    benches = list(next(iter(models.values()))["summary"])
    first = models[names[0]]["summary"]
    lines = ["## Headline scores (%), greedy", "",
             "Each benchmark's official headline number, first in its cell; accuracy ± se unless the cell "
             "names another (WeMath: strict then loose four-dimensional score; POPE: F1, accuracy beside "
             "it). Overall: the mean of the headlines (not of tiny_vis_math_shuffled, the blind-policy check: "
             "visual math with each question shown another scene's image). Every row counts: a skipped row is "
             "scored wrong.", "",
             "| model | " + " | ".join(benches) + " | Overall |", "|---" * (len(benches) + 2) + "|"]
    for m in names:
        s = models[m]["summary"]
        lines.append(f"| {m} | " + " | ".join(_headline_cell(s[b]) for b in benches) + f" | {_pct(overall(s))} |")
    if profile == "paper":
        for m, pub in PUBLISHED.items():
            cells = [(f"{pub[b]:.2f}" + (" (vs strict)" if b == "wemath" else "")) if b in pub else "–"
                     for b in benches]
            lines.append(f"| {m} (paper) | " + " | ".join(cells) + " | – |")
        if "wemath" in benches:
            lines += ["", PAPER_WEMATH]
    if "wemath" in benches and (four := first["wemath"].get("official")):
        lines += ["", f"WeMath: N = {four['n_problems']} composite problems (VLMEvalKit divides by 525, the "
                  "full testmini's); strict and loose differ in how CM and RM split."]
    used = {m: sorted({str(models[m]["summary"][b].get("protocol", "unrecorded")) for b in benches}) for m in names}
    lines += ["", "Protocol (evaluation.protocol): " + "; ".join(f"{m} {', '.join(p)}" for m, p in used.items())
              + "".join(f". {p}: {PROTOCOLS[p]}" for p in sorted({p for ps in used.values() for p in ps})
                        if p in PROTOCOLS) + "."]
    lines += protocol_lines(models, benches)
    for ref in ("base", "merged"):
        if ref not in models:
            continue
        lines += ["", f"## Δ vs {ref}: per-row accuracy (points, paired over the same items, ± se)", "",
                  "| model | " + " | ".join(benches) + " | Overall |", "|---" * (len(benches) + 2) + "|"]
        for m in names:
            if m == ref:
                continue
            deltas = {b: _delta(models[ref]["records"][b], models[m]["records"][b]) for b in benches}
            cells = [*map(_delta_cell, deltas.values()), _delta_cell(mean_delta([deltas[b] for b in in_overall(benches)]))]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "## Response length (tokens, mean) and unreadable answers", "",
              "| model | " + " | ".join(benches) + " | no answer | failed | skipped rows |",
              "|---" * (len(benches) + 4) + "|"]
    for m in names:
        s = models[m]["summary"]
        cells = [f"{s[b]['mean_tokens']:.1f}" if s[b].get("mean_tokens") is not None else "–" for b in benches]
        tot = {k: sum(int(s[b].get(k) or 0) for b in benches) for k in ("no_answer", "failed", "skipped")}
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {tot['no_answer']} | {tot['failed']} | {tot['skipped']} |")
    skipped = {b: first[b]["skipped_rows"] for b in benches if first[b].get("skipped_rows")}
    if skipped:  # the same rows for every model: they come from the benchmark's data
        lines += ["", "## Skipped rows (counted in every denominator, scored wrong)", ""]
        for b, rows in skipped.items():
            lines += [f"- {row}" for row in rows[:SKIPS_LISTED]]
            if len(rows) > SKIPS_LISTED:
                lines.append(f"- … and {len(rows) - SKIPS_LISTED} more {b} rows (summary.json, skipped_rows)")
    attr = [(m, b, s) for m in names for b, s in models[m]["summary"].items()
            if s.get("attribution") or s.get("judge_attribution")]
    if attr:
        lines += ["", "## Wrong visual-math answers: perception or reasoning", "",
                  "Exact: each fact the answer's reasoning states, checked against the scene (tiny world). "
                  "Judge: the LLM judge's label (`evaluation.judge`); agreement over items both labelled.", "",
                  "| model | benchmark | wrong | exact: perception / reasoning / unparseable "
                  "| judge: perception / reasoning / unparseable / unavailable | agreement |", "|---|---|---|---|---|---|"]
        for m, b, s in attr:
            e, j = s.get("attribution"), s.get("judge_attribution")
            wrong = (e or j)["wrong"]
            ex = f"{e['perception']} / {e['reasoning']} / {e['unparseable']}" if e else "–"
            jd = f"{j['perception']} / {j['reasoning']} / {j['unparseable']} / {j['unavailable']}" if j else "not run"
            agree = (s.get("judge_agreement") or {}).get("agreement")
            lines.append(f"| {m} | {b} | {wrong} | {ex} | {jd} | {_pct(agree) + '%' if agree is not None else '–'} |")
    return "\n".join(lines) + "\n"


def plots(models: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(models)
    benches = list(next(iter(models.values()))["summary"])
    paths = []
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(benches), 3.6))
    w = 0.8 / len(names)
    for i, m in enumerate(names):
        s = models[m]["summary"]
        xs = [j + i * w for j in range(len(benches))]
        ax.bar(xs, [100 * (s[b]["headline"]["value"] or 0) for b in benches], w, label=m,
               yerr=[100 * (s[b]["se"] or 0) if s[b]["headline"]["metric"] == "accuracy" else 0 for b in benches],
               capsize=2)
    ax.set_xticks([j + w * (len(names) - 1) / 2 for j in range(len(benches))], benches, fontsize=8)
    ax.set_ylabel("headline score (%)")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir / "accuracy.png"))

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for m in names:
        lengths = [r["n_tokens"] for recs in models[m]["records"].values() for r in recs if r.get("n_tokens", -1) >= 0]
        ax.hist(lengths, bins=24, histtype="step", label=m)
    ax.set_xlabel("response length (tokens)")
    ax.set_ylabel("responses")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir / "response_length.png"))

    attr = [(m, b, s["attribution"]) for m in names for b, s in models[m]["summary"].items() if s.get("attribution")]
    if attr:
        fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(attr), 3.6))
        labels = [m if len({b for _, b, _ in attr}) == 1 else f"{m}\n{b}" for m, b, _ in attr]
        per = [a["perception"] for *_, a in attr]
        rea = [a["reasoning"] for *_, a in attr]
        unp = [a["unparseable"] for *_, a in attr]
        ax.bar(labels, per, label="perception")
        ax.bar(labels, rea, bottom=per, label="reasoning")
        ax.bar(labels, unp, bottom=[p + r for p, r in zip(per, rea)], label="unparseable")
        ax.set_ylabel("wrong visual-math answers")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out_dir / "attribution.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def headline_metrics(models: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
    """What `dvc metrics show|diff` and `dvc exp show` compare between experiments, few enough to fit a terminal:
    each model's Overall (the mean of the benchmarks' headlines; key: the model's name) and the staged model's
    paired Δ of per-row accuracy vs base and vs merged with its se (the Overall column of the report's Δ tables;
    `vs_base`, `vs_base_se`, ...). No key holds a "/", so `dvc exp show --drop '.*/'` hides the columns of
    changed dependencies (paths) and keeps params and these. Every other figure stays in each evaluate node's
    metrics.json, the report and MLflow."""
    def rounded(x: float | None) -> float | None:
        return None if x is None else round(x, 4)

    out: dict[str, float | None] = {m: rounded(overall(d["summary"])) for m, d in models.items()}
    for ref in ("base", "merged"):
        if "staged" not in models or ref not in models:
            continue
        benches = list(models["staged"]["summary"])
        d = mean_delta([_delta(models[ref]["records"][b], models["staged"]["records"][b]) for b in in_overall(benches)])
        out[f"vs_{ref}"] = rounded(d["delta"]) if d else None
        out[f"vs_{ref}_se"] = rounded(d["se"]) if d else None
    return out


def write_report(eval_dirs: Mapping[str, str | Path], out_dir: str | Path, *, profile: str,
                 appendix: str = "", metrics_path: str | Path | None = None) -> dict[str, Path]:
    """out_dir/report.md, report.html and the plots; returns their paths by kind. `appendix`: Markdown
    sections after the tables (the DAG's node times). `metrics_path`: headline_metrics as JSON there."""
    out_dir = Path(out_dir)
    models = _load(eval_dirs)
    if metrics_path is not None:
        write_json(metrics_path, headline_metrics(models))
    body = tables(models, profile)
    images = plots(models, out_dir)
    md = f"# Evaluation report ({profile} profile)\n\n" + body + "\n" + "".join(
        f"![{p.stem}]({p.name})\n" for p in images) + (f"\n{appendix}" if appendix else "")
    write_text(out_dir / "report.md", md)
    write_text(out_dir / "report.html", _html(md, images, profile))
    return {"md": out_dir / "report.md", "html": out_dir / "report.html", **{p.stem: p for p in images}}


def _html(md: str, images: list[Path], profile: str) -> str:
    """A self-contained page: the Markdown tables as HTML tables, the plots as <img>."""
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto}"
             "td,th{border:1px solid #ccc;padding:2px 8px}table{border-collapse:collapse}")
    out = [f"<!doctype html><meta charset='utf-8'><title>capcurriculum report ({profile})</title>",
           f"<style>{style}</style>"]
    rows: list[str] = []

    def flush():
        if rows:
            out.append("<table>" + "".join(
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c.strip())}</{'th' if i == 0 else 'td'}>"
                                 for c in r.strip("|").split("|")) + "</tr>" for i, r in enumerate(rows)) + "</table>")
            rows.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            if not line.startswith("|---"):
                rows.append(line)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("!["):
            continue
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    flush()
    out += [f"<img src='{html.escape(p.name)}' alt='{html.escape(p.stem)}'>" for p in images]
    return "\n".join(out) + "\n"
