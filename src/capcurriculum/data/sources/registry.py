"""Adapters by name: the registry every `SourceSpec` resolves its `adapter` key against.
"""

from __future__ import annotations

from capcurriculum.data.sources.adapters import (
    VLAA_PAPER_SUBSETS,
    EasyR1,
    Geometry3k,
    OrzMath,
    SourceAdapter,
    VlaaThinking,
    World,
    _vlaa_alias,
)

# ---------------------------------------------------------------------------------- registry


SOURCE_ADAPTERS: dict[str, SourceAdapter] = {}


def register_adapter(adapter: SourceAdapter | type[SourceAdapter]) -> SourceAdapter:
    inst = adapter() if isinstance(adapter, type) else adapter
    if not inst.name:
        raise ValueError(f"{type(inst).__name__}: an adapter needs a name")
    SOURCE_ADAPTERS[inst.name] = inst
    return inst


def get_source_adapter(name: str, where: str = "adapter") -> SourceAdapter:
    try:
        return SOURCE_ADAPTERS[name]
    except KeyError:
        raise ValueError(f"{where}: unknown adapter {name!r}; expected one of {', '.join(adapter_names())}") from None


def adapter_names() -> list[str]:
    return sorted(SOURCE_ADAPTERS)


for _cls in (OrzMath, VlaaThinking, EasyR1, Geometry3k, World):
    register_adapter(_cls)
for _subset in VLAA_PAPER_SUBSETS:
    register_adapter(_vlaa_alias(_subset))


