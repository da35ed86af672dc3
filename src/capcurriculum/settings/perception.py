"""The perception nodes' optional sources and caps (qa_generate, perc_filter): where template questions come from
and how many dropped items the filter's audit asks. Each key is in every profile (null where unused), read once and
checked before any node runs (config.validate builds it), so a bad value fails before the filter models load.

    perception = PerceptionSettings.from_config(cfg)
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from capcurriculum.settings import read


@dataclass(frozen=True)
class PerceptionSettings:
    # perception.generation.template: ask the world's ground truth for exact questions (CPU profiles, whose world
    # knows each scene), beside or instead of the LLM's.
    template: bool
    # perception.generation.template_file: the world's questions about the scenes a DOCCI copy holds, as a file
    # (the paper-shaped dry run); None: none read.
    template_file: str | None
    # perception.generation.template_per_scene: k fresh template questions per scene (a larger pool for D_perc,
    # the world's files unchanged); None: the world's own perception questions of the split.
    template_per_scene: int | None
    # perception.filter.audit_max_dropped: the audit asks a seeded sample of at most this many dropped items
    # (the kept ones all), bounding its cost; None: every dropped item.
    audit_max_dropped: int | None

    @classmethod
    def from_config(cls, cfg: DictConfig) -> PerceptionSettings:
        """Each key required (null where the profile says so); a wrong type is a ConfigError naming it."""
        return cls(template=read.boolean(cfg, "perception.generation.template"),
                   template_file=read.string(cfg, "perception.generation.template_file", nullable=True),
                   template_per_scene=read.integer(cfg, "perception.generation.template_per_scene", minimum=1,
                                                   nullable=True, null_means="the world's own questions"),
                   audit_max_dropped=read.integer(cfg, "perception.filter.audit_max_dropped", minimum=0,
                                                  nullable=True, null_means="every dropped item"))
