import os

import pytest

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
