"""Source adapters on fixtures in each source's real layout: hand-checked examples, bad rows
counted by reason, wrong columns named, and the world pass-through."""

import json
import shutil
from pathlib import Path

import pytest

from capcurriculum.answers import parse_choices
from capcurriculum.data.schema import Example
from capcurriculum.data.sources import (
    Skip,
    SourceError,
    SourceSpec,
    adapter_names,
    classify_answer,
    load_source,
    load_source_rows,
    parse_difficulty,
)
from capcurriculum.io import read_jsonl
from capcurriculum.world import WorldConfig, build_world

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
ORZ = FIXTURES / "orz_math"
VLAA = FIXTURES / "vlaa_thinking"
GEO = FIXTURES / "geometry3k"


def _examples(result) -> dict[str, Example]:
    return {item.example.id: item.example for item in result.items}


# ---------------------------------------------------------------------------- registry and config


def test_registry_names_the_paper_sources():
    assert {"orz_math", "vlaa_thinking", "clevr_math", "geoqa170k", "math_puma", "arxivqa", "geometry3k",
            "world", "easyr1"} <= set(adapter_names())


def test_unknown_adapter_and_unknown_key_are_named():
    with pytest.raises(ValueError, match=r"sets.vis\[0\].adapter: unknown adapter 'vlaa'.*vlaa_thinking"):
        SourceSpec.from_dict({"adapter": "vlaa"}, where="sets.vis[0]")
    with pytest.raises(ValueError, match=r"unknown key\(s\) subset for adapter 'vlaa_thinking'"):
        SourceSpec.from_dict({"adapter": "vlaa_thinking", "subset": "clevr_math"})
    with pytest.raises(ValueError, match=r"subsets: unknown clevr"):
        SourceSpec.from_dict({"adapter": "vlaa_thinking", "subsets": ["clevr"]})
    with pytest.raises(ValueError, match=r"columns: unknown field\(s\) prompt"):
        SourceSpec.from_dict({"adapter": "orz_math", "columns": {"prompt": "x"}})
    with pytest.raises(ValueError, match=r"needs one of path, url or hub_id"):
        SourceSpec.from_dict({"adapter": "easyr1"})


def test_defaults_point_at_the_real_sources():
    orz = SourceSpec.from_dict({"adapter": "orz_math"})
    assert orz.path is orz.hub_id is None  # the adapter's default url is used
    vlaa = SourceSpec.from_dict({"adapter": "vlaa_thinking", "subsets": "clevr_math, arxivqa"})
    assert vlaa.options["subsets"] == ["clevr_math", "arxivqa"]
    assert SourceSpec.from_dict({"adapter": "math_puma"}).options["subsets"] == ["math_puma"]


# ---------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    "raw, expected",
    [
        (3, ("3", "number")),
        (2.0, ("2", "number")),
        ("42", ("42", "number")),
        (" -0.5 ", ("-0.5", "number")),
        ("1,000", ("1000", "number")),
        ("$\\boxed{7}$", ("7", "number")),
        ("\\frac{3}{4}", ("\\frac{3}{4}", "text")),
        ("y = 2 * x + 1", ("y = 2 * x + 1", "text")),
        ("1,2", ("1,2", "text")),
    ],
)
def test_classify_answer(raw, expected):
    assert classify_answer(raw) == expected


@pytest.mark.parametrize(
    "raw, reason",
    [(None, "missing_answer"), ("  ", "missing_answer"), (["1"], "unparseable_answer"),
     (True, "unparseable_answer"), (float("nan"), "unparseable_answer"), ("\\frac{1}{2", "unparseable_answer"),
     ("x" * 400, "unparseable_answer")],
)
def test_classify_answer_rejects(raw, reason):
    with pytest.raises(Skip) as e:
        classify_answer(raw)
    assert e.value.reason == reason


def test_parse_choices_in_the_sources_styles():
    assert parse_choices("Find x.\nChoices:\nA: 1\nB: 2\nC: 3") == ["1", "2", "3"]
    assert parse_choices("Trend? Choose from the following options\nA) up\nB) down") == ["up", "down"]
    assert parse_choices("Which?\nA. 4\nB. 6") == ["4", "6"]
    assert parse_choices("Which? (A) 4 (B) 6 (C) 8") == ["4", "6", "8"]
    assert parse_choices("No options here.") is None
    assert parse_choices("Gaps\nA. 1\nC. 3") is None


def test_parse_difficulty():
    assert parse_difficulty(3) == 3.0
    assert parse_difficulty("Level 5") == 5.0
    assert parse_difficulty(0.25, pass_rate=True) == 0.75
    assert parse_difficulty(None) is None and parse_difficulty("hard") is None


# ---------------------------------------------------------------------------- ORZ (D_text)


