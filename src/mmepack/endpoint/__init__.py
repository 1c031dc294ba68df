"""A local SageMaker-style multi-model endpoint: artifacts loaded and invoked as production does.

SageMaker's MME container starts Triton with its SageMaker front end, explicit model control, an
empty repository and model namespacing; each `<model>_<version>.tar.gz` is unpacked into its own
folder, registered as its own repository and loaded on its first invoke with the ensemble
renamed to the TargetModel string, next to whatever else the endpoint holds. A plain model
repository on a plain server behaves differently (every model at start-up, under its folder
name, alone), so tests run here prove what production will do.

Modules, one job each:
- `server`: tritonserver with the container's flags, in a private namespace, behind a relay
- `sandbox`: the namespace's first process (loopback up, tritonserver, the Unix socket relay)
- `artifacts`: TargetModel -> artifact file, unpacked as SageMaker does
- `models`: load on first invoke, least-recently-used unload, what a caller sees while loading
- `runtime`: the SageMaker Runtime API (`invoke_endpoint`) on 127.0.0.1
- `metrics`: CloudWatch's per-invoke figures and a summary
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mmepack.endpoint.artifacts import ArtifactSource, model_hash
from mmepack.endpoint.metrics import EndpointMetrics
from mmepack.endpoint.models import LoadFailed, ModelCache, NotReady, check_load_request
from mmepack.endpoint.runtime import RuntimeFront, RuntimeServer, bind_listener, stderr_log
from mmepack.endpoint.server import TARGET_MODEL_HEADER, MmeServer, remove_shm_regions, shm_prefix
from mmepack.files import clean_stale_scratch, process_alive, remove_tree, scratch_root

__all__ = [
    "LoadFailed",
    "LocalEndpoint",
    "NotReady",
    "TARGET_MODEL_HEADER",
    "check_load_request",
    "model_hash",
]

DEFAULT_ENDPOINT_NAME = "local"
# How often the endpoint checks that its server still runs.
_WATCH_INTERVAL_S = 0.2
_WORKDIR_PREFIX = "endpoint"


def _clean_dead_endpoints(root: Path) -> None:
    """Remove what killed endpoints left: their work folders under the scratch root (named for
    their owner's PID, which must be gone; each removed with the paths it claimed), and the
    shared-memory regions of any that ran without a private /dev/shm (named for the folder).
    Another live endpoint's folder, and another user's (their scratch root is their own), are
    never touched."""
    try:
        entries = [e for e in root.iterdir() if e.name.startswith(f"{_WORKDIR_PREFIX}-pid")]
    except OSError:
        entries = []
    for entry in entries:
        pid = entry.name[len(f"{_WORKDIR_PREFIX}-pid") :].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            remove_shm_regions(shm_prefix(entry))
    clean_stale_scratch(root)


def _describe_exit(status: int) -> str:
    """`exit status 134, SIGABRT` for the sandbox's 128+N (or a bare server's -N)."""
    number = status - 128 if status > 128 else -status if status < 0 else 0
    try:
        name = signal.Signals(number).name if number else ""
    except ValueError:
        name = ""
    return f"exit status {status}" + (f", {name}" if name else "")


class LocalEndpoint:
    """Start with `with LocalEndpoint([artifact, ...]) as endpoint:`; invoke at `endpoint.url`.

    `max_models` / `max_resident_mb` bound what stays loaded (least recently used goes first);
    `namespacing` None follows the container (on unless SAGEMAKER_TRITON_DISABLE_MODEL_NAMESPACING
    says otherwise); `isolate` False skips the private namespace; `stub_python` is the Python of
    the server's own stub (default: this interpreter's, whose packages steps without
    EXECUTION_ENV_PATH then see); `not_ready_after` is how long an invoke waits for its model's
    load before SageMaker's "not ready" answer (60 s there).
    """

    def __init__(
        self,
        artifacts: list[Path],
        *,
        name: str = DEFAULT_ENDPOINT_NAME,
        port: int = 0,
        max_models: int | None = None,
        max_resident_mb: float | None = None,
        namespacing: bool | None = None,
        isolate: bool = True,
        environ: Mapping[str, str] | None = None,
        stub_python: str | None = None,
        not_ready_after: float = 60.0,
        invoke_timeout: float = 120.0,
        workdir: Path | None = None,
        log: Callable[[str], None] | None = stderr_log,
    ):
        self.name = name
        self.source = ArtifactSource.of(list(artifacts))
        self.failure: str | None = None  # why the server died, once it has
        self._stopped = threading.Event()
        self._watcher: threading.Thread | None = None
        self.log = log
        self.metrics = EndpointMetrics()
        # The port first: a busy one must not leave a work folder behind.
        listener = bind_listener(port)
        self._own_workdir = workdir is None
        if workdir is None:
            root = scratch_root()
            try:
                root.mkdir(mode=0o700, parents=True, exist_ok=True)
                _clean_dead_endpoints(root)
                workdir = Path(
                    tempfile.mkdtemp(prefix=f"{_WORKDIR_PREFIX}-pid{os.getpid()}-", dir=root)
                )
            except OSError:
                listener.close()
                raise
        self.workdir = workdir
        try:
            self.server = MmeServer(
                self.workdir,
                namespacing=namespacing,
                isolate=isolate,
                environ=environ,
                python_minor=stub_python,
            )
            self.models_root = self.workdir / "models"  # /opt/ml/models in the container
            self.cache = ModelCache(
                self.server,
                self.source,
                self.models_root,
                self.metrics,
                max_models=max_models,
                max_resident_mb=max_resident_mb,
            )
            self.front = RuntimeFront(
                name,
                self.server,
                self.cache,
                self.metrics,
                not_ready_after=not_ready_after,
                invoke_timeout=invoke_timeout,
                log=log,
            )
            self.runtime = RuntimeServer(self.front, listener=listener)
        except BaseException:
            listener.close()
            if self._own_workdir:
                remove_tree(self.workdir)
            raise

    @property
    def url(self) -> str:
        """Where `boto3.client("sagemaker-runtime", endpoint_url=...)` points."""
        return self.runtime.url

    @property
    def device(self) -> str:
        return self.server.device

    @property
    def namespacing(self) -> bool:
        return self.server.namespacing_on

    def describe(self) -> str:
        """One line for reports: how this endpoint runs."""
        version = self.triton_version()
        return (
            f"local SageMaker-style multi-model endpoint, Triton {version}, namespacing "
            f"{'on' if self.namespacing else 'off'}, {self.device}"
        )

    def triton_version(self) -> str:
        for line in self.server.log_text().splitlines():
            if "server_version" in line:
                return line.strip(" |").split("|")[-1].strip()
        return "?"

    def start(self, timeout: float = 120.0) -> LocalEndpoint:
        self.server.start(timeout)
        self._watcher = threading.Thread(
            target=self._watch, name="mmepack-endpoint-watch", daemon=True
        )
        self._watcher.start()
        self.runtime.start()
        return self

    def _watch(self) -> None:
        """Notice at once when the server ends on its own (a crash, an OOM kill): say so, drop
        what it held, and answer every later call with 503 naming the cause. The endpoint
        does not restart it: `mmepack endpoint` exits non-zero (see cli.py)."""
        while not self._stopped.wait(_WATCH_INTERVAL_S):
            status = self.server.exit_status()
            if status is None:
                continue
            self.failure = (
                f"the endpoint's Triton server died ({_describe_exit(status)}); every model it "
                f"held is gone and this endpoint answers nothing more. Its log "
                f"({self.server.log_path}) ends:\n{self.server.log_tail(15)}"
            )
            self.front.failure = self.failure
            self.cache.forget_all()
            if self.log is not None:
                self.log(f"mmepack: error: {self.failure}")
            return

    def wait_failure(self, timeout: float | None = None) -> str | None:
        """Block until the server has died (its cause) or `timeout` passes (None)."""
        if self._watcher is not None:
            self._watcher.join(timeout)
        return self.failure

    def load(self, target_model: str, wait: float = 600.0) -> None:
        """Load a TargetModel now (as a first invoke would); LoadFailed says why not."""
        self.cache.acquire(target_model, wait)
        self.cache.release(target_model)

    def unload(self, target_model: str) -> None:
        self.cache.unload(target_model)

    def loaded(self) -> list[str]:
        return self.cache.loaded()

    def summary(self) -> dict[str, Any]:
        return self.metrics.summary(len(self.cache.loaded()))

    def stop(self) -> None:
        """Close the runtime API, cancel and wait out loads in progress (the server's stop
        makes their requests fail at once), stop the server, then remove the work folder:
        nothing may write into it after that."""
        self._stopped.set()
        try:
            self.runtime.stop()
        finally:
            try:
                self.cache.close()
                self.server.stop()
                self.cache.wait_loads(timeout=60.0)
            finally:
                if self._own_workdir:
                    remove_tree(self.workdir)

    def __enter__(self) -> LocalEndpoint:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
