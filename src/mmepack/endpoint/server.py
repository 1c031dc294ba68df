"""Start tritonserver exactly as SageMaker's MME container does, and talk to its SageMaker port.

Owns: the server's command line (the container's `serve` script in multi-model mode, including
its `SAGEMAKER_TRITON_*` variables), where the server runs (a private network, PID and mount
namespace when one can be made, else free loopback ports with a warning), the Unix socket relay
that is the only way into that namespace, noticing when the server dies, and stopping everything
it started.

Why a namespace: Triton 2.51's SageMaker listener binds 0.0.0.0 and has no address flag. In a
private network namespace nothing it opens is reachable from another host; the PID namespace
makes the kernel kill the server and every Python stub when the namespace's first process dies,
so nothing outlives the endpoint even when its owner is killed outright. The mount namespace gives
the server its own /dev/shm (the Python backend's regions hold request data, mode 0644 upstream)
and its own /tmp inside the work folder (the backend unpacks environments into /tmp/python_env_*),
so a killed endpoint leaves nothing outside its work folder, which the next run removes.
"""

from __future__ import annotations

import atexit
import functools
import http.client
import importlib.resources
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mmepack.endpoint import sandbox
from mmepack.errors import MmepackError
from mmepack.files import claim_for_cleanup
from mmepack.triton.install import find_triton
from mmepack.triton.server import (
    detect_device,
    die_with_parent,
    free_ports,
    make_backend_dir,
    server_environment,
    stop_process_group,
)

# The container's SageMaker port (SAGEMAKER_BIND_TO_PORT overrides it); inside a private
# namespace it never clashes with anything.
DEFAULT_SAGEMAKER_PORT = 8080
TARGET_MODEL_HEADER = "X-Amzn-SageMaker-Target-Model"
_ERROR_LINE_RE = re.compile(r"^E\d{4} ")
_HARMLESS = ("CudaDriverHelper has not been initialized",)
_UNIX_PATH_MAX = 100  # a Unix socket path has room for 107 bytes
# Where the Python backend unpacks EXECUTION_ENV_PATH archives (hard-coded in pb_env.cc).
_UNPACKED_ENV_PREFIX = "/tmp/python_env_"
SHM_DIR = Path("/dev/shm")


def shm_prefix(workdir: Path) -> str:
    """The Python backend's shared-memory region prefix for a server without a private
    /dev/shm: named after its work folder, so the next run can find a killed run's regions."""
    return f"mmepack_{workdir.name}_"


