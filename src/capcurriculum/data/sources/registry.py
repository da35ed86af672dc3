"""The built-in source adapters, registered by name (the registry itself, `spec.SOURCE_ADAPTERS`, sits below
the adapters so that a `SourceSpec` can resolve its `adapter` key without importing them)."""

from __future__ import annotations

from capcurriculum.data.sources.adapters import (
    VLAA_PAPER_SUBSETS,
    EasyR1,
    Geometry3k,
    OrzMath,
    VlaaThinking,
    World,
    _vlaa_alias,
)
from capcurriculum.data.sources.spec import register_adapter

for _cls in (OrzMath, VlaaThinking, EasyR1, Geometry3k, World):
    register_adapter(_cls)
for _subset in VLAA_PAPER_SUBSETS:
    register_adapter(_vlaa_alias(_subset))