def test_orz_math_fixture():
    result = load_source({"adapter": "orz_math", "path": str(ORZ)})
    ex = _examples(result)
    assert ex["orz_math-00000"] == Example(
        id="orz_math-00000", question="What is $17 + 25$?", answer="42", answer_type="number",
        source="orz_math", capability="text",
    )
    assert ex["orz_math-00001"].answer == "\\frac{3}{4}" and ex["orz_math-00001"].answer_type == "text"
    mc = ex["orz_math-00002"]
    assert (mc.answer, mc.answer_type, mc.choices) == ("C", "choice", ["4", "6", "7", "9"])
    assert mc.question.endswith("D. 9")  # options stay in the prompt
    assert ex["orz_math-00007"].answer == "2.5"
    assert all(e.difficulty is None for e in ex.values())  # ORZ has no level
    s = result.stats
    assert (s.rows, s.kept) == (11, 5)
    assert s.skipped == {"missing_answer": 2, "missing_question": 1, "unparseable_answer": 2, "invalid_row": 1}
    assert s.problems["missing_question"] == [
        f"{ORZ / 'orz_math_13k_collection_hard.json'}[5]: no question in column 'human.value'"
    ]
    assert [p.split(": ", 1)[0].rsplit("[", 1)[1] for p in s.problems["unparseable_answer"]] == ["6]", "9]"]


def test_orz_math_reads_a_file_path_too():
    by_dir = load_source_rows({"adapter": "orz_math", "path": str(ORZ)})
    by_file = load_source_rows({"adapter": "orz_math", "path": str(ORZ / "orz_math_13k_collection_hard.json")})
    assert by_dir.rows == by_file.rows and len(by_dir.rows) == 11
    assert isinstance(by_dir.rows[0][1], list)  # raw, unparsed conversation


def test_orz_wrong_column_names_source_and_column():
    spec = {"adapter": "orz_math", "name": "orz", "path": str(ORZ),
            "columns": {"answer": "assistant.ground_truth.val"}}
    with pytest.raises(SourceError, match=r"source 'orz' \(adapter orz_math\): column "
                                          r"'assistant.ground_truth.val' for answer is missing from all 10 rows"):
        load_source(spec)


def test_first_problems_are_capped(tmp_path):
    rows = [[{"from": "human", "value": f"q{i}"}, {"from": "assistant", "ground_truth": {"value": ""}}]
            for i in range(9)] + [[{"from": "human", "value": "ok"}, {"from": "assistant",
                                                                      "ground_truth": {"value": "1"}}]]
    (tmp_path / "orz.json").write_text(json.dumps(rows))
    result = load_source({"adapter": "orz_math", "path": str(tmp_path / "orz.json")})
    assert result.stats.skipped == {"missing_answer": 9} and result.stats.kept == 1
    assert len(result.stats.problems["missing_answer"]) == 5


# ---------------------------------------------------------------------------- VLAA-Thinking (D_vis)


def test_vlaa_thinking_fixture():
    result = load_source({"adapter": "vlaa_thinking", "path": str(VLAA)})
    ex = _examples(result)
    assert ex["clevr_math-CLEVR_train_000001.png"] == Example(
        id="clevr_math-CLEVR_train_000001.png",
        question="Subtract all red cubes. How many objects are left?",
        answer="3", answer_type="number", source="clevr_math", capability="vis",
        image="clevr_math/CLEVR_train_000001.png",
        meta={"source_id": "clevr_math-CLEVR_train_000001.png", "subset": "clevr_math"},
    )
    geo = ex["geoqa170k-geoqa_plus-17-100"]
    assert (geo.answer, geo.answer_type, geo.choices) == ("C", "choice", ["30°", "45°", "60°", "75°"])
    assert geo.source == "geoqa170k" and geo.image == "geoqa170k/geoqa_plus-17.png"
    puma = ex["math_puma-7"]
    assert (puma.answer, puma.answer_type, puma.source) == ("y = 2 * x + 1", "text", "math_puma")
    assert puma.meta["text_question"].startswith("The line y = a * x + b")
    arxiv = ex["arxivqa-cond-mat-42"]
    assert (arxiv.answer, arxiv.choices[1]) == ("B", "It falls steadily.")
    s = result.stats
    assert s.filtered == {"allava_laion": 1, "docvqa": 1}  # not in the paper's D_vis: left out, not bad
    assert s.skipped == {"missing_image": 1, "missing_question": 1, "unparseable_answer": 3}
    assert "CLEVR_train_000099.png" in s.problems["missing_image"][0]
    assert any("'E' is not one of the 4 options" in p for p in s.problems["unparseable_answer"])
    assert s.by_source == {"arxivqa": 1, "clevr_math": 3, "geoqa170k": 1, "math_puma": 1}
    for item in result.items:
        assert item.image.path.is_file() and item.image.name == item.example.image


