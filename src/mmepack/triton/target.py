"""The Triton release an artifact is built for, and the Python-backend stub it must carry.

Triton's Python backend runs each model in a `triton_python_backend_stub` process that embeds
one Python version. A model whose environment has another Python needs a stub built for that
Python by the same Triton release, placed beside its `config.pbtxt`; a stub from another release
hangs or fails on the host, and no stub at all makes the server's stub run the wrong Python. So
the artifact is built against a stated target, and a missing stub is a build error, not a
surprise on the endpoint.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mmepack.errors import MmepackError, model_prefix
from mmepack.files import scratch_dir

STUB_NAME = "triton_python_backend_stub"
# NGC release 24.10 (Triton 2.51.0): the newest release whose stubs this toolchain carries (in
# nvidia-pytriton 0.7.0), so its artifacts are checked against the very server the tests run.
# Its stub embeds Python 3.10, the default from 23.05 through 24.11.
DEFAULT_TRITON_VERSION = "2.51.0"
DEFAULT_STUB_PYTHON = "3.10"
# nvidia-pytriton release -> the Triton server inside it; others are asked at run time.
_PYTRITON_SERVER = {"0.7.0": "2.51.0"}


# numpy in a Python step's environment, by Triton release: (first release it applies to,
# requirement added to every environment, why). The newest row whose release is at or below the
# target applies.
#
# Why `numpy<2`: Triton 2.51.0's release notes list under Known Issues that numpy 2.x is not
# supported for Python backend models and may make them return empty tensors (source:
# github.com/triton-inference-server/server/releases/tag/v2.51.0; the same note is in 2.52.0,
# and server issue #8301 asking for numpy 2 support was still open in 2026). Issue 11 of this
# project saw it: an environment with numpy 2.x imported fine under the 2.51.0 stub, then a
# step's tensors arrived empty ("Expected 16, got 0"). Add a row only once a release's notes say
# numpy 2 works and the proof (which moves tensors through the stub) passes with it.
NUMPY_BY_TRITON: tuple[tuple[str, str, str], ...] = (
    (
        "2.0.0",
        "numpy<2",
        "Triton's Python backend does not support numpy 2.x: its tensors can arrive empty "
        "(Triton 2.51.0 release notes, Known Issues)",
    ),
)


@dataclass(frozen=True)
class OnnxRuntimeLimits:
    """What the ONNX Runtime inside one Triton release can load."""

    onnxruntime: str
    max_ir_version: int
    max_opset: int  # of the default ("ai.onnx") domain
    max_ml_opset: int  # of the "ai.onnx.ml" domain (tree ensembles, scalers, encoders)


# ONNX Runtime by Triton release: (first Triton release, NGC container, limits). The runtime
# version per release is from Triton's docs/introduction/compatibility.md ("ONNX Runtime
# Versions": 24.04 1.17.3, 24.05-24.06 1.18.0, 24.07-24.08 1.18.1, 24.09-24.11 1.19.2, 24.12
# 1.20.1); the IR version and opset each runtime reads are those of the ONNX release it is built
# on (ONNX Runtime's compatibility table: 1.17 reads ONNX 1.15, IR 9, opset 20; 1.18 and 1.19
# read ONNX 1.16, IR 10, opset 21). A model above these fails to load on the endpoint
# ("Unsupported model IR version"), even when a newer local onnxruntime runs it.
# The ai.onnx.ml opset is the "ONNX ML opset version" column of ONNX Runtime's version matrix
# (docs/Versioning.md): 4 for 1.17 through 1.19. ONNX 1.16 defines ai.onnx.ml opset 5 (the
# TreeEnsemble operator that replaces TreeEnsembleClassifier/Regressor), which these runtimes
# do not implement: a converter targeting it makes a tree model the endpoint cannot load.
ONNX_RUNTIME_BY_TRITON: tuple[tuple[str, str, OnnxRuntimeLimits], ...] = (
    ("2.45.0", "24.04", OnnxRuntimeLimits("1.17.3", 9, 20, 4)),
    ("2.46.0", "24.05", OnnxRuntimeLimits("1.18.0", 10, 21, 4)),
    ("2.48.0", "24.07", OnnxRuntimeLimits("1.18.1", 10, 21, 4)),
    ("2.50.0", "24.09", OnnxRuntimeLimits("1.19.2", 10, 21, 4)),
)
# The newest Triton release the table is known to hold for (24.11); later ones are refused
# rather than guessed, since each new ONNX Runtime reads newer IR versions and opsets.
ONNX_RUNTIME_TABLE_UNTIL = "2.52.0"


def _release_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class TargetServer:
    triton_version: str = DEFAULT_TRITON_VERSION
    stub_python: str = DEFAULT_STUB_PYTHON
    # Stubs for other releases: `<stub_dir>/3.X/triton_python_backend_stub`, built from the
    # target release's python_backend.
    stub_dir: Path | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d+\.\d+\.\d+", self.triton_version):
            raise MmepackError(
                f"Triton version {self.triton_version!r} is not valid; expected the server "
                "version, e.g. '2.51.0' (NGC container 24.10)"
            )
        if not re.fullmatch(r"3\.\d+", self.stub_python):
            raise MmepackError(
                f"stub Python {self.stub_python!r} is not valid; expected e.g. '3.10'"
            )

    def needs_stub(self, env_python: str) -> bool:
        return env_python != self.stub_python

    @property
    def onnx_runtime(self) -> OnnxRuntimeLimits:
        """The ONNX Runtime limits of this Triton release (see ONNX_RUNTIME_BY_TRITON)."""
        target = _release_key(self.triton_version)
        rows = [row for row in ONNX_RUNTIME_BY_TRITON if _release_key(row[0]) <= target]
        if not rows or target > _release_key(ONNX_RUNTIME_TABLE_UNTIL):
            raise MmepackError(
                f"no ONNX Runtime limits are recorded for Triton {self.triton_version}; add its "
                "row to ONNX_RUNTIME_BY_TRITON in mmepack/triton/target.py from Triton's "
                "compatibility matrix"
            )
        return max(rows, key=lambda row: _release_key(row[0]))[2]

    @property
    def numpy_requirement(self) -> tuple[str, str]:
        """The numpy requirement every environment for this server gets, and why."""
        target = _release_key(self.triton_version)
        rows = [row for row in NUMPY_BY_TRITON if _release_key(row[0]) <= target]
        _, requirement, reason = max(rows, key=lambda row: _release_key(row[0]))
        return requirement, reason


@cache
def local_triton_version() -> str:
    """The version of the Triton server in the installed nvidia-pytriton."""
    try:
        pytriton = importlib.metadata.version("nvidia-pytriton")
    except importlib.metadata.PackageNotFoundError:
        raise MmepackError(
            "nvidia-pytriton is not installed; it carries the Triton server and the stubs "
            "environments are proven with"
        ) from None
    if pytriton in _PYTRITON_SERVER:
        return _PYTRITON_SERVER[pytriton]
    from mmepack.triton.server import TritonServer

    with scratch_dir("version") as scratch:
        repository = scratch / "models"
        repository.mkdir()
        server = TritonServer(repository, scratch)
        server.start(timeout=120)
        try:
            return str(server.metadata()["version"])
        finally:
            server.stop()


def stub_for(target: TargetServer, env_python: str, label: str = "") -> Path | None:
    """The stub to ship beside each Python step's config, or None when the server's own stub
    already runs `env_python`."""
    if not target.needs_stub(env_python):
        return None
    who = model_prefix(label)
    if target.stub_dir is not None:
        stub = target.stub_dir / env_python / STUB_NAME
        if stub.is_file():
            return stub
        raise MmepackError(
            f"{who}the environment runs Python {env_python} but Triton {target.triton_version}'s "
            f"stub runs Python {target.stub_python}, and the stub folder {target.stub_dir} has no "
            f"{env_python}/{STUB_NAME}; build one from the python_backend of Triton "
            f"{target.triton_version} for Python {env_python}, or set the model's python_version "
            f"to {target.stub_python}"
        )
    from mmepack.triton.install import find_triton

    local = local_triton_version()
    if local != target.triton_version:
        raise MmepackError(
            f"{who}the environment runs Python {env_python} but Triton {target.triton_version}'s "
            f"stub runs Python {target.stub_python}, so the artifact needs a {STUB_NAME} for "
            f"Python {env_python} built by Triton {target.triton_version}; the only stubs at hand "
            f"are Triton {local}'s (nvidia-pytriton), and a stub from another release hangs or "
            f"fails on the server. Set the model's python_version to {target.stub_python}, target "
            f"Triton {local}, or set the stub folder ([triton-server].stub_dir / --stub-dir) to "
            f"stubs built for Triton {target.triton_version}"
        )
    return find_triton().stub_for(env_python)
