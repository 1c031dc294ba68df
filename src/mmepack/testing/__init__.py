"""Test a packaged model the way SageMaker will serve it: a real Triton on the real artifact.

Typical model test (see README):

    @pytest.fixture(scope="module")
    def server():
        with serve_artifact(find_artifact("screen_detector")) as served:
            yield served

    def test_label(server):
        result = server.client.infer(server.model_name, inputs=[...])

By default the artifact is loaded by its TargetModel into a local SageMaker-style multi-model
endpoint (`mmepack.endpoint`), and `client.infer` travels the production route: boto3's
`invoke_endpoint` into the runtime API, then Triton's SageMaker front end. So a test passes
only if the shipped tar loads and answers as it will on SageMaker. `route="repository"` runs
the older harness instead (the unpacked tar as a plain model repository, every model loaded at
start-up under its folder name, a `tritonclient.http` client), for tests that need Triton's
full HTTP API.
"""

from __future__ import annotations

import os
import sys
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmepack.artifact.check import member_problem
from mmepack.endpoint import LoadFailed, LocalEndpoint, model_hash
from mmepack.errors import MmepackError
from mmepack.files import scratch_dir
from mmepack.model.rules import SAGEMAKER_ENSEMBLE_RE
from mmepack.model.version import parse_artifact_name
from mmepack.names import CONFIG_FILE
from mmepack.testing.slots import server_slot
from mmepack.triton.local_backends import refuse_unavailable_backends
from mmepack.triton.server import TritonServer

ARTIFACT_DIR_VARIABLE = "MMEPACK_ARTIFACT_DIR"

# One line per server started in this process, for the pytest summary (see pytest_plugin).
SERVED_REPORTS: list[str] = []
# Every artifact a server loaded in this process, for the test records (see pytest_plugin).
SERVED_ARTIFACTS: list[Path] = []


def _is_artifact_of(path: Path, model: str) -> bool:
    try:
        return parse_artifact_name(path)[0] == model
    except MmepackError:
        return False


def find_artifact(model: str, search_root: Path | None = None) -> Path:
    """The packaged `<model>_<version>.tar.gz`.

    Pants puts a test's `runtime_package_dependencies` into its sandbox at their output paths;
    outside Pants they are under `dist/`. `$MMEPACK_ARTIFACT_DIR` overrides both.
    """
    roots = (
        [Path(os.environ[ARTIFACT_DIR_VARIABLE])] if os.environ.get(ARTIFACT_DIR_VARIABLE) else []
    )
    base = search_root or Path.cwd()
    roots += [base, base / "dist"]
    for root in roots:
        if not root.is_dir():
            continue
        found = sorted(p for p in root.rglob(f"{model}_*.tar.gz") if _is_artifact_of(p, model))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise MmepackError(
                f"several artifacts for model '{model}' under {root}: "
                + ", ".join(str(p) for p in found)
                + f"; remove stale ones or set {ARTIFACT_DIR_VARIABLE}"
            )
    raise MmepackError(
        f"no packaged artifact {model}_<version>.tar.gz found under {', '.join(map(str, roots))}; "
        f"in Pants add the model's target to this test's runtime_package_dependencies, "
        f"outside Pants run `mmepack package` first"
    )


def check_tar(artifact: Path) -> None:
    """Refuse a damaged tar or one with unsafe members (links, devices, `../`) before any
    server unpacks it, with the reason instead of a traceback."""
    try:
        with tarfile.open(artifact, "r:gz") as tar:
            for member in tar:
                problem = member_problem(member)
                if problem is not None:
                    raise MmepackError(f"{artifact}: {problem}; package it again")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise MmepackError(
            f"{artifact}: cannot unpack it as a gzip tar ({type(exc).__name__}: {exc}); it may be "
            "truncated or damaged: package it again"
        ) from None


