"""Fixture rows in each hub dataset's column layout, with images made here.

An image cell in a fixture is written {"png_rgb": [r, g, b]} and becomes a tiny PIL image, as
`datasets` yields a decoded Image column; null stays null (a row without its image).
"""

import io
import json
from pathlib import Path

import pytest
from PIL import Image

import capcurriculum.evaluation.benchmarks as _benchmarks

# hand-made rows in each hub dataset's layout; the paper-shaped dry run serves them as its benchmarks (dryrun.py)
FIXTURES = Path(_benchmarks.__file__).parent / "rows"


def _materialise(value):
    if isinstance(value, dict) and set(value) == {"png_rgb"}:
        return Image.new("RGB", (4, 4), tuple(value["png_rgb"]))
    return value


@pytest.fixture
def png_bytes() -> bytes:
    """A PNG file's bytes, as an image column read without decoding can hold."""
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (0, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def load_rows():
    def load(name: str) -> list[dict]:
        with open(FIXTURES / f"{name}.jsonl") as f:
            return [{k: _materialise(v) for k, v in json.loads(line).items()} for line in f if line.strip()]
    return load