def test_vlaa_subset_aliases_and_options():
    geo = load_source({"adapter": "geoqa170k", "path": str(VLAA)})
    assert {i.example.source for i in geo.items} == {"geoqa170k"}
    assert geo.stats.skipped == {"unparseable_answer": 1}
    two = load_source({"adapter": "vlaa_thinking", "path": str(VLAA), "subsets": ["clevr_math", "allava_laion"]})
    assert two.stats.by_source == {"clevr_math": 3}
    assert two.stats.skipped["missing_image"] == 2  # CLEVR_train_000099 and the allava image are absent


def test_vlaa_image_root_option(tmp_path):
    shutil.copytree(VLAA / "images", tmp_path / "elsewhere")
    (tmp_path / "ann").mkdir()
    shutil.copy(VLAA / "VLAA-Thinking-GRPO-25K.json", tmp_path / "ann")
    spec = {"adapter": "clevr_math", "path": str(tmp_path / "ann"), "image_root": str(tmp_path / "elsewhere")}
    result = load_source(spec)
    assert result.stats.kept == 3
    assert all(str(i.image.path).startswith(str(tmp_path / "elsewhere")) for i in result.items)


def test_vlaa_wrong_column(tmp_path):
    with pytest.raises(SourceError, match=r"source 'vlaa_thinking'.*column 'answer' for answer is missing.*gt"):
        load_source({"adapter": "vlaa_thinking", "path": str(VLAA), "columns": {"answer": "answer"}})


