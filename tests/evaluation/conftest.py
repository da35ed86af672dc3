import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from capcurriculum.models import (
    build_processor,
    build_tiny_model,
    save_pretrained_dir,
    tiny_config,
    train_tokenizer,
)
from capcurriculum.models.init import world_texts
from capcurriculum.world.build import build_world
from capcurriculum.world.scene import WorldConfig


@pytest.fixture(scope="session")
def eval_world(tmp_path_factory):
    """A small world and an untrained tiny model saved as a from_pretrained directory."""
    root = tmp_path_factory.mktemp("eval_world")
    cfg = WorldConfig(seed=5, scenes={"pretrain": 16, "train": 4, "test": 8},
                      text_math={"pretrain": 16, "train": 4, "test": 6},
                      vis_math={"pretrain": 16, "train": 4, "test": 6}, perception_per_scene=2)
    build_world(cfg, root / "raw", root / "world", progress=False)
    processor = build_processor(train_tokenizer(world_texts(root / "raw", root / "world"), vocab_size=300),
                                image_size=96)
    save_pretrained_dir(build_tiny_model(tiny_config(processor.tokenizer), seed=0), processor, root / "model")
    return root / "raw", root / "world", root / "model"


KEY = "sk-judge-n3v3rl0gg3d-91c2"  # the judge tests' secret (test_judge.py sets it in the environment)


class ChatServer:
    """Answers every chat completion with `reply` (a str, or a function of the last user text);
    a user text starting with "BAD" gets HTTP 400 echoing the key, as careless servers do."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls: list[dict] = []
        self.reply = "yes"
        self.served_model = None  # the "model" a reply names (an endpoint's dated version); None: not said
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.calls.append({"headers": dict(self.headers), "body": body})
                parts = body["messages"][-1]["content"]
                if isinstance(parts, str):
                    parts = [{"type": "text", "text": parts}]
                text = " ".join(p["text"] for p in parts if p["type"] == "text")
                if text.startswith("BAD"):
                    return self.send(400, {"error": {"message": f"invalid api key {KEY}"}})
                reply = server.reply(text) if callable(server.reply) else server.reply
                message = {"role": "assistant", "content": reply}
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                named = {"model": server.served_model} if server.served_model else {}
                self.send(200, {"id": "c", "object": "chat.completion", "choices": [choice], **named})

            def send(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    s = ChatServer()
    yield s
    s.close()


