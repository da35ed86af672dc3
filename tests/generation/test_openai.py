"""The openai backend against a real HTTP server on 127.0.0.1 that the test controls."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from capcurriculum.generation import OpenAIBackend, Request, SamplingConfig, make_backend

KEY_ENV = "CAPCURRICULUM_TEST_API_KEY"
KEY = "sk-test-d0n0tl34k-7f3a9c"


class FakeServer:
    """Canned chat completions. The last user text picks the behaviour for that request:
    'MALFORMED:<kind>' -> a broken body, 'BAD' -> HTTP 400 (echoing the key), else success.
    `fail_first` fails the first N calls with `fail_status`; `sleep_once` makes the first call
    sleep that long; `delay` holds every call that long (to measure concurrency)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def reset(self, fail_first=0, fail_status=500, sleep_once=0.0, delay=0.0):
        with self.lock:
            self.calls = []
            self.fail_first, self.fail_status = fail_first, fail_status
            self.sleep_once, self.delay = sleep_once, delay
            self.in_flight = self.max_in_flight = 0

    def handle(self, h):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            k = len(self.calls)
            body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
            self.calls.append({"path": h.path, "headers": dict(h.headers), "body": body})
            sleep = self.sleep_once if k == 0 else self.delay
            fail = k < self.fail_first
        try:
            if sleep:
                time.sleep(sleep)
            if fail:
                return self.send(h, self.fail_status, {"error": {"message": "overloaded"}})
            last = body["messages"][-1]["content"]
            text = last if isinstance(last, str) else " ".join(p["text"] for p in last if p["type"] == "text")
            if text.startswith("MALFORMED:"):
                kind = text.split(":", 1)[1].strip()
                raw = {
                    "notjson": b"<html>502 gateway</html>",
                    "nochoices": json.dumps({"id": "x", "object": "chat.completion"}).encode(),
                    "badtype": json.dumps({"choices": [{"index": 0, "message": {"content": 42}}]}).encode(),
                    "array": b"[1, 2]",
                }[kind]
                return self.send(h, 200, raw=raw)
            if text.startswith("BAD"):
                return self.send(h, 400, {"error": {"message": f"invalid api key {KEY}"}})
            n = body.get("n", 1)
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": f"echo[{i}] {text}"},
                    "finish_reason": "stop",
                }
                for i in reversed(range(n))
            ]  # out of order on purpose
            self.send(
                h,
                200,
                {
                    "id": "c",
                    "object": "chat.completion",
                    "choices": choices,
                    "usage": {"prompt_tokens": 5, "completion_tokens": 3 * n, "total_tokens": 5 + 3 * n},
                },
            )
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)
        finally:
            with self.lock:
                self.in_flight -= 1

    @staticmethod
    def send(h, status, obj=None, raw=None):
        data = raw if raw is not None else json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture
