"""DVC node `sets@<name>`: D_text or D_vis in the one example schema, from the sources in config."""

import argparse

from capcurriculum.config import load_params, to_flat_dict
from capcurriculum.data.sets import build_set
from capcurriculum.io import write_json
from capcurriculum.runtime import METRICS_DIR, run_file, setup_logging
from capcurriculum.tracking import node_run

CAPABILITY = {"text": "text", "vis": "vis"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("name", choices=sorted(CAPABILITY))
    name = ap.parse_args().name
    setup_logging()
    cfg = load_params()
    s = cfg.sets
    node = f"sets@{name}"
    params = {"seed": s.seed, "val_fraction": s.val_fraction, "max_items": s.max_items, name: s[name]}
    with node_run(node, params, run_file(node), experiment=cfg.tracking.experiment) as run:
        stats = build_set(name, s[name], f"data/sets/{name}", seed=s.seed, val_fraction=s.val_fraction,
                          max_items=s.max_items, capability=CAPABILITY[name])
        metrics = {k: v for k, v in to_flat_dict(stats).items() if isinstance(v, (int, float))}
        run.log_metrics(metrics)
        write_json(METRICS_DIR / f"sets_{name}.json", metrics)


if __name__ == "__main__":
    main()
