"""Does the vision tower still carry what the questions ask? Linear probes of each model's per-cell tokens.

    .venv/bin/python bench/vision_probe.py data/models/init/policy data/models/base/policy   # ~1 min

For each model directory: the merged vision tokens of `--n` held-out scenes, labelled from the world's
ground truth with their cell, colour, shape and size, and a softmax-regression probe per attribute
(70% of the scenes to fit, 30% to score). Compare with the base's held-out perception accuracy per
question type: a tower that carries colour at 0.99 under a language model that answers colour at chance
means the language model is not reading it; a tower that lost it means pre-training destroyed it.
"""

from __future__ import annotations

import argparse
import json

import torch

from capcurriculum.io import write_json
from capcurriculum.models.loading import load_model_and_processor
from capcurriculum.sampling.vision_probe import ATTRIBUTES, probe_tower


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="from_pretrained directories of tiny Qwen3-VL models")
    ap.add_argument("--raw", default="data/raw", help="the world's raw corpus (with ground_truth.jsonl)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--n", type=int, default=400, help="scenes to probe")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench/results/vision_probe.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    results = {}
    for path in args.models:
        model, processor = load_model_and_processor(path)
        results[path] = probe_tower(model, processor, args.raw, split=args.split, n_images=args.n, seed=args.seed)
    write_json(args.out, {"args": vars(args), "results": results})

    print("| model | " + " | ".join(f"{a} (majority)" for a in ATTRIBUTES) + " |")
    print("|---|" + "---|" * len(ATTRIBUTES))
    for path, probes in results.items():
        cells = [f"{probes[a]['acc']:.3f} ({probes[a]['chance']:.3f})" for a in ATTRIBUTES]
        print(f"| {path} | " + " | ".join(cells) + " |")
    print(json.dumps({"out": args.out}))


if __name__ == "__main__":
    main()
