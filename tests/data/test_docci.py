import json
import shutil
from pathlib import Path

import pytest

from capcurriculum.data.docci import (
    DESCRIPTIONS_FILE,
    DocciCorpus,
    DocciRecord,
    load_docci,
    open_image,
    verify_images,
)
from capcurriculum.io import DataError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "docci"


@pytest.fixture
def docci(tmp_path) -> Path:
    """A writable copy of the fixture release."""
    root = tmp_path / "docci"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("*.py"))
    return root


def rows(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / DESCRIPTIONS_FILE).read_text().splitlines()]


def write_lines(root: Path, lines: list[str]) -> None:
    (root / DESCRIPTIONS_FILE).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_reads_fixture():
    corpus = load_docci(FIXTURE)
    assert isinstance(corpus, DocciCorpus)
    assert len(corpus) == 6
    assert corpus.split_counts() == {"train": 3, "test": 2, "qual_dev": 1}
    assert corpus.skipped == {} and corpus.problems == []
    rec = corpus.records[0]
    assert isinstance(rec, DocciRecord)
    assert rec.example_id == "train_00000" and rec.split == "train"
    assert rec.image_file == "train_00000.jpg"
    assert rec.description.startswith("A red rectangle")
    assert rec.image_path == FIXTURE / "images" / "train_00000.jpg"
    img = open_image(rec)
    assert img.mode == "RGB" and img.size == (32, 24)


def test_filters_splits():
    corpus = load_docci(FIXTURE, ["test", "qual_dev"])
    assert [r.example_id for r in corpus] == ["test_00000", "test_00001", "qual_dev_00000"]
    assert [r.split for r in load_docci(FIXTURE, "train")] == ["train"] * 3


def test_unknown_split_lists_present():
    with pytest.raises(ValueError, match="nope") as e:
        load_docci(FIXTURE, ["train", "nope"])
    assert "qual_dev, test, train" in str(e.value)


def test_to_dataset():
    ds = load_docci(FIXTURE, ["test"]).to_dataset()
    assert ds.column_names == ["example_id", "split", "image_file", "description", "image_path"]
    assert len(ds) == 2
    assert ds[0]["image_path"] == str(FIXTURE / "images" / "test_00000.jpg")
    empty = DocciCorpus(root=FIXTURE, records=[]).to_dataset()
    assert len(empty) == 0 and "image_path" in empty.column_names


def test_malformed_json_names_file_and_line(docci):
    lines = (docci / DESCRIPTIONS_FILE).read_text().splitlines()
    lines[2] = lines[2][:-5]  # chop the closing of line 3
    write_lines(docci, lines)
    with pytest.raises(DataError, match="malformed JSON") as e:
        load_docci(docci)
    assert "docci_descriptions.jsonlines:3" in str(e.value)
    assert e.value.line == 3


def test_a_non_utf8_line_and_an_unterminated_string_are_named(docci):
    lines = (docci / DESCRIPTIONS_FILE).read_text().splitlines()
    (docci / DESCRIPTIONS_FILE).write_bytes(("\n".join(lines[:2]) + "\n").encode() + b'{"caf\xe9"}\n')
    with pytest.raises(DataError, match=r"docci_descriptions.jsonlines:3: not valid UTF-8"):
        load_docci(docci)
    (docci / DESCRIPTIONS_FILE).write_text(lines[0] + '\n{"example_id": "x', encoding="utf-8")  # cut short
    with pytest.raises(DataError) as e:
        load_docci(docci)
    assert str(e.value).endswith(":2: malformed JSON (Unterminated string starting at column 16)")


def test_missing_field_names_field_and_line(docci):
    r = rows(docci)
    del r[1]["description"]
    write_lines(docci, [json.dumps(x) for x in r])
    with pytest.raises(DataError) as e:
        load_docci(docci)
    assert "docci_descriptions.jsonlines:2" in str(e.value)
    assert "description" in str(e.value) and "missing" in str(e.value)


def test_wrong_type_names_field_and_line(docci):
    r = rows(docci)
    r[3]["example_id"] = 17
    write_lines(docci, [json.dumps(x) for x in r])
    with pytest.raises(DataError, match=r"jsonlines:4: field example_id must be a string"):
        load_docci(docci)


def test_missing_image_names_image_and_line(docci):
    (docci / "images" / "test_00001.jpg").unlink()
    with pytest.raises(DataError) as e:
        load_docci(docci)
    assert "docci_descriptions.jsonlines:5" in str(e.value)
    assert "test_00001.jpg" in str(e.value)
    # only the requested splits' images are checked, and checking can be turned off
    assert len(load_docci(docci, ["train"])) == 3
    assert len(load_docci(docci, check_images=False)) == 6


