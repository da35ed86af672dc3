"""Linear probes of a tiny model's vision tokens: does the tower still carry what the questions ask?

The no-look baseline says whether the *language model* uses the image; this says whether the *tower*
hands it anything to use. The world puts one object per grid cell and, at the tiny profile's sizes,
one merged vision token per cell, so each token can be labelled from `ground_truth.jsonl` with its
cell and whether it is occupied (every token), and the colour, shape and size of the object it holds
(occupied tokens only). A multinomial logistic regression per attribute, fit on most scenes and
scored on the rest, gives the held-out accuracy beside the majority-class rate.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import torch
from tqdm.auto import tqdm

from capcurriculum.data.docci import load_docci
from capcurriculum.io import read_jsonl
from capcurriculum.sampling.batching import load_image
from capcurriculum.world.build import GROUND_TRUTH_FILE

log = logging.getLogger(__name__)

ATTRIBUTES = ("cell", "occupied", "color", "shape", "size")
OBJECT_ATTRIBUTES = ("color", "shape", "size")  # probed on the tokens of occupied cells only
EMPTY = "empty"


def cell_labels(truth: dict) -> list[dict[str, str]]:
    """One label dict per grid cell, row-major (the order of the tower's merged tokens)."""
    grid = truth["grid"]
    cells = [{"cell": str(i), "occupied": "no", "color": EMPTY, "shape": EMPTY, "size": EMPTY}
             for i in range(grid * grid)]
    for obj in truth["objects"]:
        cells[obj["row"] * grid + obj["col"]].update(occupied="yes", color=obj["color"], shape=obj["shape"],
                                                      size=obj["size"])
    return cells


def check_alignment(model, truth: dict) -> None:
    """The probe labels token i with cell i: that holds only when one merged token covers one cell."""
    vision = model.config.vision_config
    token_px = vision.patch_size * vision.spatial_merge_size
    if truth["image_size"] != truth["grid"] * token_px:
        raise ValueError(f"vision probe: a {truth['image_size']}-px image on a {truth['grid']}x{truth['grid']} grid "
                         f"does not put one {token_px}-px merged vision token on each cell")


@torch.no_grad()
def cell_tokens(model, processor, image_paths: list[str], batch_size: int = 64, desc: str = "vision tokens"
                ) -> torch.Tensor:
    """[images, cells, hidden]: the merged tokens the language model receives for each image."""
    model.eval()
    out = []
    for start in tqdm(range(0, len(image_paths), batch_size), desc=desc, unit="batch", leave=False):
        images = [load_image(p) for p in image_paths[start:start + batch_size]]
        enc = processor.image_processor(images=images, return_tensors="pt")
        feats = model.model.get_image_features(enc["pixel_values"], enc["image_grid_thw"]).pooler_output
        out.extend(feats)
    return torch.stack(out)


def linear_probe(x: torch.Tensor, labels: list[str], n_train: int, *, steps: int = 300, lr: float = 0.05,
                 seed: int = 0) -> dict[str, float]:
    """Held-out accuracy of a softmax regression on standardised features, and the majority rate."""
    names = sorted(set(labels))
    y = torch.tensor([names.index(label) for label in labels])
    train_x = x[:n_train]
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = (x - mean) / std
    g = torch.Generator().manual_seed(seed)
    w = (0.01 * torch.randn(x.shape[1], len(names), generator=g)).requires_grad_()
    b = torch.zeros(len(names), requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(x[:n_train] @ w + b, y[:n_train]).backward()
        opt.step()
    with torch.no_grad():
        test_y = y[n_train:]
        acc = ((x[n_train:] @ w + b).argmax(1) == test_y).float().mean().item()
        majority = torch.bincount(y[:n_train], minlength=len(names)).argmax()
        chance = (test_y == majority).float().mean().item()
    return {"acc": acc, "chance": chance, "n": len(test_y)}


def probe_tower(model, processor, raw_dir: str | Path, *, split: str = "test", n_images: int = 400,
                train_fraction: float = 0.7, seed: int = 0) -> dict[str, dict[str, float]]:
    """Probe every attribute on `n_images` scenes of `split` (scenes, not tokens, split train/test)."""
    raw_dir = Path(raw_dir)
    records = load_docci(raw_dir).by_split(split)
    truth_file = raw_dir / GROUND_TRUTH_FILE
    truth = {t["example_id"]: t for t in read_jsonl(truth_file)}
    missing = [r.example_id for r in records if r.example_id not in truth]
    if missing:
        raise ValueError(f"vision probe: {truth_file} has no ground truth for {len(missing)} {split!r} scene(s), "
                         f"e.g. {missing[0]}")
    if len(records) < 10:
        raise ValueError(f"vision probe: {raw_dir} has {len(records)} {split!r} scenes; need >= 10")
    records = sorted(records, key=lambda r: r.example_id)
    random.Random(seed).shuffle(records)
    records = records[:n_images]
    truths = [truth[r.example_id] for r in records]
    check_alignment(model, truths[0])
    tokens = cell_tokens(model, processor, [str(r.image_path) for r in records])
    cells_per_image = tokens.shape[1]
    labels = [cell_labels(t) for t in truths]
    x = tokens.reshape(-1, tokens.shape[-1])
    n_train = round(len(truths) * train_fraction) * cells_per_image
    flat = [cell for image in labels for cell in image]
    result = {}
    for attribute in ATTRIBUTES:
        keep = [i for i, cell in enumerate(flat) if attribute not in OBJECT_ATTRIBUTES or cell["occupied"] == "yes"]
        split_at = sum(1 for i in keep if i < n_train)
        result[attribute] = linear_probe(x[keep], [flat[i][attribute] for i in keep], split_at, seed=seed)
        log.info("probe %-6s acc %.3f (majority %.3f, n=%d tokens)", attribute, result[attribute]["acc"],
                 result[attribute]["chance"], result[attribute]["n"])
    return result


def probe_metrics(model, processor, raw_dir: str | Path, *, n_images: int, seed: int = 0) -> dict[str, float]:
    """`vision_probe/<attribute>/acc|chance|n` for a node's metrics; a corpus without the world's ground truth
    (real DOCCI) has no labels to probe with: reported as `vision_probe/skipped: 1`, not an error."""
    if not (Path(raw_dir) / GROUND_TRUTH_FILE).exists():
        log.warning("vision probe skipped: %s has no %s (not a synthetic world)", raw_dir, GROUND_TRUTH_FILE)
        return {"vision_probe/skipped": 1.0}
    probes = probe_tower(model, processor, raw_dir, n_images=n_images, seed=seed)
    return {f"vision_probe/{attr}/{k}": float(v) for attr, r in probes.items() for k, v in r.items()}
