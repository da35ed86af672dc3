import pytest

from capcurriculum.evaluation.benchmarks import (
    BENCHMARKS,
    PAPER_BENCHMARKS,
    UnknownBenchmarkError,
    get_adapter,
)
from capcurriculum.evaluation.benchmarks.base import RowError, require_image
from capcurriculum.evaluation.benchmarks.mathverse import MathVerse


def test_every_registered_benchmark_has_an_adapter_and_a_complete_spec():
    assert set(PAPER_BENCHMARKS) <= set(BENCHMARKS)
    for name, spec in BENCHMARKS.items():
        adapter = get_adapter(name)
        assert adapter.spec is spec
        assert spec.hub_id and spec.split and spec.headline and spec.scoring_source
        assert spec.question_column in spec.columns and spec.answer_column in spec.columns
        assert spec.load_kwargs()["path"] == spec.hub_id


def test_lookup_accepts_titles_and_any_case():
    assert get_adapter("MathVista_MINI").spec.name == "mathvista"
    assert get_adapter("A-OKVQA").spec.name == "aokvqa"
    assert get_adapter("HallusionBench").spec.name == "hallusionbench"


def test_unknown_name_is_named_and_known_ones_listed():
    with pytest.raises(UnknownBenchmarkError) as e:
        get_adapter("MMMU")
    assert "'MMMU'" in str(e.value) and "mathvista" in str(e.value) and "pope" in str(e.value)


def test_options_reach_the_adapter_and_bad_options_are_named():
    assert get_adapter("mathverse", versions=("Vision Only",)).versions == ("Vision Only",)
    with pytest.raises(ValueError, match="Vision Intense"):
        MathVerse(versions=("Vision Intense",))


def test_images_may_be_bytes_paths_or_datasets_dicts(png_bytes):
    assert require_image({"image": png_bytes}, "image") == png_bytes
    assert require_image({"image": {"bytes": None, "path": "a.png"}}, "image") == {"bytes": None, "path": "a.png"}
    assert require_image({"image": None, "path": "b.png"}, "image", "path") == "b.png"
    with pytest.raises(RowError, match="missing image"):
        require_image({"image": {"bytes": None, "path": None}}, "image")
