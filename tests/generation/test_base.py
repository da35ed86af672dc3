"""The generation interface: requests, sampling config, results, image loading, make_backend."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from capcurriculum.generation import (
    BACKENDS,
    Backend,
    ImageCache,
    ImageError,
    Request,
    Result,
    SamplingConfig,
    make_backend,
    template_messages,
)


def test_make_backend_rejects_unknown_backends_and_options(tiny_model_dir):
    with pytest.raises(ValueError, match=r"'backend' must be one of hf, vllm, openai") as err:
        make_backend({"backend": "tgi"}, tiny_model_dir)
    assert "'tgi'" in str(err.value)
    with pytest.raises(ValueError, match="no 'backend' key.*hf, vllm, openai"):
        make_backend({"batch_size": 4}, tiny_model_dir)
    with pytest.raises(TypeError, match="mapping"):
        make_backend("hf", tiny_model_dir)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['batchsize'\] for backend 'hf'.*batch_size"):
        make_backend({"backend": "hf", "batchsize": 4}, tiny_model_dir)
    with pytest.raises(
        ValueError, match=r"unknown option\(s\) \['api_key'\] for backend 'openai'.*api_key_env"
    ):
        make_backend({"backend": "openai", "base_url": "http://127.0.0.1:1/v1", "api_key": "x"}, "m")
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        make_backend({"backend": "vllm", "gpu_memory_utilization": 2.0}, tiny_model_dir)
    assert BACKENDS == ("hf", "vllm", "openai")


def test_backends_import_only_what_they_need(tiny_model_dir):
    """A judge (openai) needs neither torch nor transformers; making a vllm backend starts no engine
    and imports no vllm (the engine comes with the first generate)."""
    code = (
        "import sys; from capcurriculum.generation import make_backend\n"
        "b = make_backend({'backend': 'openai', 'base_url': 'http://127.0.0.1:1/v1', 'api_key_env': None}, 'm')\n"
        "assert b.model == 'm' and 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    had_vllm = "vllm" in sys.modules
    v = make_backend({"backend": "vllm", "dtype": "float32", "max_model_len": 512}, tiny_model_dir)
    assert v.engine_args["model"] == str(tiny_model_dir) and v.engine_args["dtype"] == "float32"
    assert v._llm is None and ("vllm" in sys.modules) == had_vllm
    v.close()
    v.close()
    with pytest.raises(RuntimeError, match="closed"):
        v.generate([Request.from_prompt("a", "hi")])


def test_sampling_config_validation():
    s = SamplingConfig()
    assert s.greedy and s.n == 1 and s.seed == 0
    assert not SamplingConfig(temperature=0.7).greedy
    for bad, field in [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"n": 0}, "n must"),
        ({"seed": -3}, "seed"),
        ({"max_new_tokens": 1.5}, "max_new_tokens"),
        ({"n": True}, "n must"),
    ]:
        with pytest.raises(ValueError, match=field):
            SamplingConfig(**bad)
    assert SamplingConfig.from_mapping({"max_new_tokens": 8, "temperature": 1.0, "n": 4}).n == 4
    with pytest.raises(ValueError, match=r"unknown sampling option\(s\) \['top_k'\]"):
        SamplingConfig.from_mapping({"top_k": 20})


def test_request_validation_and_helpers(tmp_path):
    r = Request.from_prompt("a", "How many?", image="x.png", system="Be brief.")
    assert r.messages == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "image", "image": "x.png"}, {"type": "text", "text": "How many?"}],
        },
    ]
    assert r.image_sources() == ["x.png"]
    assert template_messages(r)[1]["content"] == [{"type": "image"}, {"type": "text", "text": "How many?"}]
    assert Request.from_prompt("b", "hi").image_sources() == []
    for messages, match in [
        ([], "non-empty"),
        ("hello", "non-empty"),
        ([{"content": "x"}], "role"),
        ([{"role": "tool", "content": "x"}], "role 'tool'"),
        ([{"role": "user", "content": [{"type": "video", "video": "v.mp4"}]}], "type one of"),
        ([{"role": "user", "content": [{"type": "image"}]}], "path or a PIL.Image"),
        ([{"role": "user", "content": [{"type": "text", "text": 3}]}], "str 'text'"),
    ]:
        with pytest.raises(ValueError, match=match):
            Request(messages=messages, id="r")
    with pytest.raises(ValueError, match="id"):
        Request.from_prompt("", "hi")


def test_image_cache_loads_once_converts_to_rgb_and_remembers_failures(tmp_path, monkeypatch):
    p = tmp_path / "pal.png"
    Image.new("P", (8, 8)).save(p)
    rgba = Image.new("RGBA", (4, 4), (1, 2, 3, 4))
    cache = ImageCache()
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda path, *a, **k: opened.append(path) or real_open(path, *a, **k))
    a = cache.get(str(p))
    b = cache.get(p)  # same path as a PathLike: same cache entry
    assert a is b and a.mode == "RGB" and opened == [str(p)]
    assert cache.get(rgba).mode == "RGB" and cache.get(rgba) is cache.get(rgba)
    missing = tmp_path / "missing.png"
    for _ in range(2):
        with pytest.raises(ImageError, match=str(missing)):
            cache.get(missing)
    assert opened.count(str(missing)) == 1


class Echo(Backend):
    name = "echo"

    def __init__(self):
        self.calls = 0
        self.closed = False

    def _generate(self, requests, sampling):
        self.calls += 1
        return [
            Result(id=r.id, texts=[r.messages[-1]["content"]] * sampling.n, n_tokens=[1] * sampling.n)
            if r.id != "bad"
            else Result.failed(r.id, "boom")
            for r in requests
        ]

    def close(self):
        self.closed = True


def test_backend_contract():
    with Echo() as b:
        out = b.generate(
            [
                Request(messages=[{"role": "user", "content": "x"}], id="a"),
                Request(messages=[{"role": "user", "content": "y"}], id="bad"),
            ],
            SamplingConfig(n=2),
        )
        assert out[0].texts == ["x", "x"] and out[0].ok and out[0].text == "x"
        assert not out[1].ok and out[1].texts == []
        with pytest.raises(RuntimeError, match="boom"):
            _ = out[1].text
        assert b.generate([]) == [] and b.calls == 1
        with pytest.raises(ValueError, match="duplicate request id 'a'"):
            b.generate([Request.from_prompt("a", "1"), Request.from_prompt("a", "2")])
        with pytest.raises(TypeError, match="Request"):
            b.generate([{"id": "a", "messages": []}])
    assert b.closed
