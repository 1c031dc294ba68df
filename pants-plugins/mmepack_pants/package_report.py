"""The plugin's reader of the package step's JSON report (`mmepack package --report`).

The package step runs as a process; what it did (the artifacts, where the weights came from,
the size by part and its warning) comes back in this file, not from its output lines, which
are for people. The library writes it (`mmepack.artifact.report`); its file name, schema and
the contract version are `mmepack.contract`'s, stated here until the plugin imports that module.
A report of another contract version stops the build with both versions named: the plugin
would otherwise misread a library it does not match. Only the standard library is used here:
tests/test_package_report.py loads this file by path and feeds it the library's own output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

# mmepack.contract's values (tests/test_package_report.py holds them equal).
CONTRACT_VERSION = 2
PACKAGE_REPORT_FILE = "mmepack-package-report.json"
PACKAGE_REPORT_SCHEMA = 1


class PackageReportError(ValueError):
    """The report is not one this plugin reads; the message says why and what to do."""


@dataclass(frozen=True)
class PackagedArtifact:
    path: str
    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class PackageReport:
    """What the plugin uses of the report: the messages it relays and the artifacts."""

    model: str
    version: str
    artifacts: Tuple[PackagedArtifact, ...]
    # None when no pull was asked for; else whether anything came from the remote.
    weights_pulled: Optional[bool]
    weights_message: Optional[str]
    size_message: str
    warnings: Tuple[str, ...]

    @classmethod
    def from_json(cls, text: str) -> "PackageReport":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PackageReportError(
                f"{PACKAGE_REPORT_FILE}:{exc.lineno}: not JSON ({exc.msg})"
            ) from None
        if not isinstance(data, dict):
            raise PackageReportError(f"{PACKAGE_REPORT_FILE}: expected a JSON object")
        contract = data.get("contract_version")
        if contract != CONTRACT_VERSION:
            raise PackageReportError(
                f"{PACKAGE_REPORT_FILE}: the mmepack tool (version "
                f"{data.get('mmepack_version', 'unknown')}) speaks contract version "
                f"{contract!r}, and this mmepack-pants plugin knows contract version "
                f"{CONTRACT_VERSION}; use the mmepack version that matches the plugin"
            )
        if data.get("schema") != PACKAGE_REPORT_SCHEMA:
            raise PackageReportError(
                f"{PACKAGE_REPORT_FILE}: field 'schema' is {data.get('schema')!r}, expected "
                f"{PACKAGE_REPORT_SCHEMA}; the plugin and the mmepack tool come from different "
                "mmepack versions"
            )
        weights = _field(data, "weights", dict)
        size = _field(data, "size", dict)
        return cls(
            model=_field(data, "model", str),
            version=_field(data, "version", str),
            artifacts=tuple(_artifact(a) for a in _field(data, "artifacts", list)),
            weights_pulled=_field(weights, "pulled", (bool, type(None)), "weights."),
            weights_message=_field(weights, "message", (str, type(None)), "weights."),
            size_message=_field(size, "message", str, "size."),
            warnings=tuple(_text(w, "warnings[]") for w in _field(data, "warnings", list)),
        )


def _field(data: Dict[str, Any], name: str, kind: Any, where: str = "") -> Any:
    if name not in data:
        raise PackageReportError(f"{PACKAGE_REPORT_FILE}: field '{where}{name}' is missing")
    value = data[name]
    if not isinstance(value, kind) or (kind is str and not value):
        raise PackageReportError(
            f"{PACKAGE_REPORT_FILE}: field '{where}{name}' is {value!r}, not what schema "
            f"{PACKAGE_REPORT_SCHEMA} says"
        )
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise PackageReportError(f"{PACKAGE_REPORT_FILE}: field '{where}' is {value!r}")
    return value


def _artifact(value: Any) -> PackagedArtifact:
    if not isinstance(value, dict):
        raise PackageReportError(f"{PACKAGE_REPORT_FILE}: field 'artifacts[]' is {value!r}")
    return PackagedArtifact(
        path=_field(value, "path", str, "artifacts[]."),
        name=_field(value, "name", str, "artifacts[]."),
        bytes=_field(value, "bytes", int, "artifacts[]."),
        sha256=_field(value, "sha256", str, "artifacts[]."),
    )
