"""Resumable, checksummed downloads and safe tarball extraction for the paper profile's DOCCI.

`download_file` streams into `<dest>.part`, resumes a partial `.part` with an HTTP Range request
(falling back to a fresh start when the server ignores Range), retries connection errors and 5xx
with exponential back-off, verifies the sha256 when one is pinned, and only then renames the file
into place, so `dest` is either absent or complete. `fetch_docci` fetches the two DOCCI files
(URLs and checksums come from the config, `raw.docci`) and extracts the images into
`out_dir/images/` atomically, refusing archive members that would land outside it.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import tarfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import requests
import urllib3
from tqdm.auto import tqdm

from capcurriculum.io import DataError, atomic_path, sha256_file, write_json

log = logging.getLogger(__name__)

DESCRIPTIONS_FILE = "docci_descriptions.jsonlines"
IMAGES_ARCHIVE = "docci_images.tar.gz"
IMAGES_DIR = "images"

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)
_MAX_RESTARTS = 2  # fresh starts (server answered a Range oddly) that do not use up a retry


class DownloadError(RuntimeError):
    """A download that failed for good (retries used up, or an HTTP error that retrying won't fix)."""

    def __init__(self, url: str, message: str):
        super().__init__(f"{url}: {message}")
        self.url = url


class ChecksumError(DataError):
    """A file whose sha256 is not the pinned one."""


class _Retryable(Exception):
    pass


class _Restart(Exception):
    pass


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """`bytes 10-99/100` -> (10, 99, 100); `bytes */100` -> (None, None, 100); unknown parts None."""
    m = _CONTENT_RANGE.match(value or "")
    if not m:
        return None, None, None
    start, end, total = m.groups()
    return (
        int(start) if start is not None else None,
        int(end) if end is not None else None,
        int(total) if total not in (None, "*") else None,
    )


def _get(session: requests.Session, url: str, headers: dict[str, str], timeout: float) -> requests.Response:
    """`session.get(stream=True)` whose status line and headers must all arrive within `timeout`:
    requests' own timeout bounds each read, which a server trickling a byte a second never trips. The
    request runs in a worker; past the deadline it is abandoned (closing its response if one comes)."""
    done: dict[str, Any] = {}
    gave_up = threading.Event()

    def get() -> None:
        try:
            done["resp"] = session.get(url, headers=headers, stream=True, timeout=timeout)
        except Exception as e:  # noqa: BLE001 - re-raised in the caller's thread
            done["error"] = e
        if gave_up.is_set() and "resp" in done:
            done["resp"].close()

    worker = threading.Thread(target=get, name="download-get", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        gave_up.set()
        raise _Retryable(f"no response headers within {timeout:g} s")
    if "error" in done:
        raise done["error"]
    return done["resp"]


def _body(r: requests.Response, chunk: int, timeout: float) -> Iterator[bytes]:
    """The response body as it arrives, on-the-wire bytes (no content decoding).

    Uses urllib3's `read1`, which hands over whatever has arrived, so the bytes received before a
    dropped connection reach the `.part` file (reading fixed `chunk`-sized blocks would lose the
    last, incomplete one). A broken connection becomes `_Retryable`, and so does a body that takes
    longer than `timeout` for any `chunk` bytes (a server trickling bytes, which no per-read timeout
    catches); what arrived is kept for resuming.
    """
    raw = r.raw
    if not hasattr(raw, "read1"):  # urllib3 < 2: no read1; fall back to requests' iterator
        yield from (b for b in r.iter_content(chunk_size=chunk) if b)
        return
    since, got = time.monotonic(), 0  # when the current chunk's window opened, and its bytes so far
    while True:
        if time.monotonic() - since > timeout:
            raise _Retryable(f"fewer than {chunk} bytes arrived in {timeout:g} s")
        try:
            block = raw.read1(chunk, decode_content=False)
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, ConnectionError, TimeoutError) as e:
            raise _Retryable(f"connection broken: {e}") from e
        if not block:
            return
        yield block
        got += len(block)
        if got >= chunk:
            since, got = time.monotonic(), 0


def _fetch_once(
    session: requests.Session, url: str, dest: Path, part: Path, chunk: int, timeout: float, progress: bool
) -> None:
    """One HTTP request: append to (or restart) `part`. Raises _Retryable/_Restart/DownloadError."""
    offset = part.stat().st_size if part.exists() else 0
    # Byte offsets must refer to the bytes on the wire: ask for no content coding.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with _get(session, url, headers, timeout) as r:
        status = r.status_code
        if status == 416 and offset:
            _, _, total = _parse_content_range(r.headers.get("Content-Range"))
            if total == offset:
                log.info("%s: the partial download is already complete (%d bytes)", part, offset)
                return
            log.warning("%s: server refused resuming at byte %d; starting over", part, offset)
            part.unlink(missing_ok=True)
            raise _Restart(f"HTTP 416 at offset {offset}")
        if status >= 500 or status in (408, 429):
            raise _Retryable(f"HTTP {status} {r.reason}")
        if status not in (200, 206):
            raise DownloadError(url, f"HTTP {status} {r.reason}")

        if status == 206:
            start, _, total = _parse_content_range(r.headers.get("Content-Range"))
            if start != offset:
                log.warning("%s: asked for byte %d, server sent from %s; starting over", part, offset, start)
                part.unlink(missing_ok=True)
                raise _Restart(f"Content-Range starts at {start}, not {offset}")
            mode = "ab"
            log.info("%s: resuming at byte %d", dest.name, offset)
        else:
            if offset:
                log.warning("%s: server ignored the Range request; restarting from byte 0", dest.name)
            offset = 0
            mode = "wb"
            length = r.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None

        with (
            open(part, mode) as f,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                disable=not progress,
            ) as bar,
        ):
            for block in _body(r, chunk, timeout):
                f.write(block)
                bar.update(len(block))

    size = part.stat().st_size
    if total is not None and size != total:
        if size < total:
            raise _Retryable(f"connection closed after {size} of {total} bytes")
        part.unlink(missing_ok=True)
        raise _Retryable(f"got {size} bytes, more than the {total} announced; discarded")


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    chunk: int = 1 << 20,
    retries: int = 3,
    timeout: float = 60,
    backoff: float = 1.0,
    session: requests.Session | None = None,
    progress: bool = True,
) -> Path:
    """Download `url` to `dest` and return `dest`.

    Skips the download when `dest` exists and matches `sha256` (or exists and no hash is pinned).
    Bytes go to `<dest>.part`; a `.part` left by an interrupted run is resumed with a Range request.
    Connection errors, timeouts, truncated bodies and HTTP 5xx/408/429 are retried up to `retries`
    more times, sleeping `backoff * 2**attempt` seconds in between; when they are used up,
    `DownloadError` is raised and the `.part` is kept for the next call to resume. Other HTTP errors
    raise at once. A sha256 mismatch raises `ChecksumError` naming the file and both hashes and
    removes the bad download. `timeout` bounds the wait for the response's headers, in all, and then
    for each `chunk` bytes of the body: a server that trickles bytes is a timeout, retried as above
    (at the defaults a link slower than 1 MiB a minute is one too).
    """
    dest = Path(dest)
    part = _part_path(dest)
    want = sha256.strip().lower() if sha256 else None
    if dest.is_file():
        if want is None:
            log.info("%s exists (no checksum pinned); skipping download", dest)
            return dest
        got = sha256_file(dest)
        if got == want:
            log.info("%s exists with the pinned sha256; skipping download", dest)
            return dest
        log.warning("%s exists but its sha256 %s is not the pinned %s; downloading again", dest, got, want)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)

    own_session = session is None
    session = session or requests.Session()
    try:
        attempt = restarts = 0
        while True:
            try:
                _fetch_once(session, url, dest, part, chunk, timeout, progress)
                break
            except _Restart as e:
                restarts += 1
                if restarts > _MAX_RESTARTS:
                    raise DownloadError(url, f"server keeps answering Range requests oddly ({e})") from None
            except (
                _Retryable,
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as e:
                have = part.stat().st_size if part.exists() else 0
                if attempt >= retries:
                    raise DownloadError(
                        url,
                        f"giving up after {attempt + 1} attempt(s): {e}"
                        + (f"; {have} bytes kept in {part} for resuming" if have else ""),
                    ) from e
                delay = backoff * (2**attempt)
                attempt += 1
                log.warning(
                    "%s: %s; retry %d/%d in %.1fs (have %d bytes)", url, e, attempt, retries, delay, have
                )
                time.sleep(delay)
    finally:
        if own_session:
            session.close()

    if not part.exists():
        raise DownloadError(url, f"no data was written to {part}")
    if want is not None:
        got = sha256_file(part)
        if got != want:
            part.unlink(missing_ok=True)
            raise ChecksumError(
                dest, f"sha256 mismatch: expected {want}, got {got} (from {url}); the download was removed"
            )
    os.replace(part, dest)
    return dest


def _unsafe_reason(name: str) -> str | None:
    if not name:
        return "empty name"
    if name.startswith(("/", "\\")) or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        return "absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "'..' in path"
    return None


def _checked_members(tf: tarfile.TarFile, archive: Path, bar: tqdm) -> Iterator[tarfile.TarInfo]:
    for member in tf:
        reason = _unsafe_reason(member.name)
        if reason is None and (member.issym() or member.islnk()):
            link_reason = _unsafe_reason(member.linkname)
            reason = f"link target {member.linkname!r}: {link_reason}" if link_reason else None
        if reason is None and not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            reason = "not a regular file, directory or link"
        if reason is not None:
            raise DataError(archive, f"refusing unsafe archive member {member.name!r} ({reason})")
        bar.update(1)
        yield member


def extract_tarball(
    archive: str | os.PathLike,
    dest_dir: str | os.PathLike,
    *,
    strip_top: str | None = IMAGES_DIR,
    key: str | None = None,
    progress: bool = True,
) -> Path:
    """Extract `archive` into `dest_dir` atomically and return `dest_dir`.

    Every member is checked first (absolute paths, `..` components and links pointing outside are
    refused with `DataError` naming the archive and member) and extraction runs with tarfile's
    `filter="data"`. Extraction goes to a temporary sibling that replaces `dest_dir` only when
    complete. When the archive holds a single top-level directory named `strip_top`, its contents
    become `dest_dir` (DOCCI's tarball holds `images/...`). A marker next to `dest_dir` records
    `key` (default: the archive's size and mtime) so an unchanged archive is not extracted twice.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if not archive.is_file():
        raise DataError(archive, "file not found")
    st = archive.stat()
    key = key or f"size={st.st_size},mtime_ns={st.st_mtime_ns}"
    marker = dest_dir.with_name(f".{dest_dir.name}.extracted.json")
    if dest_dir.is_dir() and marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")).get("key") == key:
                log.info("%s already extracted into %s; skipping", archive, dest_dir)
                return dest_dir
        except (OSError, ValueError):
            pass

    marker.unlink(missing_ok=True)
    with atomic_path(dest_dir) as tmp:
        staging = tmp.parent / ".extract"
        staging.mkdir()
        try:
            with (
                tarfile.open(archive, "r:*") as tf,
                tqdm(desc=f"extract {archive.name}", unit="file", disable=not progress) as bar,
            ):
                tf.errorlevel = 1
                members = _checked_members(tf, archive, bar)
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(staging, members=members, filter="data")
                else:  # Python < 3.11.4: no filters; _checked_members alone guards the paths
                    tf.extractall(staging, members=members)
        except tarfile.FilterError as e:
            raise DataError(archive, f"refusing unsafe archive member: {e}") from None
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DataError(archive, f"cannot extract ({type(e).__name__}: {e})") from None
        top = list(staging.iterdir())
        src = staging
        if strip_top and len(top) == 1 and top[0].name == strip_top and top[0].is_dir():
            src = top[0]
        os.replace(src, tmp)
    write_json(marker, {"archive": archive.name, "key": key})
    return dest_dir


def fetch_docci(
    out_dir: str | os.PathLike,
    *,
    urls: Mapping[str, str],
    checksums: Mapping[str, str | None] | None = None,
    extract: bool = True,
    **download_kwargs: Any,
) -> dict[str, Path]:
    """Fetch DOCCI into `out_dir` in the layout `load_docci` reads.

    `urls` and `checksums` are keyed `descriptions` (docci_descriptions.jsonlines) and `images`
    (docci_images.tar.gz), as in the config's `raw.docci`; a null checksum is not verified.
    With `extract`, the tarball is unpacked into `out_dir/images/` (see `extract_tarball`).
    `download_kwargs` go to `download_file` (retries, timeout, backoff, session, progress).
    Returns the paths under keys descriptions, images_archive and images_dir.
    """
    out_dir = Path(out_dir)
    checksums = dict(checksums or {})
    missing = [k for k in ("descriptions", "images") if not (urls.get(k) if urls else None)]
    if missing:
        raise ValueError(f"fetch_docci: no URL for {', '.join(missing)} (expected keys descriptions, images)")
    descriptions = download_file(
        str(urls["descriptions"]),
        out_dir / DESCRIPTIONS_FILE,
        sha256=checksums.get("descriptions"),
        **download_kwargs,
    )
    archive = download_file(
        str(urls["images"]), out_dir / IMAGES_ARCHIVE, sha256=checksums.get("images"), **download_kwargs
    )
    images_dir = out_dir / IMAGES_DIR
    if extract:
        images_sha = checksums.get("images")
        extract_tarball(
            archive,
            images_dir,
            key=f"sha256={images_sha.lower()}" if images_sha else None,
            progress=download_kwargs.get("progress", True),
        )
    return {"descriptions": descriptions, "images_archive": archive, "images_dir": images_dir}
