"""Reading the JSON reports the library writes for the plugin, one way for both sides.

A report is read strictly: first its `contract` (a plugin and a library of different contract
versions must stop, naming both, rather than misread each other's files), then its `schema`,
then its fields (one unknown or missing is an error). The library writes these reports and the
plugin reads them; both use these classes, so a field cannot be added on one side only.
"""

# Python 3.7 is the oldest Python Pants 2.17 runs on: keep this file to its syntax.

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Optional, Tuple, Type, TypeVar

from mmepack_contract import (
    CONTRACT_VERSION,
    ENV_REPORT_SCHEMA,
    PACKAGE_REPORT_FILE,
    PACKAGE_REPORT_SCHEMA,
)

_FIX = (
    "install the mmepack-pants plugin and the mmepack library at the same version (each pins "
    "mmepack-contract to it), then rerun"
)


class ContractError(ValueError):
    """A report this reader cannot read: another contract or schema, or not its shape."""


def load_report(text: str, source: str, schema: int, reader: str) -> Dict[str, Any]:
    """The report's JSON object, once its contract and schema versions are this reader's.

    `source` names the file in messages; `reader` says who reads it ("the mmepack-pants
    plugin"), since the message must name both sides' contract versions.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(f"{source}:{exc.lineno}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ContractError(f"{source}: expected a JSON object, found {type(data).__name__}")
    written = data.get("contract")
    if written != CONTRACT_VERSION:
        theirs = "none (older than contract 1)" if written is None else repr(written)
        raise ContractError(
            f"{source}: field 'contract' is {theirs}: the mmepack library that wrote it speaks "
            f"contract version {theirs}, {reader} speaks contract version {CONTRACT_VERSION}; "
            + _FIX
        )
    if data.get("schema") != schema:
        raise ContractError(
            f"{source}: field 'schema' is {data.get('schema')!r}, expected {schema} (contract "
            f"version {CONTRACT_VERSION} on both sides, so one side is a development build); "
            + _FIX
        )
    return data


_R = TypeVar("_R", bound="EnvReport")


@dataclass(frozen=True)
class EnvReport:
    """What one `build-env` run produced and how (`build-env --report`); every file name is
    relative to the report's own folder when the caller passed relative paths."""

    contract: int
    schema: int
    # Model name for messages ("" when built for no model in particular).
    label: str
    # The environment's full Python version, e.g. "3.12.1".
    python_version: str
    # The archive written, and its size in bytes.
    archive: str
    archive_bytes: int
    # The stub written beside it, or None when the target server's own stub runs this Python.
    stub: Optional[str]
    # The target server: its Triton version and the Python of its own stub.
    triton_version: str
    server_stub_python: str
    # True when mmepack's environment cache answered; `cache_entry` names the entry either way.
    cache_hit: bool
    cache_entry: str
    builder: str
    # The proof: what a real Triton server imported from the environment, and its version.
    proven_imports: List[str]
    proven_with_triton: str
    # Slimming: bytes removed from the prefix and the largest packages left (name -> bytes).
    removed_bytes: int
    largest_packages: Dict[str, int]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(
        cls: Type[_R], text: str, source: str = "report", reader: str = "the mmepack-pants plugin"
    ) -> _R:
        """Parse a report of this contract and schema; anything else is a ContractError."""
        data = load_report(text, source, ENV_REPORT_SCHEMA, reader)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        missing = sorted(known - set(data))
        if unknown or missing:
            raise ContractError(
                f"{source}: schema {ENV_REPORT_SCHEMA} report has unknown fields {unknown} and "
                f"lacks fields {missing}; " + _FIX
            )
        return cls(**data)


@dataclass(frozen=True)
class PackagedArtifact:
    """One artifact the package step wrote: its path as the step was given it, its name, its
    size and its sha256."""

    path: str
    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class PackageReport:
    """What the plugin uses of the package step's report (`mmepack package --report`,
    written by mmepack.artifact.report): the artifacts and the messages it relays as written,
    so the plugin and the command line say the same."""

    model: str
    version: str
    artifacts: Tuple[PackagedArtifact, ...]
    # None when no pull was asked for; else whether anything came from the remote.
    weights_pulled: Optional[bool]
    weights_message: Optional[str]
    size_message: str
    warnings: Tuple[str, ...]

    @classmethod
    def from_json(
        cls,
        text: str,
        source: str = PACKAGE_REPORT_FILE,
        reader: str = "the mmepack-pants plugin",
    ) -> "PackageReport":
        """Parse a report of this contract and schema; anything else is a ContractError."""
        data = load_report(text, source, PACKAGE_REPORT_SCHEMA, reader)
        weights = _field(data, "weights", dict, source)
        size = _field(data, "size", dict, source)
        return cls(
            model=_field(data, "model", str, source),
            version=_field(data, "version", str, source),
            artifacts=tuple(_artifact(a, source) for a in _field(data, "artifacts", list, source)),
            weights_pulled=_field(weights, "pulled", (bool, type(None)), source, "weights."),
            weights_message=_field(weights, "message", (str, type(None)), source, "weights."),
            size_message=_field(size, "message", str, source, "size."),
            warnings=tuple(
                _text(w, source, "warnings[]") for w in _field(data, "warnings", list, source)
            ),
        )


def _field(data: Dict[str, Any], name: str, kind: Any, source: str, where: str = "") -> Any:
    if name not in data:
        raise ContractError(f"{source}: field '{where}{name}' is missing; " + _FIX)
    value = data[name]
    if not isinstance(value, kind) or (kind is str and not value):
        raise ContractError(
            f"{source}: field '{where}{name}' is {value!r}, not what schema "
            f"{PACKAGE_REPORT_SCHEMA} says; " + _FIX
        )
    return value


def _text(value: Any, source: str, where: str) -> str:
    if not isinstance(value, str):
        raise ContractError(f"{source}: field '{where}' is {value!r}, expected text; " + _FIX)
    return value


def _artifact(value: Any, source: str) -> PackagedArtifact:
    if not isinstance(value, dict):
        raise ContractError(f"{source}: field 'artifacts[]' is {value!r}; " + _FIX)
    return PackagedArtifact(
        path=_field(value, "path", str, source, "artifacts[]."),
        name=_field(value, "name", str, source, "artifacts[]."),
        bytes=_field(value, "bytes", int, source, "artifacts[]."),
        sha256=_field(value, "sha256", str, source, "artifacts[]."),
    )
