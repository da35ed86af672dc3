# Two entry points for a fresh machine: `make repro` (the tiny experiment) and `make test`.
# Both create .venv first if it is missing; nothing else needs installing by hand.
PY      := .venv/bin/python
UV      := $(shell command -v uv 2>/dev/null || echo .venv-uv/bin/uv)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
# Stage commands say `python`/`dvc`: make them the project's, activated or not.
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: env repro test lint clean-env

env: .venv/.installed

# uv, not pip: pip on these machines silently picks a local torch+cpu wheel that breaks
# torchvision (DESIGN.md section 5). uv itself comes from PyPI into a throwaway venv.
# --compile-bytecode: these machines set PYTHONDONTWRITEBYTECODE, so without .pyc files written here every
# process (each DVC node, each test subprocess) recompiles torch's and transformers' sources: 15 s -> 7.7 s
# to import the training stack.
.venv/.installed: pyproject.toml
	@command -v uv >/dev/null 2>&1 || (python3 -m venv .venv-uv && .venv-uv/bin/pip install -q uv==0.9.*)
	$(UV) venv -q --allow-existing -p 3.11 .venv
	$(UV) pip install -q --compile-bytecode --python $(PY) -e ".[cpu,dev]"
	@touch $@

# The test-only extra 'ref' (pyproject.toml): lmms-eval's scoring modules, the reference that
# tests/evaluation/benchmarks/test_lmms_eval_reference.py runs the conformance responses through. It resolves
# with the rest of the set in one uv call and moves no pinned version; `make env` (and so `make repro`) leaves it out.
.venv/.ref-installed: .venv/.installed
	$(UV) pip install -q --compile-bytecode --python $(PY) -e ".[cpu,dev,ref]"
	@touch $@

repro: env
	dvc repro

test: env .venv/.ref-installed
	$(PY) -m pytest -q

lint: env
	.venv/bin/ruff check src stages tests bench hydra_plugins

clean-env:
	rm -rf .venv .venv-uv
