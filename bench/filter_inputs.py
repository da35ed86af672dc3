"""What the filter benches read from a DAG workspace: perc_filter's config and its first N candidates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class FilterInputs:
    fcfg: object          # params.yaml's perception.filter
    examples: list[dict]  # the first N of data/perception/qa/candidates.jsonl
    captions: dict[str, str]
    sampling: object      # the filter's SamplingConfig
    backend: dict         # the filter's backend spec, progress bars off


def load(workspace: Path, n: int) -> FilterInputs:
    from omegaconf import OmegaConf

    from capcurriculum.data.docci import load_docci
    from capcurriculum.generation import SamplingConfig
    from capcurriculum.io import read_jsonl

    fcfg = OmegaConf.load(workspace / "params.yaml").perception.filter
    return FilterInputs(
        fcfg=fcfg,
        examples=read_jsonl(workspace / "data/perception/qa/candidates.jsonl")[:n],
        captions={r.example_id: r.description for r in load_docci(workspace / "data/raw").records},
        sampling=SamplingConfig.from_mapping(OmegaConf.to_container(fcfg.sampling, resolve=True)),
        backend=OmegaConf.to_container(fcfg.backend, resolve=True) | {"progress": False},
    )
