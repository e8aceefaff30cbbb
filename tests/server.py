"""A real `docqa serve` in a subprocess on 127.0.0.1: free port, its own data dir, ready when /readyz says so."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Sequence

import httpx

# `docqa` is `service.cli:main`; running it through this interpreter works with or without the console script.
ENTRY = "from service.cli import main; main()"


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docqa_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The parent's environment without its DOCQA_* settings, plus offline model loading and the extras."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQA_")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", DOCQA_LOG_JSON="true", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


class DocqaServer:
    """One `docqa --data-dir DIR serve --port PORT` process; a context manager that waits for readiness.
    `options` replaces the global options before `serve` (default: `--data-dir DIR`)."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None, startup_timeout: float = 120.0,
                 data_dir: Path | None = None, options: Sequence[str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.data_dir = Path(data_dir) if data_dir else self.workdir / "data"
        self.options = ["--data-dir", str(self.data_dir)] if options is None else list(options)
        self.log_path = self.workdir / "server.log"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        """What the server runs with: `docqa_environment` with this server's extras."""
        return docqa_environment(self.extra_env)

    def start(self) -> "DocqaServer":
        """Spawn the server (cwd is the work dir, so no stray .env is read) and wait for /readyz."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-c", ENTRY, *self.options, "serve",
                   "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=self.workdir, env=self.environment(),
                                            stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Poll /readyz until 200; fail with the server's log if it exits or never gets ready."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"docqa serve exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"docqa serve not ready after {self.startup_timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's combined stdout/stderr."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM for a graceful shutdown (jobs finish, vectors saved); SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> "DocqaServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
    """Poll GET /v1/jobs/{id} until it finishes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout}s: {job}")


def ask(client: httpx.Client, question: str, **fields: Any) -> dict[str, Any]:
    """POST /v1/ask, which must answer 200; the JSON body."""
    response = client.post("/v1/ask", json={"question": question, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def read_sse(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event, parsed data) pairs of a text/event-stream body; comments (pings) skipped."""
    events, name, data = [], None, []
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and name is not None:
            events.append((name, json.loads("\n".join(data))))
            name, data = None, []
    return events