def test_duplicate_id_caught(docci):
    r = rows(docci)
    r[4]["example_id"] = r[0]["example_id"]
    write_lines(docci, [json.dumps(x) for x in r])
    with pytest.raises(
        DataError, match=r"jsonlines:5: duplicate example_id 'train_00000' \(first on line 1\)"
    ):
        load_docci(docci)


def test_unsafe_image_path_refused(docci):
    r = rows(docci)
    r[0]["image_file"] = "../docci_descriptions.jsonlines"
    write_lines(docci, [json.dumps(x) for x in r])
    with pytest.raises(DataError, match=r"jsonlines:1: image_file"):
        load_docci(docci)


def test_corrupt_image_raises_naming_it(tmp_path, docci):
    bad = tmp_path / "garbage.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 4)
    with pytest.raises(DataError, match="cannot decode image") as e:
        open_image(bad)
    assert "garbage.jpg" in str(e.value)

    # a truncated JPEG only fails when decoded, and verify_images surfaces it
    target = docci / "images" / "test_00000.jpg"
    target.write_bytes(target.read_bytes()[:200])
    corpus = load_docci(docci)  # existence check passes
    with pytest.raises(DataError) as e:
        verify_images(corpus, progress=False)
    assert "test_00000.jpg" in str(e.value)
    with pytest.raises(DataError, match="not found"):
        open_image(tmp_path / "absent.jpg")


def test_skip_mode_counts_each_reason(docci, caplog):
    r = rows(docci)
    good = [json.dumps(x) for x in r]
    missing_field = dict(r[1])
    del missing_field["split"]
    wrong_type = dict(r[2], description=["not", "a", "string"])
    dup = dict(r[3], image_file=r[4]["image_file"], example_id=r[0]["example_id"])
    no_image = dict(r[5], image_file="nowhere.jpg")
    write_lines(
        docci,
        [
            good[0],  # 1 ok
            "{not json",  # 2
            json.dumps(missing_field),  # 3
            json.dumps(wrong_type),  # 4
            json.dumps(dup),  # 5
            json.dumps(no_image),  # 6
            "",  # 7 blank lines are ignored
            "[1, 2]",  # 8
            good[4],  # 9 ok
        ],
    )
    (docci / "images" / "train_00000.jpg").write_bytes(b"garbage")

    with caplog.at_level("WARNING", logger="capcurriculum.data.docci"):
        corpus = load_docci(docci, on_error="skip")
    assert [x.example_id for x in corpus] == ["train_00000", "test_00001"]
    # each skipped line is logged where it is met, with its file:line and reason, as well as counted
    logged = [r.getMessage() for r in caplog.records]
    assert [m.split(": skipped", 1)[0] for m in logged] == [f"{docci / DESCRIPTIONS_FILE}:{n}" for n in (2, 3, 4, 5, 6, 8)]
    assert "(malformed_json)" in logged[0] and "(duplicate_id)" in logged[3]
    assert corpus.skipped == {
        "malformed_json": 1,
        "missing_field": 1,
        "wrong_type": 1,
        "duplicate_id": 1,
        "missing_image": 1,
        "not_an_object": 1,
    }
    where = [w for w, _ in corpus.problems]
    assert [w.rsplit(":", 1)[1] for w in where] == ["2", "3", "4", "5", "6", "8"]
    assert all(w.startswith(str(docci / DESCRIPTIONS_FILE)) for w in where)
    assert "split" in corpus.problems[1][1]

    caplog.clear()
    with caplog.at_level("WARNING", logger="capcurriculum.data.docci"):
        verified = verify_images(corpus, on_error="skip", progress=False)
    assert [r.getMessage().split(": skipped (")[0] for r in caplog.records] == [str(docci / "images" / "train_00000.jpg")]
    assert [x.example_id for x in verified] == ["test_00001"]
    assert verified.skipped["corrupt_image"] == 1
    assert verified.n_skipped == 7
    assert "train_00000.jpg" in verified.problems[-1][0]
    assert len(corpus) == 2  # the input corpus is untouched


def test_bad_arguments(docci, tmp_path):
    with pytest.raises(ValueError, match="on_error"):
        load_docci(docci, on_error="ignore")
    with pytest.raises(DataError, match="file not found"):
        load_docci(tmp_path / "empty")
