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
from typing import Any, Dict, List, Optional, Type, TypeVar

from mmepack_contract import CONTRACT_VERSION, ENV_REPORT_SCHEMA

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
