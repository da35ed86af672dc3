"""Loading a configured source: its raw rows, then every row through its adapter, bad rows counted by reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from capcurriculum.data.sources.adapters import SourceAdapter
from capcurriculum.data.sources.rows import get_path
from capcurriculum.data.sources.spec import (
    _MISSING,
    RowSet,
    Skip,
    SourceError,
    SourceItem,
    SourceResult,
    SourceSpec,
    SourceStats,
    get_source_adapter,
)

# ---------------------------------------------------------------------------------- loading


def load_source_rows(spec: Mapping[str, Any] | SourceSpec) -> RowSet:
    """The raw rows of a configured source (from `path`, `url` or `hub_id`), unparsed."""
    spec = SourceSpec.from_dict(spec)
    return get_source_adapter(spec.adapter).load_rows(spec)


def _check_columns(adapter: SourceAdapter, spec: SourceSpec, flat: list[Mapping[str, Any]], rows: RowSet) -> None:
    """Raise SourceError when a needed column (or one the config names) is in no row at all."""
    fields = dict(adapter.columns)
    fields.update({k: v for k, v in spec.columns.items()})
    where = rows.files[0] if len(rows.files) == 1 else ", ".join(rows.files)
    if not flat:
        raise SourceError(where, f"source {spec.name!r}: no readable rows")
    for fld, col in fields.items():
        if not col:
            continue
        if not any(get_path(r, col) is not _MISSING for r in flat):
            seen = sorted({k for r in flat[:50] for k in r})
            raise SourceError(
                where,
                f"source {spec.name!r} (adapter {adapter.name}): column {col!r} for {fld} is missing "
                f"from all {len(flat)} rows; columns present: {', '.join(map(str, seen))}",
            )


def load_source(spec: Mapping[str, Any] | SourceSpec, rows: RowSet | None = None) -> SourceResult:
    """Parse one configured source into items, skipping and counting bad rows by reason."""
    spec = SourceSpec.from_dict(spec)
    adapter = get_source_adapter(spec.adapter)
    rows = rows if rows is not None else adapter.load_rows(spec)
    stats = SourceStats(spec.name, adapter.name, files=list(rows.files), rows=len(rows.rows))
    flat: list[tuple[int, str, Mapping[str, Any]]] = []
    for index, (where, raw) in enumerate(rows.rows):
        try:
            flat.append((index, where, adapter.flatten(raw, where)))
        except Skip as s:
            stats.skip(s.reason, where, s.message)
    _check_columns(adapter, spec, [r for _, _, r in flat], rows)
    items: list[SourceItem] = []
    for index, where, row in flat:
        label = adapter.include(row, spec)
        if label is not None:
            stats.filtered[label] = stats.filtered.get(label, 0) + 1
            continue
        try:
            item = adapter.parse(row, index, where, spec, rows)
        except Skip as s:
            stats.skip(s.reason, where, s.message)
            continue
        items.append(item)
        stats.by_source[item.example.source] = stats.by_source.get(item.example.source, 0) + 1
    stats.kept = len(items)
    return SourceResult(spec, items, stats)


def load_sources(specs: Iterable[Mapping[str, Any] | SourceSpec]) -> Iterator[SourceResult]:
    for i, spec in enumerate(specs):
        yield load_source(SourceSpec.from_dict(spec, where=f"sources[{i}]"))
