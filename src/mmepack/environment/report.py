"""The environment builder's report: a JSON file with a versioned schema.

Callers that run the builder as a separate process (the Pants plugin) learn what it did from this
file rather than from its log lines, which are for people and may change wording at any time.
Reading is strict: a field this version does not know, a missing one or another schema version
is an error, so a writer and a reader that drift apart fail loudly in tests instead of silently
dropping facts. The Pants plugin keeps its own reader of the same schema (it cannot import
mmepack); tests/test_env_report.py holds the two to each other.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from mmepack.contract import ENV_REPORT_SCHEMA
from mmepack.errors import MmepackError
from mmepack.files import atomic_path

# Bump on any change of fields or their meaning, and teach the plugin's reader the same.
REPORT_SCHEMA = ENV_REPORT_SCHEMA


@dataclass(frozen=True)
class BuildReport:
    """What one `build-env` run produced and how; every file name is relative to the report's
    own folder when the caller passed relative paths."""

    schema: int
    # Model name for messages ("" when built for no model in particular).
    label: str
    # The environment's full Python version, e.g. "3.12.1".
    python_version: str
    # The archive written, and its size in bytes.
    archive: str
    archive_bytes: int
    # The stub written beside it, or None when the target server's own stub runs this Python.
    stub: str | None
    # The target server: its Triton version and the Python of its own stub.
    triton_version: str
    server_stub_python: str
    # True when mmepack's environment cache answered; `cache_entry` names the entry either way.
    cache_hit: bool
    cache_entry: str
    builder: str
    # The proof: what a real Triton server imported from the environment, and its version.
    proven_imports: list[str]
    proven_with_triton: str
    # Slimming: bytes removed from the prefix and the largest packages left (name -> bytes).
    removed_bytes: int
    largest_packages: dict[str, int]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "report") -> BuildReport:
        """Parse a report written by this version; anything else is an error naming `source`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MmepackError(f"{source}:{exc.lineno}: not JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise MmepackError(f"{source}: expected a JSON object, found {type(data).__name__}")
        if data.get("schema") != REPORT_SCHEMA:
            raise MmepackError(
                f"{source}: field 'schema' is {data.get('schema')!r}, expected {REPORT_SCHEMA}; "
                "the builder and its reader come from different mmepack versions: rebuild both"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        missing = sorted(known - set(data))
        if unknown or missing:
            raise MmepackError(
                f"{source}: schema {REPORT_SCHEMA} report has unknown fields {unknown} and lacks "
                f"fields {missing}; update the reader together with the writer"
            )
        return cls(**data)

    def write(self, path: Path) -> None:
        """Write the report whole or not at all (a reader never sees half a file)."""
        with atomic_path(path) as partial:
            partial.write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> BuildReport:
        return cls.from_json(path.read_text(encoding="utf-8"), str(path))
