"""What environment to build, and how: two records, so callers say each once.

`EnvRequest` is the model's side (its requirements file, the environment's Python, whose it is);
`EnvOptions` is the machine's and the deployment's side (which builder, which conda, which Triton
release the artifact targets). A model directory supplies the first and the command line or
pants.toml the second, so the packager builds a request from the model without copying options
around. The library owns every default here; the CLI and the Pants plugin pass a value only when
the user set one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mmepack.triton.target import TargetServer, stub_for

# The environment's Python when neither the model nor the user names one.
DEFAULT_PYTHON = "3.11"
DEFAULT_BUILDER = "auto"


@dataclass(frozen=True)
class EnvRequest:
    """What to build: the environment for one requirements file and Python version."""

    requirements: Path
    python: str = DEFAULT_PYTHON
    # The model name, for messages only; it never changes what is built.
    label: str = ""
    # Triton data types (`TYPE_FP32`, ...) the model's Python steps exchange: the proof sends a
    # tensor of each through the stub and back. It never changes what is built.
    tensor_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnvOptions:
    """How to build it and for which server: the same for every model of a run."""

    builder: str = DEFAULT_BUILDER
    conda: str | None = None
    target: TargetServer = field(default_factory=TargetServer)

    def stub(self, request: EnvRequest) -> Path | None:
        """The one decision on the stub an artifact ships beside each Python step: the target
        server's own stub when it runs the request's Python (None), else one built for it."""
        return stub_for(self.target, request.python, request.label)
