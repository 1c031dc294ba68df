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

import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mmepack.endpoint.artifacts import ArtifactSource, model_hash
from mmepack.endpoint.metrics import EndpointMetrics
from mmepack.endpoint.models import LoadFailed, ModelCache, NotReady, check_load_request
from mmepack.endpoint.runtime import RuntimeFront, RuntimeServer, stderr_log
from mmepack.endpoint.server import TARGET_MODEL_HEADER, MmeServer

__all__ = [
    "LoadFailed",
    "LocalEndpoint",
    "NotReady",
    "TARGET_MODEL_HEADER",
    "check_load_request",
    "model_hash",
]

DEFAULT_ENDPOINT_NAME = "local"


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
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="mmepack-endpoint-"))
        self.metrics = EndpointMetrics()
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
        self.runtime = RuntimeServer(
            RuntimeFront(
                name,
                self.server,
                self.cache,
                self.metrics,
                not_ready_after=not_ready_after,
                invoke_timeout=invoke_timeout,
                log=log,
            ),
            port,
        )

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
        self.runtime.start()
        return self

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
        try:
            self.runtime.stop()
        finally:
            self.cache.close()
            self.server.stop()
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalEndpoint:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
