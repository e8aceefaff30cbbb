"""A real Ray cluster of two nodes on this machine, for the Ray engine's tests: `ray start --head` and a second
`ray start --address`, each with one CPU, its own ports and, for the head, its own temp dir, so that it never meets
another Ray on the machine (or a helper's: `ray stop` would kill every Ray of the user, so teardown kills only
this cluster's processes, found from the two `ray start --block` processes down).

Token authentication stays on, with a token of this cluster's own (RAY_AUTH_TOKEN, never ~/.ray). The nodes'
workers import docqa from this checkout (PYTHONPATH) and load the bundled model offline.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import psutil

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")  # the `ray` of this interpreter's environment
START_TIMEOUT = 120.0


@dataclass
class RayCluster:
    address: str
    env: dict[str, str]  # what a driver (the CLI) needs to join: the token, and docqa importable
    starters: list[subprocess.Popen] = field(default_factory=list)

    def processes(self) -> list[psutil.Process]:
        """Every live process of this cluster: the `ray start` processes and all they started (raylets, GCS,
        agents, workers, actors)."""
        found = []
        for starter in self.starters:
            try:
                root = psutil.Process(starter.pid)
                found += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return found

    def workers(self, title: str) -> list[psutil.Process]:
        """This cluster's Ray worker processes whose title (`ray::<name>...`) starts with `title`."""
        found = []
        for process in self.processes():
            try:
                cmdline = process.cmdline()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if cmdline and cmdline[0].startswith(title):
                found.append(process)
        return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ports() -> list[str]:
    """A node's own ports: two nodes on one machine must not share the fixed defaults (52365, 8265…)."""
    names = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port")
    return [arg for name in names for arg in (name, str(free_port()))]


def _started(process: subprocess.Popen, log: Path) -> None:
    """Wait for `ray start` to say the node runs; its log on failure."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Ray runtime started" in text:
            return
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited {process.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"ray start did not finish within {START_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")


@contextmanager
def ray_cluster(temp: Path, token: str | None = None, cpus_per_node: int = 1) -> Iterator[RayCluster]:
    """Two nodes of `cpus_per_node` CPUs each, with `token` (default: a new one); `temp` should be a short path
    (Ray's sockets live under it)."""
    temp.mkdir(parents=True, exist_ok=True)
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token or secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0",
    }
    node_env = {**os.environ, **env}
    port = free_port()
    cluster = RayCluster(f"127.0.0.1:{port}", env)
    common = ["--block", "--num-cpus", str(cpus_per_node), "--disable-usage-stats"]
    try:
        for i, args in enumerate((
            ["--head", "--port", str(port), "--temp-dir", str(temp), "--include-dashboard", "false",
             "--dashboard-port", str(free_port())],
            ["--address", cluster.address],
        )):
            log = temp / f"node{i}.log"
            with open(log, "wb") as out:
                starter = subprocess.Popen([str(RAY), "start", *args, *common, *_ports()], env=node_env, stdout=out,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            cluster.starters.append(starter)
            _started(starter, log)
        yield cluster
    finally:
        for process in reversed(cluster.processes()):
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        for starter in cluster.starters:
            starter.wait(timeout=30)
