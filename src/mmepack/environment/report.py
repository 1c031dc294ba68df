"""The environment builder's report: a JSON file with a versioned schema.

Callers that run the builder as a separate process (the Pants plugin) learn what it did from this
file rather than from its log lines, which are for people and may change wording at any time.
The schema and its strict reader are `mmepack_contract.reports.EnvReport`, which the plugin reads
the file with too; this module adds what only the library does: writing it whole, and errors of
mmepack's own kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from mmepack.errors import MmepackError
from mmepack.files import atomic_path
from mmepack_contract import ENV_REPORT_SCHEMA
from mmepack_contract.reports import ContractError, EnvReport

# Bump in the contract on any change of fields or their meaning.
REPORT_SCHEMA = ENV_REPORT_SCHEMA

_B = TypeVar("_B", bound="BuildReport")


class BuildReport(EnvReport):
    """What one `build-env` run produced and how (fields: `EnvReport`)."""

    @classmethod
    def from_json(
        cls: type[_B], text: str, source: str = "report", reader: str = "this mmepack library"
    ) -> _B:
        """Parse a report of this contract and schema; anything else is an error naming
        `source`."""
        try:
            return super().from_json(text, source, reader)
        except ContractError as exc:
            raise MmepackError(str(exc)) from None

    def write(self, path: Path) -> None:
        """Write the report whole or not at all (a reader never sees half a file)."""
        with atomic_path(path) as partial:
            partial.write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> BuildReport:
        return cls.from_json(path.read_text(encoding="utf-8"), str(path))
