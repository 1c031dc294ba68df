"""A real S3 endpoint on loopback for tests: a moto server subprocess whose request log can be
counted, so a test can prove that something was (or was not) downloaded."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "AKIAMMEPACKDVCTEST01"
SECRET_KEY = "mmepack-dvc-secret-0123456789abcdefSECRET"


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block runs.

    A port merely found free can be taken by another test's server before the test connects
    (CI once saw a parallel moto answer "access denied" there); a socket bound but never
    listening keeps the port for us and makes every connect fail with ECONNREFUSED.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Moto:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def object_gets(self, bucket: str) -> int:
        """GET requests for DVC objects in `bucket` that the server answered, from its log."""
        text = self.log.read_text(errors="replace")
        return len(re.findall(rf'"GET /{bucket}/\S*files/md5/\S+ HTTP/1.1" 200', text))


def start_moto(log: Path, extra_env: dict[str, str] | None = None) -> Moto:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        **(extra_env or {}),
    }
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    handle.close()
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                return Moto(url, log, process)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"moto server on {url} did not start")
            time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def aws_env(base: Path, endpoint: str) -> dict[str, str]:
    """This process's environment with AWS pointed only at `endpoint` (no profile files)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=str(base / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(base / "no-aws-credentials"),
        AWS_ENDPOINT_URL_S3=endpoint,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        DVC_NO_ANALYTICS="1",
    )
    return env


def create_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
