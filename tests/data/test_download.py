"""download_file / fetch_docci against a real HTTP server on 127.0.0.1 run by the test."""

import hashlib
import http.server
import io
import re
import tarfile
import threading
import time
from pathlib import Path

import pytest

from capcurriculum.data.docci import load_docci, verify_images
from capcurriculum.data.download import (
    ChecksumError,
    DownloadError,
    download_file,
    extract_tarball,
    fetch_docci,
)
from capcurriculum.io import DataError

pytestmark = pytest.mark.timeout(60)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "docci"
PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server:
    """Serves `files` (path -> bytes); supports Range; can fail or cut requests on demand."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.fail_next = 0  # answer this many requests with 500
        self.fail_status = 500
        self.cut_next = 0  # cut this many responses after `cut_at` body bytes
        self.cut_at = 0
        self.ignore_range = False
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                with server.lock:
                    server.requests.append({"path": self.path, "range": self.headers.get("Range")})
                    fail = server.fail_next > 0
                    server.fail_next -= fail
                    cut = server.cut_next > 0
                    server.cut_next -= cut
                if fail:
                    self.send_response(server.fail_status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if m and not server.ignore_range:
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if cut:
                    self.wfile.write(body[: server.cut_at])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.daemon = True

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def ranges(self, path: str) -> list[str | None]:
        return [r["range"] for r in self.requests if r["path"] == path]


@pytest.fixture
def server():
    s = Server()
    s.files["/blob.bin"] = PAYLOAD
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    s.thread.join(timeout=5)


FAST = {"timeout": 5, "backoff": 0.01, "progress": False}


def test_full_download_with_checksum_then_skip(server, tmp_path):
    dest = tmp_path / "sub" / "blob.bin"
    out = download_file(server.url("/blob.bin"), dest, sha256=sha(PAYLOAD), **FAST)
    assert out == dest and dest.read_bytes() == PAYLOAD
    assert not dest.with_name("blob.bin.part").exists()
    assert server.ranges("/blob.bin") == [None]
    # present with the right hash: no second request
    download_file(server.url("/blob.bin"), dest, sha256=sha(PAYLOAD).upper(), **FAST)
    assert len(server.requests) == 1


def test_wrong_checksum_raises_and_leaves_nothing(server, tmp_path):
    dest = tmp_path / "blob.bin"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as e:
        download_file(server.url("/blob.bin"), dest, sha256=wrong, **FAST)
    msg = str(e.value)
    assert "blob.bin" in msg and wrong in msg and sha(PAYLOAD) in msg
    assert not dest.exists() and not dest.with_name("blob.bin.part").exists()


def test_existing_file_with_wrong_hash_is_replaced(server, tmp_path):
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"stale")
    download_file(server.url("/blob.bin"), dest, sha256=sha(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD


def test_interrupted_download_resumes_from_part(server, tmp_path):
    dest = tmp_path / "blob.bin"
    part = tmp_path / "blob.bin.part"
    server.cut_next, server.cut_at = 1, 30_000
    with pytest.raises(DownloadError, match="30000 bytes kept"):
        download_file(server.url("/blob.bin"), dest, sha256=sha(PAYLOAD), retries=0, **FAST)
    assert not dest.exists()
    assert part.stat().st_size == 30_000

    download_file(server.url("/blob.bin"), dest, sha256=sha(PAYLOAD), retries=0, **FAST)
    assert server.ranges("/blob.bin") == [None, "bytes=30000-"]
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_interruption_retried_within_one_call(server, tmp_path):
    dest = tmp_path / "blob.bin"
    server.cut_next, server.cut_at = 2, 10_000
    download_file(server.url("/blob.bin"), dest, sha256=sha(PAYLOAD), retries=2, **FAST)
    assert server.ranges("/blob.bin") == [None, "bytes=10000-", "bytes=20000-"]
    assert dest.read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts(server, tmp_path):
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(b"x" * 5000)  # not even the right bytes
    server.ignore_range = True
    download_file(server.url("/blob.bin"), dest, sha256=sha(PAYLOAD), **FAST)
    assert server.ranges("/blob.bin") == ["bytes=5000-"]
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_answered_416(server, tmp_path):
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD)
    download_file(server.url("/blob.bin"), dest, sha256=sha(PAYLOAD), **FAST)
    assert server.ranges("/blob.bin") == [f"bytes={len(PAYLOAD)}-"]
    assert dest.read_bytes() == PAYLOAD


def test_5xx_retried(server, tmp_path):
    server.fail_next = 2
    dest = download_file(server.url("/blob.bin"), tmp_path / "a.bin", retries=3, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert len(server.requests) == 3


def test_5xx_gives_up_after_retries(server, tmp_path):
    server.fail_next, server.fail_status = 10, 503
    with pytest.raises(DownloadError, match="after 2 attempt"):
        download_file(server.url("/blob.bin"), tmp_path / "a.bin", retries=1, **FAST)
    assert len(server.requests) == 2
    assert not (tmp_path / "a.bin").exists()


def test_4xx_not_retried(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url("/absent.bin"), tmp_path / "a.bin", retries=3, **FAST)
    assert len(server.requests) == 1


def test_connection_refused_retried_then_fails(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="after 2 attempt"):
        download_file(f"http://127.0.0.1:{port}/x", tmp_path / "x", retries=1, **FAST)


def make_tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def fixture_tarball() -> bytes:
    return make_tar({f"images/{p.name}": p.read_bytes() for p in sorted((FIXTURE / "images").glob("*.jpg"))})


def test_extract_tarball(tmp_path):
    archive = tmp_path / "imgs.tar.gz"
    archive.write_bytes(make_tar({"images/a.jpg": b"A", "images/sub/b.jpg": b"B"}))
    out = extract_tarball(archive, tmp_path / "out" / "images", progress=False)
    assert (out / "a.jpg").read_bytes() == b"A" and (out / "sub" / "b.jpg").read_bytes() == b"B"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".images.extracted.json", "images"]
    # no single `images/` top level: the members land as they are
    archive.write_bytes(make_tar({"x.jpg": b"X", "y.jpg": b"Y"}))
    out2 = extract_tarball(archive, tmp_path / "flat", progress=False)
    assert sorted(p.name for p in out2.iterdir()) == ["x.jpg", "y.jpg"]


@pytest.mark.parametrize("evil", ["../evil", "images/../../evil", "/tmp/evil_abs_capcurriculum"])
def test_evil_tarball_refused(tmp_path, evil):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(make_tar({"images/ok.jpg": b"ok", evil: b"pwned"}))
    dest = tmp_path / "x" / "images"
    with pytest.raises(DataError, match="unsafe archive member") as e:
        extract_tarball(archive, dest, progress=False)
    assert "evil" in str(e.value) and "evil.tar.gz" in str(e.value)
    assert not dest.exists()
    assert not (tmp_path / "evil").exists() and not (tmp_path / "x" / "evil").exists()
    assert not Path("/tmp/evil_abs_capcurriculum").exists()
    assert [p.name for p in (tmp_path / "x").iterdir()] == []  # the staging dir was cleaned up


def test_symlink_out_of_tree_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("images/link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    archive = tmp_path / "link.tar"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="unsafe archive member"):
        extract_tarball(archive, tmp_path / "images", progress=False)
    assert not (tmp_path / "images").exists()


def test_corrupt_tarball(tmp_path):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(b"\x1f\x8b not a gzip stream at all")
    with pytest.raises(DataError, match="bad.tar.gz: cannot extract"):
        extract_tarball(archive, tmp_path / "images", progress=False)


def test_fetch_docci_end_to_end(server, tmp_path):
    desc = (FIXTURE / "docci_descriptions.jsonlines").read_bytes()
    tar = fixture_tarball()
    server.files["/d/docci_descriptions.jsonlines"] = desc
    server.files["/d/docci_images.tar.gz"] = tar
    urls = {
        "descriptions": server.url("/d/docci_descriptions.jsonlines"),
        "images": server.url("/d/docci_images.tar.gz"),
    }
    checksums = {"descriptions": sha(desc), "images": sha(tar)}
    out = tmp_path / "docci"
    paths = fetch_docci(out, urls=urls, checksums=checksums, **FAST)
    assert paths["images_dir"] == out / "images"
    corpus = verify_images(load_docci(out), progress=False)
    assert len(corpus) == 6 and corpus.skipped == {}

    # a second run downloads and extracts nothing
    n = len(server.requests)
    (out / "images" / "marker.txt").write_text("still here")
    fetch_docci(out, urls=urls, checksums=checksums, **FAST)
    assert len(server.requests) == n and (out / "images" / "marker.txt").exists()

    # null checksums are allowed (not yet pinned); missing URLs are not
    fetch_docci(tmp_path / "unpinned", urls=urls, checksums={"descriptions": None, "images": None}, **FAST)
    assert len(load_docci(tmp_path / "unpinned")) == 6
    with pytest.raises(ValueError, match="images"):
        fetch_docci(tmp_path / "x", urls={"descriptions": urls["descriptions"]}, checksums={}, **FAST)


def test_fetch_docci_checksum_mismatch(server, tmp_path):
    server.files["/d/docci_descriptions.jsonlines"] = b"{}\n"
    server.files["/d/docci_images.tar.gz"] = make_tar({"images/a.jpg": b"a"})
    urls = {
        "descriptions": server.url("/d/docci_descriptions.jsonlines"),
        "images": server.url("/d/docci_images.tar.gz"),
    }
    with pytest.raises(ChecksumError, match="docci_images.tar.gz"):
        fetch_docci(tmp_path, urls=urls, checksums={"images": "ab" * 32}, **FAST)
    assert not (tmp_path / "docci_images.tar.gz").exists() and not (tmp_path / "images").exists()


@pytest.mark.parametrize("headers", [False, True], ids=["trickled body", "trickled headers"])
def test_a_trickling_server_is_a_timeout_retried_then_given_up(headers, trickle_server, tmp_path):
    """A byte every 0.2 s never trips a per-read timeout of 1 s; the download's deadline (headers in all,
    then each `chunk` of the body, within `timeout`) does, on each of its two tries."""
    slow = trickle_server(interval=0.2, headers=headers)  # the whole 200-byte body would take 40 s
    dest = tmp_path / "blob.bin"
    t = time.monotonic()
    with pytest.raises(DownloadError, match="giving up after 2 attempt") as e:
        download_file(slow.url + "/blob.bin", dest, chunk=64, retries=1, timeout=1, backoff=0.01, progress=False)
    took = time.monotonic() - t
    assert 2 <= took < 8 and slow.requests == 2
    assert ("no response headers within 1 s" if headers else "fewer than 64 bytes arrived in 1 s") in str(e.value)
    assert not dest.exists()