def remove_shm_regions(prefix: str) -> None:
    if "/" in prefix or not prefix.startswith("mmepack_"):
        return
    for region in SHM_DIR.glob(f"{prefix}*"):
        try:
            region.unlink()
        except OSError:
            pass


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a path-based Unix socket (the relay into the server's namespace)."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            if len(self._path.encode()) < _UNIX_PATH_MAX:
                sock.connect(self._path)
            else:  # a deep work folder: reach the socket through an open handle on its folder
                folder = os.open(os.path.dirname(self._path), os.O_RDONLY | os.O_DIRECTORY)
                try:
                    sock.connect(f"/proc/self/fd/{folder}/{os.path.basename(self._path)}")
                finally:
                    os.close(folder)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def sagemaker_arguments(
    repository: Path, port: int, environ: Mapping[str, str], namespacing: bool | None = None
) -> list[str]:
    """tritonserver flags of the MME container's `serve` script, from the same variables.

    `namespacing` None follows the container: on, unless SAGEMAKER_TRITON_DISABLE_MODEL_NAMESPACING
    is set, whose value the script passes straight to --model-namespacing (so "false" turns it
    off). True/False overrides that.
    """
    args = [
        "--allow-sagemaker=true",
        "--allow-grpc=false",
        "--allow-http=false",
        "--allow-metrics=false",
        "--model-control-mode=explicit",
        f"--model-repository={repository}",
    ]
    if namespacing is None:
        value = environ.get("SAGEMAKER_TRITON_DISABLE_MODEL_NAMESPACING") or "true"
    else:
        value = "true" if namespacing else "false"
    args.append(f"--model-namespacing={value}")
    args.append(f"--sagemaker-port={port}")
    optional = {
        "SAGEMAKER_SAFE_PORT_RANGE": "--sagemaker-safe-port-range={}",
        "SAGEMAKER_TRITON_BUFFER_MANAGER_THREAD_COUNT": "--buffer-manager-thread-count={}",
        "SAGEMAKER_TRITON_THREAD_COUNT": "--sagemaker-thread-count={}",
        "SAGEMAKER_TRITON_LOG_INFO": "--log-info={}",
        "SAGEMAKER_TRITON_LOG_WARNING": "--log-warning={}",
        "SAGEMAKER_TRITON_LOG_ERROR": "--log-error={}",
        "SAGEMAKER_TRITON_TENSORFLOW_VERSION": "--backend-config=tensorflow,version={}",
    }
    args.append(f"--log-verbose={environ.get('SAGEMAKER_TRITON_LOG_VERBOSE') or 'true'}")
    for variable, flag in optional.items():
        if environ.get(variable):
            args.append(flag.format(environ[variable]))
    shm_default = environ.get("SAGEMAKER_TRITON_SHM_DEFAULT_BYTE_SIZE") or "16777216"
    shm_growth = environ.get("SAGEMAKER_TRITON_SHM_GROWTH_BYTE_SIZE") or "1048576"
    args.append(f"--backend-config=python,shm-default-byte-size={shm_default}")
    args.append(f"--backend-config=python,shm-growth-byte-size={shm_growth}")
    if environ.get("SAGEMAKER_TRITON_ADDITIONAL_ARGS"):
        args.extend(shlex.split(environ["SAGEMAKER_TRITON_ADDITIONAL_ARGS"]))
    return args


def _tool(name: str) -> str | None:
    """A system tool, also where a minimal PATH (a Pants sandbox) does not look: sbin."""
    found = shutil.which(name)
    if found is None:
        found = next(
            (
                str(p)
                for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
                if (p := Path(d) / name).is_file()
            ),
            None,
        )
    return found


@functools.lru_cache(maxsize=1)
def namespace_problem() -> str | None:
    """None when a private network+PID namespace can be made here, else why not."""
    unshare, ip = _tool("unshare"), _tool("ip")
    if unshare is None or ip is None:
        return "`unshare` or `ip` is not installed"
    probe = [unshare, "--net", "--pid", "--fork", "--kill-child", ip, "link", "set", "lo", "up"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`unshare --net --pid` failed: {exc}"
    if done.returncode != 0:
        return f"`unshare --net --pid` failed: {done.stderr.strip() or done.returncode}"
    return None


def _sandbox_source() -> str:
    source = importlib.resources.files(sandbox.__package__ or "mmepack.endpoint")
    return source.joinpath("sandbox.py").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def private_files_problem() -> str | None:
    """None when the sandbox can also make a private mount namespace with its own /dev/shm
    (needs root or a user namespace), else why not."""
    unshare = _tool("unshare")
    if unshare is None:
        return "`unshare` is not installed"
    probe = [unshare, "--mount", "--fork", sys.executable, "-c", _sandbox_source(), "--probe"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`unshare --mount` failed: {exc}"
    if done.returncode != 0:
        lines = (done.stderr.strip() or str(done.returncode)).splitlines()
        return f"`unshare --mount` with a private /dev/shm failed: {lines[-1]}"
    return None


def children_by_scan(pid: int) -> list[int]:
    """Host PIDs whose parent is `pid`, from a scan of /proc (works on every kernel)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def find_descendant(root: int, executable_suffix: str, depth: int = 4) -> int | None:
    """Host PID of the first process under `root` whose argv[0] ends with the suffix."""
    level = [root]
    for _ in range(depth):
        nxt: list[int] = []
        for pid in level:
            for child in children_by_scan(pid):
                try:
                    argv0 = (Path("/proc") / str(child) / "cmdline").read_bytes().split(b"\0")[0]
                except OSError:
                    continue
                if argv0.decode(errors="replace").endswith(executable_suffix):
                    return child
                nxt.append(child)
        level = nxt
    return None


class MmeServer:
    """One tritonserver started the MME container's way, reachable only by this process."""

    def __init__(
        self,
        workdir: Path,
        *,
        namespacing: bool | None = None,
        isolate: bool = True,
        environ: Mapping[str, str] | None = None,
        python_minor: str | None = None,
    ):
        self.workdir = workdir
        self.repository = workdir / "empty-repository"  # as /tmp/sagemaker in the container
        self.environ = dict(os.environ if environ is None else environ)
        self.namespacing = namespacing
        self.python_minor = python_minor or f"{sys.version_info.major}.{sys.version_info.minor}"
        self.install = find_triton()
        self.device = detect_device()
        self.log_path = workdir / "tritonserver.log"
        self.socket_path = workdir / "sagemaker.sock"
        self.isolation_problem = namespace_problem() if isolate else "isolation turned off"
        self.isolated = self.isolation_problem is None
        # A private /dev/shm and /tmp (mount namespace) need the network+PID sandbox too.
        self.files_problem = private_files_problem() if self.isolated else "no private namespace"
        self.private_files = self.files_problem is None
        self.private_tmp = workdir / "tmp"
        self.shm_prefix = None if self.private_files else shm_prefix(workdir)
        self.port = 0
        self.stopping = False
        self._process: subprocess.Popen[bytes] | None = None
        self._server_pid: int | None = None

    @property
    def server_pid(self) -> int:
        """Host PID of tritonserver itself (its Python stubs are its children)."""
        if self._process is None:
            raise MmepackError("the endpoint's Triton server is not running")
        if self._server_pid is None:
            self._server_pid = (
                find_descendant(self._process.pid, "tritonserver")
                if self.isolated
                else self._process.pid
            )
        if self._server_pid is None:
            raise MmepackError("cannot find the tritonserver process under the sandbox")
        return self._server_pid

    @property
    def arguments(self) -> list[str]:
        args = sagemaker_arguments(self.repository, self.port, self.environ, self.namespacing)
        if self.shm_prefix is not None:
            args.append(f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}")
        return args

    @property
    def namespacing_on(self) -> bool:
        flag = next(a for a in self.arguments if a.startswith("--model-namespacing="))
        return flag.split("=", 1)[1].lower() in ("true", "1", "on", "yes")

    def start(self, timeout: float = 120.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.repository.mkdir(exist_ok=True)
        self.stopping = False
        backend_dir = make_backend_dir(self.install, self.workdir / "backends", self.python_minor)
        env = server_environment(self.install, self.workdir)
        if self.isolated:
            self.port = int(self.environ.get("SAGEMAKER_BIND_TO_PORT") or DEFAULT_SAGEMAKER_PORT)
        else:
            print(
                f"mmepack: warning: cannot make a private network namespace "
                f"({self.isolation_problem}); Triton 2.51's SageMaker port binds 0.0.0.0, so "
                "this endpoint's server is reachable from other hosts while it runs",
                file=sys.stderr,
                flush=True,
            )
            self.port = free_ports(1)[0]
        if self.isolated and not self.private_files:
            print(
                f"mmepack: warning: cannot give the server a private /dev/shm "
                f"({self.files_problem}); the Python backend's shared memory (request data) is "
                "then readable by other local users, and a killed endpoint's unpacked "
                "environments in /tmp/python_env_* are removed only when the next run finds "
                "them claimed",
                file=sys.stderr,
                flush=True,
            )
        command = [
            str(self.install.server_binary),
            *self.arguments,
            f"--backend-directory={backend_dir}",
        ]
        if self.isolated:
            files: list[str] = []
            if self.private_files:
                self.private_tmp.mkdir(mode=0o700, exist_ok=True)
                files = [f"--private-files={self.private_tmp}"]
            command = [
                str(_tool("unshare")),
                "--net",
                "--pid",
                *(["--mount"] if self.private_files else []),
                "--fork",
                "--kill-child",
                sys.executable,
                "-c",
                _sandbox_source(),
                f"--socket={self.socket_path}",
                f"--port={self.port}",
                f"--log={self.log_path}",
                f"--ip={_tool('ip')}",
                *files,
                "--",
                *command,
            ]
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
        self._wait_ping(timeout)

    def _wait_ping(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                break
            try:
                if self.request("GET", "/ping", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        tail = self.log_tail()
        self.stop()
        raise MmepackError(
            f"the endpoint's Triton server did not answer /ping within {timeout:.0f} s; its log "
            f"({self.log_path}) ends:\n{tail}"
        )

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.isolated:
            return _UnixHTTPConnection(str(self.socket_path), timeout)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Response:
        """One request to the server's SageMaker port; OSError when it cannot be reached."""
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            reply = conn.getresponse()
            data = reply.read()
            return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, data)
        except http.client.HTTPException as exc:
            raise OSError(f"the server closed the connection ({exc!r})") from exc
        finally:
            conn.close()

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exit_status(self) -> int | None:
        """The server's exit status once it has ended on its own (not through stop()), else
        None. With the sandbox, a server killed by signal N reads 128 + N."""
        process = self._process
        if process is None or self.stopping:
            return None
        return process.poll()

    def claim_unpacked_environments(self) -> None:
        """Without a private /tmp, record the environments the Python backend unpacked into
        the host's /tmp/python_env_* in the work folder's claims, so stop() or, after a kill,
        the next run removes them (see files.remove_tree)."""
        if self.private_files or self._process is None:
            return
        found: set[str] = set()
        try:
            stubs = children_by_scan(self.server_pid)
        except MmepackError:
            return
        for pid in stubs:
            try:
                maps = (Path("/proc") / str(pid) / "maps").read_text()
            except OSError:
                continue
            for line in maps.splitlines():
                path = line.split(None, 5)[-1]
                if path.startswith(_UNPACKED_ENV_PREFIX):
                    found.add(
                        _UNPACKED_ENV_PREFIX + path[len(_UNPACKED_ENV_PREFIX) :].split("/")[0]
                    )
        if found:
            claim_for_cleanup(self.workdir, sorted(found))

    def log_text(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_errors(self, since: int = 0) -> str:
        """Error records in the log after byte offset `since` (why a load failed)."""
        text = self.log_text()[since:].splitlines()
        picked = [
            line.strip(" |")
            for line in text
            if (_ERROR_LINE_RE.match(line) and not any(h in line for h in _HARMLESS))
            or "UNAVAILABLE" in line
        ]
        return "\n".join(dict.fromkeys(picked))

    def stop(self) -> None:
        """Stop the server and its stubs; the namespace's end kills anything left."""
        self.stopping = True
        process, self._process = self._process, None
        self._server_pid = None
        if process is None:
            return
        stop_process_group(process, grace=30)
        atexit.unregister(self.stop)
        if self.shm_prefix is not None:  # a server that died or was killed leaves them
            remove_shm_regions(self.shm_prefix)
