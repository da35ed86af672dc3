"""DVC node `check_params`: the whole of params.yaml checked before any other node runs.

It tracks every key of params.yaml (so `dvc exp run -S +foo=1`, which no other node reads, still runs it) and
`raw`, the DAG's one root, depends on its output: a bad value fails here, naming the key, and no node after it
runs. The output never changes while the check passes, so a passing check re-runs nothing downstream. The
check is config.validate, the one that `python -m capcurriculum.config` runs.
"""

import sys

from capcurriculum.config import ConfigError, load_params
from capcurriculum.io import write_json
from capcurriculum.runtime import setup_logging

OUT = "data/checked/params.json"


def main() -> None:
    setup_logging()
    try:
        load_params()  # resolve and validate: unknown keys, types, ranges, set names, steps per set
    except ConfigError as e:  # the key and what is allowed, without a traceback through the checks
        sys.exit(f"params.yaml: {e}")
    write_json(OUT, {"params.yaml": "valid"})


if __name__ == "__main__":
    main()