def unpack_like_mme(artifact: Path, destination: Path) -> tuple[Path, str]:
    """Unpack into `<destination>/<artifact stem>/` and return (model repository, model name).

    A multi-model tar is itself a repository whose ensemble is the model SageMaker loads; a tar
    holding one model's files at its root is one model folder.
    """
    folder = destination / artifact.name[: -len(".tar.gz")]
    folder.mkdir(parents=True)
    try:
        with tarfile.open(artifact, "r:gz") as tar:
            for member in tar:
                problem = member_problem(member)
                if problem is not None:
                    raise MmepackError(f"{artifact}: {problem}; package it again")
            tar.extractall(folder, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise MmepackError(
            f"{artifact}: cannot unpack it as a gzip tar ({type(exc).__name__}: {exc}); it may be "
            "truncated or damaged: package it again"
        ) from None
    refuse_unavailable_backends(folder, artifact.name)
    if (folder / CONFIG_FILE).is_file():
        repository = destination / "repository"
        repository.mkdir()
        name = folder.name
        folder.rename(repository / name)
        return repository, name
    ensembles = [
        p.parent.name
        for p in sorted(folder.glob(f"*/{CONFIG_FILE}"))
        if p.is_file() and SAGEMAKER_ENSEMBLE_RE.search(p.read_text("utf-8", errors="replace"))
    ]
    if len(ensembles) != 1:
        raise MmepackError(
            f"{artifact}: SageMaker needs exactly one ensemble config at the tar's top level, "
            f"found {len(ensembles)} ({', '.join(ensembles) or 'none'})"
        )
    return folder, ensembles[0]


ENDPOINT = "endpoint"
REPOSITORY = "repository"


@dataclass
class ServedArtifact:
    """A running server with the artifact loaded; `client` talks to it.

    On the endpoint route `client` is an `EndpointClient` (its `infer` goes through boto3's
    `invoke_endpoint`), `url` is the runtime API's and `endpoint` the `LocalEndpoint`; on the
    repository route `client` is a `tritonclient.http.InferenceServerClient`.
    """

    client: Any
    model_name: str
    model_dir: Path
    device: str
    url: str
    log_path: Path
    server_pid: int
    target_model: str = ""
    route: str = REPOSITORY
    endpoint: LocalEndpoint | None = None
    # What the load cost (mmepack.capacity.measure.LoadMeasurement); endpoint route only.
    capacity: Any = None


def python_stub_files(server_pid: int) -> dict[str, set[str]]:
    """Files mapped into each Python-backend stub of a server, keyed by model name.

    Lets a test prove where a step's Python really came from (e.g. libpython and Pillow from the
    unpacked python_env.tar.gz) instead of trusting the config. Linux only.
    """
    found: dict[str, set[str]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != server_pid:
                continue
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            maps = (proc / "maps").read_text()
        except (OSError, ValueError, IndexError):
            continue
        if len(argv) < 2 or not argv[0].endswith(b"triton_python_backend_stub"):
            continue
        model = Path(argv[1].decode()).parent.parent.name
        files = {
            line.split(None, 5)[5] for line in maps.splitlines() if len(line.split(None, 5)) == 6
        }
        found.setdefault(model, set()).update(f for f in files if f.startswith("/"))
    return found


def ensemble_of(model_dir: Path, artifact: Path) -> str:
    """The model SageMaker loads from an unpacked multi-model tar (its one ensemble)."""
    ensembles = [
        p.parent.name
        for p in sorted(model_dir.glob(f"*/{CONFIG_FILE}"))
        if SAGEMAKER_ENSEMBLE_RE.search(p.read_text(encoding="utf-8"))
    ]
    if len(ensembles) != 1:
        raise MmepackError(
            f"{artifact}: SageMaker needs exactly one ensemble config at the tar's top level, "
            f"found {len(ensembles)} ({', '.join(ensembles) or 'none'})"
        )
    return ensembles[0]


@contextmanager
def serve_artifact(
    artifact: Path,
    *,
    startup_timeout: float = 300.0,
    route: str = ENDPOINT,
    capacity_loads: int = 1,
) -> Iterator[ServedArtifact]:
    """Serve `artifact` for a test; stop the server (and its stubs) on exit, even on failure.

    `route` "endpoint" (default): loaded by TargetModel on a local SageMaker-style multi-model
    endpoint. "repository": the unpacked tar as a plain model repository.
    On the endpoint route the load is measured (`served.capacity`, `mmepack.capacity`);
    `capacity_loads` > 1 loads it that many times for the spread of the cold load.
    Each server first takes one of the machine's test-server slots (`mmepack.testing.slots`,
    `MMEPACK_TEST_SERVERS`), so many model tests at once never start more servers than fit.
    """
    if route not in (ENDPOINT, REPOSITORY):
        raise ValueError(f"route must be {ENDPOINT!r} or {REPOSITORY!r}, got {route!r}")
    with server_slot(artifact.name):
        if route == ENDPOINT:
            with _serve_on_endpoint(artifact, startup_timeout, capacity_loads) as served:
                yield served
        else:
            with _serve_repository(artifact, startup_timeout) as served:
                yield served


@contextmanager
def _serve_on_endpoint(
    artifact: Path, startup_timeout: float, capacity_loads: int = 1
) -> Iterator[ServedArtifact]:
    from mmepack.capacity.measure import LoadMeasurement
    from mmepack.testing.endpoint_client import EndpointClient

    if not artifact.is_file():
        raise MmepackError(f"{artifact}: artifact not found")
    check_tar(artifact)
    target_model = artifact.name
    with LocalEndpoint([artifact], log=None) as endpoint:
        print(
            f"mmepack: loading {target_model} on a {endpoint.describe()}",
            file=sys.stderr,
            flush=True,
        )
        measurement = LoadMeasurement(endpoint, target_model, artifact, capacity_loads)
        try:
            measurement.load(wait=startup_timeout)
        except LoadFailed as failure:
            # Namespacing prefixes every model with its repository; drop it for reading.
            repository = endpoint.models_root / model_hash(target_model) / "model"
            said = failure.message.replace(f"{repository}::", "")
            raise MmepackError(
                f"Triton failed to load the models in {artifact} (TargetModel {target_model}, "
                f"HTTP {failure.status}); the server said:\n{said}"
            ) from None
        model_dir = endpoint.cache.folder_of(target_model)
        ensemble = ensemble_of(model_dir, artifact)
        SERVED_ARTIFACTS.append(artifact.resolve())
        SERVED_REPORTS.append(
            f"{artifact.name}: model '{ensemble}' served by a {endpoint.describe()}"
            + (" (no GPU found)" if endpoint.device == "CPU" else "")
        )
        client = EndpointClient(endpoint, target_model, ensemble, model_dir)
        try:
            yield ServedArtifact(
                client=client,
                model_name=ensemble,
                model_dir=model_dir,
                device=endpoint.device,
                url=endpoint.url,
                log_path=endpoint.server.log_path,
                server_pid=endpoint.server.server_pid,
                target_model=target_model,
                route=ENDPOINT,
                endpoint=endpoint,
                capacity=measurement,
            )
        finally:
            client.close()


@contextmanager
def _serve_repository(artifact: Path, startup_timeout: float) -> Iterator[ServedArtifact]:
    """Start Triton on an unpacked copy of `artifact` as a plain model repository.

    Everything it writes lives in a scratch folder mmepack owns (files.scratch_dir), which is
    removed on exit, or by the next run when this process is killed."""
    if not artifact.is_file():
        raise MmepackError(f"{artifact}: artifact not found")
    with scratch_dir("serve") as workdir:
        with _served(artifact, workdir, startup_timeout) as served:
            yield served


@contextmanager
def _served(artifact: Path, workdir: Path, startup_timeout: float) -> Iterator[ServedArtifact]:
    import tritonclient.http

    server: TritonServer | None = None
    try:
        repository, name = unpack_like_mme(artifact, workdir / "models")
        server = TritonServer(repository, workdir)
        print(
            f"mmepack: starting Triton for {artifact.name} on {server.device}"
            + (" (no GPU found)" if server.device == "CPU" else ""),
            file=sys.stderr,
            flush=True,
        )
        server.start(timeout=startup_timeout)
        client = tritonclient.http.InferenceServerClient(url=server.url, network_timeout=120.0)
        version = client.get_server_metadata().get("version", "?")
        SERVED_ARTIFACTS.append(artifact.resolve())
        SERVED_REPORTS.append(
            f"{artifact.name}: model '{name}' served by Triton {version} on {server.device}"
            + (" (no GPU found)" if server.device == "CPU" else "")
            + ", plain model repository"
        )
        try:
            yield ServedArtifact(
                client=client,
                model_name=name,
                model_dir=repository,
                device=server.device,
                url=server.url,
                log_path=server.log_path,
                server_pid=server.pid,
                target_model=artifact.name,
                route=REPOSITORY,
            )
        finally:
            client.close()
    finally:
        if server is not None:
            server.stop()