def test_verify_images_counts_corrupt_ones(tmp_path):
    root = tmp_path / "vlaa"
    shutil.copytree(VLAA, root)
    (root / "images" / "arxivqa" / "1234.56789_1.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    result = load_source({"adapter": "arxivqa", "path": str(root), "verify_images": True})
    assert result.stats.skipped == {"corrupt_image": 1, "unparseable_answer": 1} and result.items == []
    assert load_source({"adapter": "arxivqa", "path": str(root)}).stats.kept == 1  # not decoded by default


# ---------------------------------------------------------------------------- geometry3k / EasyR1


def test_geometry3k_parquet_with_embedded_images():
    result = load_source({"adapter": "geometry3k", "path": str(GEO)})
    ex = _examples(result)
    assert ex["geometry3k-test-00000"] == Example(
        id="geometry3k-test-00000", question="Find x.", answer="3", answer_type="number",
        source="geometry3k", capability="vis", image="test-00000.png",
    )
    assert ex["geometry3k-test-00001"].answer == "\\frac{40}{3}"
    assert result.stats.skipped == {"missing_image": 1, "missing_answer": 1}
    img = result.items[0].image
    assert img.path is None and img.data.startswith(b"\x89PNG")


def test_geometry3k_missing_split_is_an_error():
    with pytest.raises(SourceError, match="no train-\\*.parquet"):
        load_source({"adapter": "geometry3k", "path": str(GEO), "split": "train"})


def test_easyr1_jsonl_with_pass_rate(tmp_path):
    (tmp_path / "img").mkdir()
    shutil.copy(VLAA / "images" / "clevr_math" / "CLEVR_train_000001.png", tmp_path / "img" / "a.png")
    rows = [
        {"index": "7", "problem": "<image>How many cubes?", "answer": "2", "images": ["img/a.png"], "pass_rate": 0.2},
        {"index": "8", "problem": "What is 2+2?", "answer": "4", "images": [], "pass_rate": 1.0},
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = load_source({"adapter": "easyr1", "name": "authors", "path": str(tmp_path)})
    a, b = (i.example for i in result.items)
    assert (a.id, a.question, a.image, a.difficulty) == ("authors-7", "How many cubes?", "img/a.png", 0.8)
    assert (b.image, b.difficulty) == (None, 0.0)


# ---------------------------------------------------------------------------- world (tiny profile)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    cfg = WorldConfig(
        scenes={"pretrain": 0, "train": 4, "test": 2},
        text_math={"pretrain": 0, "train": 6, "test": 2},
        vis_math={"pretrain": 0, "train": 5, "test": 2},
        perception_per_scene=1,
    )
    build_world(cfg, root / "raw", root / "world", progress=False)
    return root / "world"


def test_world_pass_through(world):
    for set_name, n in (("text_math", 6), ("vis_math", 5)):
        result = load_source({"adapter": "world", "path": str(world), "set": set_name, "split": "train"})
        rows = read_jsonl(world / f"{set_name}_train.jsonl")
        assert [i.example.to_dict() for i in result.items] == rows  # unchanged
        assert result.stats.kept == n and result.stats.skipped == {}
    vis = load_source({"adapter": "world", "path": str(world), "set": "vis_math"})
    assert all(i.image.path == world / "vis_images" / i.example.image for i in vis.items)


def test_world_bad_rows_are_counted(world, tmp_path):
    copy = tmp_path / "w"
    shutil.copytree(world, copy)
    rows = read_jsonl(copy / "vis_math_train.jsonl")
    rows[0]["answer"] = ""
    rows[1]["answer_type"] = "fraction"
    (copy / "vis_images" / rows[2]["image"]).unlink()
    rows[3]["question"] = None
    (copy / "vis_math_train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = load_source({"adapter": "world", "path": str(copy), "set": "vis_math"})
    assert result.stats.skipped == {"missing_answer": 1, "unparseable_answer": 1, "missing_image": 1,
                                    "missing_question": 1}
    assert result.stats.kept == 1
    assert result.stats.problems["missing_answer"][0].startswith(f"{copy / 'vis_math_train.jsonl'}:1: ")


def test_world_needs_a_built_world(tmp_path):
    with pytest.raises(SourceError, match="world set file not found"):
        load_source({"adapter": "world", "path": str(tmp_path), "set": "text_math"})
    with pytest.raises(ValueError, match="no column map"):
        SourceSpec.from_dict({"adapter": "world", "path": "x", "columns": {"question": "q"}})


# ---------------------------------------------------------------------------- url / hub code paths (offline)


def test_orz_default_url_goes_through_the_downloader(monkeypatch, tmp_path):
    from capcurriculum.data import download

    calls = []

    def fake_download(url, dest, *, sha256=None, **kw):
        calls.append((url, Path(dest), sha256))
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ORZ / "orz_math_13k_collection_hard.json", dest)
        return Path(dest)

    monkeypatch.setattr(download, "download_file", fake_download)
    result = load_source({"adapter": "orz_math", "cache_dir": str(tmp_path), "sha256": "ab" * 32})
    url, dest, sha = calls[0]
    assert url.startswith("https://raw.githubusercontent.com/Open-Reasoner-Zero/Open-Reasoner-Zero/")
    assert dest == tmp_path / "orz_math" / "orz_math_13k_collection_hard.json" and sha == "ab" * 32
    assert result.stats.kept == 5 and result.stats.files == [url]
    assert result.stats.problems["missing_question"][0].startswith(f"{url}[5]: ")


def test_vlaa_from_the_hub_fetches_and_extracts_image_archives(monkeypatch, tmp_path):
    import tarfile

    import huggingface_hub

    archives = tmp_path / "archives"
    archives.mkdir()
    for folder in ("clevr_math", "geoqa170k"):
        with tarfile.open(archives / f"{folder}.tar.gz", "w:gz") as tf:
            tf.add(VLAA / "images" / folder, arcname=folder)
    asked = []

    def fake_hf_hub_download(repo_id, filename, *, repo_type=None, revision=None, cache_dir=None):
        asked.append((repo_id, filename, repo_type))
        if filename == "VLAA-Thinking-GRPO-25K.json":
            return str(VLAA / filename)
        return str(archives / Path(filename).name)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hf_hub_download)
    spec = {"adapter": "vlaa_thinking", "hub_id": "UCSC-VLAA/VLAA-Thinking", "cache_dir": str(tmp_path / "c"),
            "subsets": ["clevr_math", "geoqa170k"]}
    result = load_source(spec)
    assert asked == [
        ("UCSC-VLAA/VLAA-Thinking", "VLAA-Thinking-GRPO-25K.json", "dataset"),
        ("UCSC-VLAA/VLAA-Thinking", "images/clevr_math.tar.gz", "dataset"),
        ("UCSC-VLAA/VLAA-Thinking", "images/geoqa170k.tar.gz", "dataset"),
    ]
    assert result.stats.by_source == {"clevr_math": 3, "geoqa170k": 1}
    root = tmp_path / "c" / "vlaa_thinking" / "images"
    assert all(i.image.path.parent.parent == root for i in result.items)
    assert result.stats.files == ["UCSC-VLAA/VLAA-Thinking/VLAA-Thinking-GRPO-25K.json"]


def test_geometry3k_through_datasets_load_dataset(tmp_path):
    # hub_id may be anything datasets.load_dataset accepts; a local copy keeps this offline
    result = load_source({"adapter": "geometry3k", "hub_id": str(GEO), "cache_dir": str(tmp_path)})
    local = load_source({"adapter": "geometry3k", "path": str(GEO)})
    assert [i.example for i in result.items] == [i.example for i in local.items]
    assert [i.image.data for i in result.items] == [i.image.data for i in local.items]
    assert result.stats.skipped == local.stats.skipped
