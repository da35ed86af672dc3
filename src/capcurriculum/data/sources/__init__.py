"""D_text / D_vis source adapters: each turns one public source's raw rows into `Example`s.

A source is configured by a plain dict (a profile's `sets.text` / `sets.vis` lists), e.g.::

    {"adapter": "orz_math", "url": "https://.../orz_math_13k_collection_hard.json"}
    {"adapter": "vlaa_thinking", "hub_id": "UCSC-VLAA/VLAA-Thinking",
     "subsets": ["clevr_math", "geoqa170k", "math_puma", "arxivqa"]}
    {"adapter": "world", "path": "data/world", "set": "text_math", "split": "train"}

Where the rows come from is one of `path` (a local file or directory: tests, offline copies),
`url` (downloaded once into `cache_dir`, resumable and checksummed), or `hub_id` (the Hugging Face
hub). All three end in the same parsing code, so the fixtures under `tests/fixtures/sources/`,
which keep each source's real file layout, exercise the path the paper profile runs.

Column maps come from the config (`columns: {question: ..., answer: ...}`, dotted paths into
nested rows) with each adapter's real layout as the default. A column that no row of a source
has is a config error and raises `SourceError` naming the source and the column; a single bad
row (no question, no answer, an answer that cannot be graded, a missing image) is skipped and
counted by reason, with the first few places (`file[row]: why`) kept for the report.

`difficulty` is the source's own level when it has one (a `difficulty` column, or the authors'
`pass_rate`, turned into 1 - pass_rate so that larger is harder); otherwise None, for a later
node to fill from the base model's pass rate.

One module per job: `spec` (the configuration and the results), `rows` (reading files, image
sniffing, gold answers and levels), `adapters` (one per source layout), `registry` (the built-in adapters by name),
`loading` (a source through its adapter).
"""

from capcurriculum.data.sources import registry  # noqa: F401 - registers the built-in adapters
from capcurriculum.data.sources.loading import (
    load_source,
    load_source_rows,
    load_sources,
)
from capcurriculum.data.sources.rows import (
    classify_answer,
    parse_difficulty,
)
from capcurriculum.data.sources.spec import (
    PROBLEMS_KEPT,
    REASONS,
    Skip,
    SourceError,
    SourceItem,
    SourceResult,
    SourceSpec,
    SourceStats,
    adapter_names,
    get_source_adapter,
    register_adapter,
)

# What the sets and the tests use; each submodule holds the rest of its job.
__all__ = [
    "PROBLEMS_KEPT",
    "REASONS",
    "Skip",
    "SourceError",
    "SourceItem",
    "SourceResult",
    "SourceSpec",
    "SourceStats",
    "adapter_names",
    "classify_answer",
    "get_source_adapter",
    "load_source",
    "load_source_rows",
    "load_sources",
    "parse_difficulty",
    "register_adapter",
]
