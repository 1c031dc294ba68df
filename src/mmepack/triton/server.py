"""Run a real local Triton server for tests, and make sure it never outlives its owner.

Pants runs test files in parallel, so each server gets its own free loopback ports and its own
folders, and is tied to the test process: it is stopped on exit and killed by the kernel
(PR_SET_PDEATHSIG) if the test process dies without cleaning up.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mmepack.errors import MmepackError
from mmepack.files import claim_for_cleanup
from mmepack.triton.install import TritonInstall, find_triton

_ONNXRUNTIME_BACKEND = Path(__file__).parent / "backends" / "onnxruntime" / "model.py"
_PR_SET_PDEATHSIG = 1
# Where Triton's Python backend unpacks each EXECUTION_ENV_PATH archive (pb_env.cc).
_UNPACKED_ENV_PREFIX = "/tmp/python_env_"
_ERROR_LINE_RE = re.compile(r"^E\d{4} ")
# Printed by every CPU-only start; not why a model failed.
_HARMLESS = ("CudaDriverHelper has not been initialized",)


def detect_device() -> str:
    """'GPU' when `nvidia-smi` lists a GPU, else 'CPU'."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "CPU"
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return "CPU"
    return "GPU" if listing.returncode == 0 and "GPU " in listing.stdout else "CPU"


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def make_backend_dir(install: TritonInstall, target: Path, python_minor: str) -> Path:
    """A backend directory: the Python backend with the stub for `python_minor`, plus the local
    Python-based stand-in for the ONNX Runtime backend the pytriton build lacks."""
    python = target / "python"
    python.mkdir(parents=True)
    for item in install.python_backend.iterdir():
        if item.is_file():  # copies: Triton refuses backend libraries that resolve elsewhere
            shutil.copy2(item, python / item.name)
    shutil.copy2(install.stub_for(python_minor), python / "triton_python_backend_stub")
    onnx = target / "onnxruntime"
    onnx.mkdir()
    shutil.copy2(_ONNXRUNTIME_BACKEND, onnx / "model.py")
    return target


def server_environment(install: TritonInstall, workdir: Path) -> dict[str, str]:
    """The environment a local tritonserver runs with (shared with the endpoint's server).

    The stub's embedded Python takes its prefix from the first `python3` on PATH; point it at
    this process's interpreter so steps without EXECUTION_ENV_PATH see this process's packages.
    A venv must be entered through its own bin/ (its pyvenv.cfg sits beside it), so a symlink
    shim is only made when that folder has no `python3`.
    """
    env = dict(os.environ)
    exe_dir = Path(sys.executable).parent
    first = [str(exe_dir)]
    if not (exe_dir / "python3").exists():
        shim = workdir / "python-shim"
        shim.mkdir(exist_ok=True)
        if not (shim / "python3").exists():
            (shim / "python3").symlink_to(sys.executable)
        first.insert(0, str(shim))
    path = env.get("PATH") or "/usr/local/bin:/usr/bin:/bin"
    env["PATH"] = os.pathsep.join([*first, path])
    libdirs = [str(install.libs), str(sysconfig.get_config_var("LIBDIR") or "")]
    if env.get("LD_LIBRARY_PATH"):
        libdirs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(d for d in libdirs if d)
    env.pop("PYTHONPATH", None)
    return env


