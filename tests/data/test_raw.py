"""The raw node on the paper profile's DOCCI path: a local copy (`raw.docci.local_dir`) instead of a download."""

import hashlib
import tarfile
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from capcurriculum.config import ConfigError, load_params, subtree, validate
from capcurriculum.data.docci import load_docci
from capcurriculum.data.raw import build_raw, place_local_docci
from capcurriculum.io import DataError

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "docci"


def paper_cfg(local_dir, **checksums):
    cfg = load_params(ROOT / "params.yaml", validate_all=False)
    paper = OmegaConf.create({"profile": "paper", "raw": {"source": "docci", "verify_images": True, "on_error": "raise",
                              "docci": {"urls": {"descriptions": None, "images": None}, "local_dir": str(local_dir),
                                        "checksums": {"descriptions": None, "images": None, **checksums}}},
                              "world": None, "tokenizer": None})
    return OmegaConf.merge(cfg, paper)


def test_a_local_copy_with_an_images_directory_is_linked_in_and_loads(tmp_path):
    metrics = build_raw(paper_cfg(FIXTURE), tmp_path / "raw", tmp_path / "world")
    corpus = load_docci(tmp_path / "raw")
    assert metrics["raw/records"] == len(corpus.records) == 6 and metrics["raw/skipped_total"] == 0
    src = FIXTURE / "images" / Path(corpus.records[0].image_file).name
    assert (tmp_path / "raw" / "images" / src.name).read_bytes() == src.read_bytes()
    assert not (tmp_path / "world" / "perception_test.jsonl").exists()  # no world on this profile


def test_a_local_tarball_is_extracted_and_its_checksum_checked(tmp_path):
    local = tmp_path / "docci"
    local.mkdir()
    (local / "docci_descriptions.jsonlines").write_bytes((FIXTURE / "docci_descriptions.jsonlines").read_bytes())
    with tarfile.open(local / "docci_images.tar.gz", "w:gz") as tf:
        tf.add(FIXTURE / "images", arcname="images")
    digest = hashlib.sha256((local / "docci_images.tar.gz").read_bytes()).hexdigest()
    build_raw(paper_cfg(local, images=digest), tmp_path / "raw", tmp_path / "world")
    assert len(load_docci(tmp_path / "raw").records) == 6
    with pytest.raises(DataError, match=r"docci_images\.tar\.gz: sha256 differs from raw\.docci\.checksums\.images"):
        build_raw(paper_cfg(local, images="0" * 64), tmp_path / "raw2", tmp_path / "world2")


def test_a_local_copy_without_the_release_layout_is_named(tmp_path):
    with pytest.raises(DataError, match=r"docci_descriptions\.jsonlines: file not found"):
        place_local_docci(tmp_path, tmp_path / "raw", {})
    (tmp_path / "docci_descriptions.jsonlines").write_text("")
    with pytest.raises(DataError, match=r"holds neither images/ nor docci_images\.tar\.gz"):
        place_local_docci(tmp_path, tmp_path / "raw", {})
    with pytest.raises(DataError, match=r"checksums\.images is the release tarball's"):
        place_local_docci(FIXTURE, tmp_path / "raw", {"images": "ab" * 32})


def test_the_config_refuses_a_local_dir_that_does_not_exist_and_needs_no_urls_with_one(tmp_path):
    with pytest.raises(ConfigError, match=r"raw\.docci\.local_dir: .* is not a directory"):
        validate(paper_cfg(tmp_path / "nowhere"))
    cfg = paper_cfg(FIXTURE)
    cfg.raw.docci.local_dir = None
    with pytest.raises(ConfigError, match=r"raw\.docci\.urls\.descriptions: missing"):
        validate(cfg)


def test_a_node_param_set_to_null_is_kept_and_an_absent_one_is_named():
    cfg = OmegaConf.create({"profile": "paper", "world": None, "raw": {"source": "docci"}})
    assert subtree(cfg, "profile", "world") == {"profile": "paper", "world": None}
    with pytest.raises(ConfigError, match="tokenizer: missing"):
        subtree(cfg, "tokenizer")
