"""Prove a packed environment loads before anything ships it.

Environment failures (wrong Python, no numpy, a missing shared library, an import that crashes)
otherwise surface only when an endpoint first loads the model. The proof runs the same thing the
endpoint will: a real Triton server unpacks the archive through EXECUTION_ENV_PATH and starts
its Python stub in it, and a probe model imports numpy and every requirement the model named.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mmepack.environment.requirements import canonical_name
from mmepack.errors import MmepackError, model_prefix
from mmepack.files import scratch_dir
from mmepack.triton.target import STUB_NAME

Log = Callable[[str], None]
PROBE_MODEL = "mmepack_env_probe"
_OK_MARK = "MMEPACK_PROBE_OK"

# The probe runs inside the environment under test, so it uses only the standard library.
_PROBE_SOURCE = (
    '''\
import importlib
import json
import os
import sys


class TritonPythonModel:
    def initialize(self, args):
        parameters = json.loads(args["model_config"]).get("parameters", {})
        expected = parameters["MMEPACK_EXPECT_PYTHON"]["string_value"]
        modules = json.loads(parameters["MMEPACK_IMPORTS"]["string_value"])
        running = "%d.%d" % sys.version_info[:2]
        if running != expected:
            raise RuntimeError(
                "the stub runs Python %s, the environment was built for %s" % (running, expected)
            )
        if not os.path.isdir(os.path.join(sys.prefix, "conda-meta")):
            raise RuntimeError(
                "the stub runs the Python at %s, not the unpacked environment" % sys.prefix
            )
        failed = []
        for module in modules:
            try:
                importlib.import_module(module)
            except BaseException as exc:
                failed.append("%s (%s: %s)" % (module, type(exc).__name__, exc))
        if failed:
            raise RuntimeError("cannot import " + "; ".join(failed))
        print("%s Python %s at %s imported %s" % (
            "'''
    + _OK_MARK
    + """", sys.version.split()[0], sys.prefix, ", ".join(modules)),
            flush=True)

    def execute(self, requests):
        return []
"""
)


@dataclass(frozen=True)
class ProofResult:
    modules: tuple[str, ...]
    triton_version: str


def _dist_info_dirs(site_packages: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in site_packages.glob("*.dist-info"):
        name = path.name[: -len(".dist-info")].split("-")[0]
        found[canonical_name(name)] = path
    return found


def _top_level_from_record(dist_info: Path) -> list[str]:
    record = dist_info / "RECORD"
    if not record.is_file():
        return []
    names: set[str] = set()
    for line in record.read_text(encoding="utf-8", errors="replace").splitlines():
        path = line.split(",", 1)[0]
        head, _, tail = path.partition("/")
        if tail == "__init__.py" and head.isidentifier():
            names.add(head)
        elif not tail and re.fullmatch(r"[A-Za-z_]\w*(\.py|\..*\.so|\.so)", head):
            names.add(head.split(".", 1)[0])
    return sorted(names)


def import_names(site_packages: Path, requirement_names: Iterable[str]) -> list[str]:
    """Modules to import for each requirement, from what pip actually installed (`pillow` is
    imported as `PIL`); numpy first, since Triton's own utilities need it."""
    dists = _dist_info_dirs(site_packages)
    modules = ["numpy"]
    for requirement in requirement_names:
        dist_info = dists.get(canonical_name(requirement))
        if dist_info is None:
            continue
        top_level = dist_info / "top_level.txt"
        names = (
            [n.strip() for n in top_level.read_text(encoding="utf-8").split() if n.strip()]
            if top_level.is_file()
            else _top_level_from_record(dist_info)
        )
        public = [n for n in names if not n.startswith("_") and "/" not in n] or names
        modules.extend(n for n in public if n not in modules)
    return modules


def _write_probe_model(
    repository: Path, archive: Path, stub: Path | None, python: str, modules: list[str]
) -> None:
    folder = repository / PROBE_MODEL
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text(_PROBE_SOURCE, encoding="utf-8")
    shutil.copy2(archive, folder / "python_env.tar.gz")
    if stub is not None:
        shutil.copy2(stub, folder / STUB_NAME)
    parameters = {
        "EXECUTION_ENV_PATH": "$$TRITON_MODEL_DIRECTORY/python_env.tar.gz",
        "MMEPACK_EXPECT_PYTHON": python,
        "MMEPACK_IMPORTS": json.dumps(modules),
    }
    parameter_text = "\n".join(
        f"parameters: {{ key: {json.dumps(k)} value: {{ string_value: {json.dumps(v)} }} }}"
        for k, v in parameters.items()
    )
    (folder / "config.pbtxt").write_text(
        f'name: "{PROBE_MODEL}"\nbackend: "python"\nmax_batch_size: 0\n'
        'input [{ name: "IN" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
        'output [{ name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] }]\n'
        "instance_group [{ kind: KIND_CPU count: 1 }]\n" + parameter_text + "\n",
        encoding="utf-8",
    )


def prove_environment(
    archive: Path,
    python: str,
    modules: list[str],
    *,
    server_stub_python: str | None = None,
    label: str = "",
    log: Log | None = None,
) -> ProofResult:
    """Load `archive` in a real Triton server under the stub for `python` and import `modules`.

    The server's own stub is `server_stub_python`'s (default: the environment's); when they
    differ the probe model carries the environment's stub beside its config, exactly as the
    artifact will.
    """
    from mmepack.triton.install import find_triton
    from mmepack.triton.server import TritonServer

    who = model_prefix(label)
    server_python = server_stub_python or python
    if not (find_triton().stubs / server_python).is_dir():
        server_python = python
    with scratch_dir("proof") as workdir:
        repository = workdir / "models"
        server = TritonServer(repository, workdir, python_minor=server_python)
        stub = server.install.stub_for(python) if python != server_python else None
        _write_probe_model(repository, archive, stub, python, modules)
        if log is not None:
            log(f"{who}proving the environment: Triton loads it and imports {', '.join(modules)}")
        try:
            server.start(timeout=300)
        except MmepackError as exc:
            raise MmepackError(
                f"{who}the Python {python} environment does not start under Triton's Python "
                f"backend stub, so it would fail on the endpoint too:\n{exc}"
            ) from None
        try:
            version = str(server.metadata().get("version", "?"))
        finally:
            server.stop()
        if _OK_MARK not in server.log_tail(400):
            raise MmepackError(
                f"{who}Triton reported the probe model ready but it never confirmed its imports; "
                f"server log:\n{server.log_tail()}"
            )
    return ProofResult(tuple(modules), version)