def die_with_parent() -> None:
    """preexec_fn: the kernel SIGKILLs this child when the process that started it dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: the atexit hook still stops the server
        pass


def stop_process_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM a server's process group, SIGKILL it after `grace` seconds, and SIGKILL it once
    more regardless: the Python stubs share the group and can linger after the server exits."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class TritonServer:
    """One tritonserver process serving one model repository on loopback."""

    def __init__(self, model_repository: Path, workdir: Path, python_minor: str | None = None):
        self.model_repository = model_repository
        self.workdir = workdir
        self.python_minor = python_minor or f"{sys.version_info.major}.{sys.version_info.minor}"
        self.install = find_triton()
        self.device = detect_device()
        self.log_path = workdir / "tritonserver.log"
        self.http_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._unpacked: set[str] = set()

    @property
    def pid(self) -> int:
        if self._process is None:
            raise MmepackError("the Triton server is not running")
        return self._process.pid

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def _environment(self) -> dict[str, str]:
        return server_environment(self.install, self.workdir)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def log_errors(self) -> str:
        """The lines of the server log that say why a model failed: error records and the
        UNAVAILABLE rows of Triton's model status table."""
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        picked = [
            line.strip(" |")
            for line in text
            if (_ERROR_LINE_RE.match(line) and not any(n in line for n in _HARMLESS))
            or "UNAVAILABLE" in line
            or line.startswith("error:")
        ]
        return "\n".join(dict.fromkeys(picked))

    def start(self, timeout: float = 300.0) -> None:
        backend_dir = make_backend_dir(self.install, self.workdir / "backends", self.python_minor)
        for attempt in range(3):
            self.http_port, grpc_port, metrics_port = free_ports(3)
            argv = [
                str(self.install.server_binary),
                f"--model-repository={self.model_repository}",
                f"--backend-directory={backend_dir}",
                f"--http-port={self.http_port}",
                f"--grpc-port={grpc_port}",
                f"--metrics-port={metrics_port}",
                "--http-address=127.0.0.1",
                "--grpc-address=127.0.0.1",
                "--exit-on-error=true",
                "--strict-readiness=true",
            ]
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._environment(),
                    cwd=self.workdir,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
            atexit.register(self.stop)
            if self._wait_ready(timeout):
                self._claim_unpacked_environments()
                return
            tail = self.log_tail()
            errors = self.log_errors()
            self.stop()
            if "address already in use" in tail.lower() and attempt < 2:
                continue
            raise MmepackError(
                f"Triton failed to load the models in {self.model_repository}; the server "
                f"said:\n{errors or tail}"
            )

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        url = f"http://{self.url}/v2/health/ready"
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        return False

    def metadata(self) -> dict[str, Any]:
        """The server's `/v2` metadata (name, version, extensions)."""
        with urllib.request.urlopen(f"http://{self.url}/v2", timeout=10) as response:
            data: dict[str, Any] = json.load(response)
        return data

    def unpacked_environments(self) -> set[str]:
        """Folders where the Python backend unpacked EXECUTION_ENV_PATH archives for this
        server's stubs. The backend always uses /tmp/python_env_XXXXXX (TMPDIR is ignored), so
        they are found from what each stub has mapped."""
        found: set[str] = set()
        if self._process is None:
            return found
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) != self._process.pid:
                    continue
                maps = (proc / "maps").read_text()
            except (OSError, ValueError, IndexError):
                continue
            for line in maps.splitlines():
                path = line.split(None, 5)[-1]
                if path.startswith(_UNPACKED_ENV_PREFIX):
                    name = path[len(_UNPACKED_ENV_PREFIX) :].split("/", 1)[0]
                    found.add(_UNPACKED_ENV_PREFIX + name)
        return found

    def _claim_unpacked_environments(self) -> None:
        """Record the unpacked environments in the workdir, so stop() removes them, and the
        next run removes them if this process is killed first (files.scratch_dir)."""
        self._unpacked = self.unpacked_environments()
        if self._unpacked:
            claim_for_cleanup(self.workdir, sorted(self._unpacked))

    def stop(self) -> None:
        """Stop the server and every stub it started (they share its process group), and
        remove the environments its Python backend unpacked."""
        process, self._process = self._process, None
        if process is None:
            return
        stop_process_group(process, grace=20)
        atexit.unregister(self.stop)
        for folder in self._unpacked:
            shutil.rmtree(folder, ignore_errors=True)
        self._unpacked = set()
