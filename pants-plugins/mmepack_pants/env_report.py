"""The plugin's reader of the environment builder's JSON report (`build-env --report`).

The builder is mmepack's, the plugin runs inside Pants and cannot import mmepack, so the schema
is written twice: `mmepack.environment.report.BuildReport` writes it, this module reads it.
Reading is strict (another schema version, an unknown field or a missing one is an error), and
tests/test_env_report.py feeds the library's own output to this reader, so the two cannot drift
apart unnoticed. Only the standard library is used here: that test loads this file by path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Dict, List, Optional

REPORT_FILE = "build-env-report.json"
REPORT_SCHEMA = 1


class EnvReportError(ValueError):
    """The report does not match the schema this plugin reads."""


@dataclass(frozen=True)
class EnvReport:
    schema: int
    label: str
    python_version: str
    archive: str
    archive_bytes: int
    stub: Optional[str]
    triton_version: str
    server_stub_python: str
    cache_hit: bool
    cache_entry: str
    builder: str
    proven_imports: List[str]
    proven_with_triton: str
    removed_bytes: int
    largest_packages: Dict[str, int]

    @classmethod
    def from_json(cls, text: str) -> "EnvReport":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EnvReportError(f"{REPORT_FILE}:{exc.lineno}: not JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise EnvReportError(f"{REPORT_FILE}: expected a JSON object")
        if data.get("schema") != REPORT_SCHEMA:
            raise EnvReportError(
                f"{REPORT_FILE}: field 'schema' is {data.get('schema')!r}, expected "
                f"{REPORT_SCHEMA}; the plugin and the builder PEX come from different mmepack "
                "versions"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        missing = sorted(known - set(data))
        if unknown or missing:
            raise EnvReportError(
                f"{REPORT_FILE}: unknown fields {unknown}, missing fields {missing}; update "
                "mmepack_pants/env_report.py together with mmepack.environment.report"
            )
        return cls(**data)

    def lines(self, from_pants_cache: bool) -> List[str]:
        """What to tell the user: how the build went when it ran now, else only where the
        environment came from.

        `from_pants_cache`: Pants answered the builder process from its own cache, so nothing
        ran now and the figures are those of the run that produced the cached result.
        """
        if from_pants_cache:
            source = "Pants' cache"
        elif self.cache_hit:
            source = f"mmepack's cache {self.cache_entry}"
        else:
            source = "built now"
        stub = (
            f"; ships the Python {self.python_version.rsplit('.', 1)[0]} stub (Triton "
            f"{self.triton_version}'s own runs {self.server_stub_python})"
            if self.stub
            else ""
        )
        ready = (
            f"environment ready: {self.archive} ({self.archive_bytes / 1e6:.1f} MB, Python "
            f"{self.python_version}, {source}){stub}"
        )
        if source != "built now":
            return [ready]
        by_size = sorted(self.largest_packages.items(), key=lambda item: (-item[1], item[0]))
        largest = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in by_size)
        return [
            f"slimmed: removed {self.removed_bytes / 1e6:.1f} MB; largest packages: {largest}",
            f"proven: Triton {self.proven_with_triton} imported {', '.join(self.proven_imports)}",
            ready,
        ]
