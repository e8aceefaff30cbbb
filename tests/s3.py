"""A real S3-compatible server for the tests: moto in server mode, a subprocess speaking the S3 API over HTTP on
127.0.0.1 (boto3 and s3fs talk to it over the network, as to any S3-compatible store).

One server per test session; each test gets a bucket of its own. The server's request log (one line per request,
`"GET /bucket/key HTTP/1.1" 206 -`) is kept, so a test can tell what was downloaded.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
from botocore.config import Config

KEY_ID = "docqa-test-key"  # moto accepts any credentials; clients must still send some
SECRET = "docqa-test-secret"
REGION = "us-east-1"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug colours some lines (206, 204, errors)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server:
    """moto's server as a subprocess on a free port of 127.0.0.1, its request log in `log_path`."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = Path(log_path)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto's server exited with {self._process.returncode}: {self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto's server did not answer on {self.endpoint} within {timeout:.0f} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def client(self):
        """A boto3 S3 client of the server, with the test credentials given explicitly (not from the environment)."""
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEY_ID,
                            aws_secret_access_key=SECRET, region_name=REGION, config=Config(retries={"max_attempts": 1}))

    def requests(self) -> list[str]:
        """The request lines served so far (`GET /bucket/key?... HTTP/1.1" 200`), oldest first."""
        lines = ANSI.sub("", self.log_path.read_text(errors="replace")).splitlines()
        return [line.split('"', 1)[1] for line in lines if line.startswith("127.0.0.1 - - [") and '"' in line]

    def env(self) -> dict[str, str]:
        """The environment a client of this server reads: the test credentials and the endpoint, no profile files."""
        return {
            "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint, "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials", "AWS_CONFIG_FILE": "/nonexistent/config",
        }


class Bucket:
    """A fresh bucket of the server's, with helpers to put and delete objects and name their URLs."""

    def __init__(self, server: S3Server, prefix: str = "t") -> None:
        self.server = server
        self.client = server.client()
        self.name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=self.name)

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}" if key else f"s3://{self.name}"

    def put(self, key: str, data: bytes) -> str:
        """Store `data` at `key`; returns the object's URL."""
        self.client.put_object(Bucket=self.name, Key=key, Body=data)
        return self.url(key)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.name, Key=key)

    def remove(self) -> None:
        """Empty and delete the bucket."""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            for item in page.get("Contents", []):
                self.client.delete_object(Bucket=self.name, Key=item["Key"])
        self.client.delete_bucket(Bucket=self.name)
