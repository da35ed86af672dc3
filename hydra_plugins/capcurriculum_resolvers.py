"""Registers capcurriculum's OmegaConf resolvers when DVC composes conf/ for `dvc exp run`.

DVC puts `hydra.plugins_path` (default: the repository root) on sys.path and lets Hydra scan the
`hydra_plugins` namespace, importing each module; importing this one is all it needs to do. `python -m
capcurriculum.config` registers the same resolvers itself.
"""

from capcurriculum.config import register_resolvers

register_resolvers()