def make(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    server.reset()
    made = []

    def _make(**opts):
        spec = {
            "backend": "openai",
            "base_url": server.base_url,
            "api_key_env": KEY_ENV,
            "timeout_s": 5,
            "max_retries": 3,
            "backoff_s": 0.01,
            "max_concurrency": 4,
            "progress": False,
            **opts,
        }
        b = make_backend(spec, "judge-model")
        made.append(b)
        return b

    yield _make
    for b in made:
        b.close()


def assert_no_key(backend, results):
    for r in results:
        assert KEY not in repr(r)
    assert KEY not in repr(backend) and KEY not in json.dumps(backend.stats)


def test_success_with_an_image_as_base64_data_url(make, server, image_paths):
    b = make()
    reqs = [
        Request.from_prompt("img", "How many circles?", image=image_paths[3], system="Be brief."),
        Request.from_prompt("txt", "What is 2 + 2?"),
    ]
    out = b.generate(reqs, SamplingConfig(max_new_tokens=32, temperature=0, seed=5))
    assert [r.id for r in out] == ["img", "txt"]
    assert out[0].texts == ["echo[0] How many circles?"] and out[0].n_tokens == [3]
    assert out[0].finish_reasons == ["stop"] and out[1].texts == ["echo[0] What is 2 + 2?"]
    assert len(server.calls) == 2
    call = next(c for c in server.calls if c["body"]["messages"][0]["role"] == "system")
    assert call["path"] == "/v1/chat/completions"
    assert call["headers"]["Authorization"] == f"Bearer {KEY}"
    body = call["body"]
    assert body["model"] == "judge-model" and body["max_tokens"] == 32 and body["temperature"] == 0
    assert body["n"] == 1 and body["seed"] == 5
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    image_part, text_part = body["messages"][1]["content"]
    assert text_part == {"type": "text", "text": "How many circles?"}
    url = image_part["image_url"]["url"]
    assert image_part["type"] == "image_url" and url.startswith("data:image/jpeg;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.format == "JPEG" and img.mode == "RGB" and img.size == (96, 96)  # palette PNG -> RGB
    assert b.stats == {
        "requests": 2,
        "http_calls": 2,
        "retries": 0,
        "ok": 2,
        "errors": {},
        "retry_reasons": {},
    }
    assert_no_key(b, out)


def test_n_samples_come_back_in_index_order(make):
    out = make().generate([Request.from_prompt("a", "hi")], SamplingConfig(temperature=0.7, top_p=0.9, n=3))[
        0
    ]
    assert out.texts == ["echo[0] hi", "echo[1] hi", "echo[2] hi"]
    assert out.n_tokens == [-1, -1, -1]  # the API reports one total for n choices


@pytest.mark.parametrize("status", [500, 503, 429])
def test_5xx_and_429_are_retried_until_success(make, server, status):
    server.reset(fail_first=2, fail_status=status)
    b = make()
    out = b.generate([Request.from_prompt("a", "hi")])
    assert out[0].ok and out[0].texts == ["echo[0] hi"]
    assert len(server.calls) == 3
    kind = "rate_limit" if status == 429 else "server"
    assert b.stats["retries"] == 2 and b.stats["retry_reasons"] == {kind: 2} and b.stats["errors"] == {}


def test_retries_give_up_with_an_error_not_an_exception(make, server):
    server.reset(fail_first=100)
    b = make(max_retries=2)
    out = b.generate([Request.from_prompt("a", "hi")])
    assert not out[0].ok and "HTTP 500" in out[0].error and "3 tries" in out[0].error
    assert len(server.calls) == 3 and b.stats["errors"] == {"server": 1}


def test_backoff_is_exponential_jittered_and_seeded(make, server, monkeypatch):
    from capcurriculum.generation import openai_backend

    runs = []
    for seed in (3, 3, 4):
        waits: list[float] = []
        monkeypatch.setattr(openai_backend, "_sleep", waits.append)
        server.reset(fail_first=3)
        out = make(backoff_s=0.1, max_backoff_s=0.3, seed=seed).generate([Request.from_prompt("a", "hi")])
        assert out[0].ok and len(waits) == 3
        runs.append(waits)
    for k, w in enumerate(runs[0]):
        base = min(0.3, 0.1 * 2**k)
        assert 0.5 * base <= w < 1.5 * base
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_timeout_is_retried(make, server):
    server.reset(sleep_once=1.5)
    b = make(timeout_s=0.4)
    t = time.monotonic()
    out = b.generate([Request.from_prompt("a", "hi")])
    assert out[0].ok and out[0].texts == ["echo[0] hi"]
    assert time.monotonic() - t < 1.4  # did not wait for the slow call
    assert len(server.calls) == 2
    assert b.stats["retry_reasons"] == {"timeout": 1} and b.stats["ok"] == 1


def test_malformed_bodies_are_counted_errors(make, server):
    b = make()
    kinds = ["notjson", "nochoices", "badtype", "array"]
    reqs = [Request.from_prompt(k, f"MALFORMED:{k}") for k in kinds] + [Request.from_prompt("fine", "hello")]
    out = b.generate(reqs)
    assert [r.id for r in out] == kinds + ["fine"]
    for r in out[:4]:
        assert r.error.startswith("malformed response: ") and r.texts == []
    assert "not JSON" in out[0].error and "choices" in out[1].error and "int" in out[2].error
    assert out[4].ok
    assert len(server.calls) == 5  # not retried
    assert b.stats["errors"] == {"malformed": 4} and b.stats["ok"] == 1


def test_400_is_not_retried_and_the_key_never_leaks(make, server):
    b = make()
    out = b.generate([Request.from_prompt("bad", "BAD request"), Request.from_prompt("ok", "fine")])
    assert len(server.calls) == 2
    assert "HTTP 400" in out[0].error and "invalid api key ***" in out[0].error
    assert b.stats["errors"] == {"client": 1} and b.stats["retries"] == 0
    assert all(c["headers"]["Authorization"] == f"Bearer {KEY}" for c in server.calls)
    assert_no_key(b, out)


def test_max_concurrency_is_honoured(make, server):
    server.reset(delay=0.15)
    b = make(max_concurrency=3)
    out = b.generate([Request.from_prompt(f"r{i}", f"q{i}") for i in range(12)])
    assert [r.texts[0] for r in out] == [f"echo[0] q{i}" for i in range(12)]
    assert server.max_in_flight == 3


def test_connection_refused_is_retried_then_reported(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with OpenAIBackend(
        base_url=f"http://127.0.0.1:{port}/v1",
        model="m",
        api_key_env=KEY_ENV,
        max_retries=1,
        backoff_s=0.01,
        timeout_s=2,
        progress=False,
    ) as b:
        out = b.generate([Request.from_prompt("a", "hi")])
    assert "connection error" in out[0].error and b.stats["errors"] == {"connection": 1}
    assert b.stats["retries"] == 1 and KEY not in out[0].error


def test_unreadable_image_fails_its_request_only(make, server, tmp_path):
    b = make()
    missing = tmp_path / "gone.png"
    out = b.generate([Request.from_prompt("a", "hi", image=missing), Request.from_prompt("b", "hi")])
    assert str(missing) in out[0].error and out[1].ok
    assert len(server.calls) == 1 and b.stats["errors"] == {"image": 1}


def test_missing_key_and_bad_options(monkeypatch, server):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ValueError, match=KEY_ENV):
        OpenAIBackend(base_url=server.base_url, model="m", api_key_env=KEY_ENV)
    with pytest.raises(ValueError, match="max_concurrency"):
        OpenAIBackend(base_url=server.base_url, model="m", api_key_env=None, max_concurrency=0)
    with pytest.raises(ValueError, match="base_url"):
        OpenAIBackend(base_url="127.0.0.1:8000", model="m", api_key_env=None)
    with pytest.raises(ValueError, match="model"):
        OpenAIBackend(base_url=server.base_url, api_key_env=None)
    # no key configured: no Authorization header
    server.reset()
    with OpenAIBackend(base_url=server.base_url, model="m", api_key_env=None, progress=False) as b:
        assert b.generate([Request.from_prompt("a", "hi")])[0].ok
    assert "Authorization" not in server.calls[0]["headers"]


@pytest.mark.parametrize("headers", [False, True], ids=["trickled body", "trickled headers"])
def test_a_trickling_server_hits_the_whole_request_deadline(headers, trickle_server, monkeypatch):
    """A byte every 0.2 s never trips a per-read timeout of 1 s; the whole request's deadline does."""
    monkeypatch.setattr("capcurriculum.generation.openai_backend._sleep", lambda s: None)  # no backoff wait
    slow = trickle_server(interval=0.2, headers=headers)  # a whole answer would take 40 s (60 with headers)
    b = OpenAIBackend(model_ref="m", base_url=slow.url + "/v1", timeout_s=1, max_retries=1,
                      api_key_env=None, progress=False)
    t = time.monotonic()
    out = b.generate([Request.from_prompt("a", "hi")])
    took = time.monotonic() - t
    assert not out[0].ok and "within 1 s" in out[0].error
    assert 2 <= took < 6  # two tries of 1 s each
    assert slow.requests == 2 and b.stats["retry_reasons"] == {"timeout": 1} and b.stats["errors"] == {"timeout": 1}
