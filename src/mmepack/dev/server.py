"""The dev loop's one Triton server: explicit model control, loopback only, and nothing left
behind when the loop ends, however it ends.

Started as `unshare --pid --fork --kill-child tritonserver ...` when a PID namespace can be made
(the endpoint's guarantee, `mmepack.endpoint.server`): tritonserver is the namespace's first
process, so when it dies the kernel kills every Python stub with it, and `unshare` is tied to
this process by PR_SET_PDEATHSIG, so a SIGKILL of the loop takes the whole tree. No network
namespace: the loop talks to Triton's HTTP API on 127.0.0.1, and every listener is bound there
(metrics are off, since 2.51's metrics port would bind 0.0.0.0).

Reloads go through Triton's repository API (`POST /v2/repository/models/<name>/load`), which
swaps a model in only once the new one loaded: a failed reload leaves the previous one serving.
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mmepack.endpoint.server import namespace_problem
from mmepack.errors import MmepackError
from mmepack.triton.install import find_triton
from mmepack.triton.server import (
    detect_device,
    die_with_parent,
    free_ports,
    make_backend_dir,
    server_environment,
    stop_process_group,
)

_LOAD_TIMEOUT = 600.0
# Triton 2.51 logs `I... model_lifecycle.cc:472] "loading: <model>:<version>"`.
_LOADING_RE = re.compile(r'\] "?loading: ([^"\s]+):[0-9]+"?$', re.MULTILINE)


@dataclass(frozen=True)
class LoadResult:
    name: str
    ok: bool
    seconds: float
    error: str = ""


def _unshare() -> str | None:
    found = shutil.which("unshare")
    if found is None:
        found = next((p for p in ("/usr/bin/unshare", "/bin/unshare") if Path(p).is_file()), None)
    return found


class DevServer:
    """One tritonserver in explicit model-control mode over a staged repository."""

    def __init__(self, repository: Path, workdir: Path, *, isolate: bool = True) -> None:
        self.repository = repository
        self.workdir = workdir
        self.install = find_triton()
        self.device = detect_device()
        self.log_path = workdir / "tritonserver.log"
        self.isolation_problem = namespace_problem() if isolate else "isolation turned off"
        self.isolated = self.isolation_problem is None and _unshare() is not None
        self.http_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        """The process this loop started (`unshare`, or tritonserver itself)."""
        if self._process is None:
            raise MmepackError("the dev loop's Triton server is not running")
        return self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 120.0) -> None:
        python_minor = f"{sys.version_info.major}.{sys.version_info.minor}"
        backend_dir = make_backend_dir(self.install, self.workdir / "backends", python_minor)
        env = server_environment(self.install, self.workdir)
        for attempt in range(3):
            self.http_port, grpc_port = free_ports(2)
            command = [
                str(self.install.server_binary),
                f"--model-repository={self.repository}",
                f"--backend-directory={backend_dir}",
                "--model-control-mode=explicit",
                f"--http-port={self.http_port}",
                "--http-address=127.0.0.1",
                f"--grpc-port={grpc_port}",
                "--grpc-address=127.0.0.1",
                "--allow-metrics=false",
                "--exit-on-error=false",
                # A client that keeps its connection open would hold a stop for 30 s.
                "--exit-timeout-secs=5",
            ]
            if self.isolated:
                command = [str(_unshare()), "--pid", "--fork", "--kill-child", *command]
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.workdir,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
            atexit.register(self.stop)
            if self._wait_live(timeout):
                return
            tail = self.log_tail()
            self.stop()
            if "address already in use" in tail.lower() and attempt < 2:
                continue
            raise MmepackError(
                f"the dev loop's Triton server did not start within {timeout:.0f} s; its log "
                f"({self.log_path}) ends:\n{tail}"
            )

    def _wait_live(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                return False
            try:
                with urllib.request.urlopen(
                    f"http://{self.url}/v2/health/live", timeout=2
                ) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False

    def _post(self, path: str, timeout: float) -> tuple[int, str]:
        request = urllib.request.Request(f"http://{self.url}{path}", data=b"{}", method="POST")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", errors="replace")
            try:
                body = str(json.loads(body).get("error", body))
            except (ValueError, AttributeError):
                pass
            return exc.code, body

    def load(self, name: str, timeout: float = _LOAD_TIMEOUT) -> LoadResult:
        """Load (or reload) one model; Triton keeps the old one serving if this fails."""
        started = time.monotonic()
        try:
            status, body = self._post(f"/v2/repository/models/{name}/load", timeout)
        except OSError as exc:
            status, body = 0, f"the server did not answer ({exc})"
        seconds = time.monotonic() - started
        if status == 200:
            return LoadResult(name, True, seconds)
        return LoadResult(name, False, seconds, body or f"HTTP {status}")

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        """The server's log from byte `offset` (a load's own lines: what it loaded, why not)."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_since(0).splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server and its stubs (one process group; the namespace's end kills the
        rest)."""
        process, self._process = self._process, None
        if process is None:
            return
        stop_process_group(process, grace=20)
        atexit.unregister(self.stop)


def loaded_models(log_text: str) -> list[str]:
    """Models the server reports loading in a piece of its log, in order.

    Triton logs `loading: <name>:<version>` when it starts (re)loading a model version: the
    proof, from the server itself, of which steps an edit reloaded and which it left alone.
    """
    return [match.group(1) for match in _LOADING_RE.finditer(log_text)]
