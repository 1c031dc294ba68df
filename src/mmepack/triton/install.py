"""Locate the Triton Inference Server that ships inside the `nvidia-pytriton` wheel.

The wheel carries a real `tritonserver` binary, the Python backend and stubs for several Python
versions, which is what lets model tests run a genuine server without Docker.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from mmepack.errors import MmepackError


@dataclass(frozen=True)
class TritonInstall:
    server_binary: Path
    python_backend: Path
    stubs: Path
    libs: Path

    def stub_for(self, python_minor: str) -> Path:
        stub = self.stubs / python_minor / "triton_python_backend_stub"
        if not stub.is_file():
            available = sorted(p.name for p in self.stubs.iterdir() if p.is_dir())
            raise MmepackError(
                f"no triton_python_backend_stub for Python {python_minor} in {self.stubs} "
                f"(available: {', '.join(available)}); build the environment for one of those"
            )
        return stub


def find_triton() -> TritonInstall:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise MmepackError(
            "the Triton server is not installed: add `nvidia-pytriton` to the test's requirements "
            "(it carries the tritonserver binary)"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    root = package / "tritonserver"
    install = TritonInstall(
        server_binary=root / "bin" / "tritonserver",
        python_backend=root / "backends" / "python",
        stubs=root / "python_backend_stubs",
        libs=package.parent / "nvidia_pytriton.libs",
    )
    for path in (install.server_binary, install.python_backend, install.stubs):
        if not path.exists():
            raise MmepackError(f"{path} is missing from the nvidia-pytriton installation")
    return install
