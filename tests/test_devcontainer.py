"""The devcontainer definition: valid JSONC, built from the project's Dockerfile, MLflow port forwarded,
GPU optional, and no secret values in it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEVCONTAINER = REPO / ".devcontainer" / "devcontainer.json"


def strip_jsonc(text: str) -> str:
    """JSONC -> JSON: drop // and /* */ comments outside strings, then trailing commas.

    A tokenizer, not a regex over the whole file, so "//" inside a string (a URL) survives; the
    result then goes through the strict json parser, so anything else malformed still fails.
    """
    out, i, n = [], 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            out.append(text[i:end + 1])
            i = end + 1
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else n
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ValueError("unterminated /* comment")
            i = end + 2
        else:
            out.append(char)
            i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


def load_devcontainer() -> dict:
    try:
        return json.loads(strip_jsonc(DEVCONTAINER.read_text()))
    except json.JSONDecodeError as error:
        pytest.fail(f"{DEVCONTAINER.relative_to(REPO)} is not valid JSONC: {error}")


def test_strip_jsonc_keeps_slashes_inside_strings():
    text = '{"url": "http://x//y", /* c */ "a": [1, 2,], // tail\n "q": "say \\"//\\""}'
    assert json.loads(strip_jsonc(text)) == {"url": "http://x//y", "a": [1, 2], "q": 'say "//"'}


def test_devcontainer_builds_from_the_project_dockerfile():
    config = load_devcontainer()
    build = config["build"]
    dockerfile = (DEVCONTAINER.parent / build["dockerfile"]).resolve()
    assert dockerfile == REPO / "Dockerfile" and dockerfile.is_file()
    assert (DEVCONTAINER.parent / build["context"]).resolve() == REPO  # .dockerignore applies there


def test_devcontainer_forwards_mlflow_and_gpu_is_optional():
    config = load_devcontainer()
    assert 5000 in config["forwardPorts"]
    assert config["hostRequirements"]["gpu"] == "optional"
    assert "-e ." in config["postCreateCommand"]


def test_devcontainer_holds_no_secret_values():
    # Secrets may only be referenced from the host's environment (${localEnv:NAME}).
    for key, value in load_devcontainer().get("remoteEnv", {}).items():
        if re.search(r"TOKEN|KEY|SECRET|PASSWORD", key):
            assert re.fullmatch(r"\$\{localEnv:[A-Z_]+\}", value), key
