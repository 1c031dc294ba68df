"""The package step's JSON report: what `mmepack package` wrote and how, for programs.

The Pants plugin runs the package step as a process and used to learn what it did by matching
the beginnings of its output lines, which are for people and may change wording at any time.
It reads this file instead (`mmepack_contract`: its name, schema, the contract version and
the reader, `reports.PackageReport`):
plain JSON that the standard library reads, holding the artifacts (bytes, sha256), whether the
weights came from the remote or the DVC cache (per file), the size by part with its warning,
and the messages the plugin relays to the user as they are, so both sides say the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmepack import __version__
from mmepack.artifact.size_report import size_message, size_warning
from mmepack.artifact.writer import PARTS, PackageResult
from mmepack.errors import MmepackError
from mmepack.files import atomic_path
from mmepack.model.weights import describe_pull
from mmepack_contract import CONTRACT_VERSION, PACKAGE_REPORT_SCHEMA


def _weights(result: PackageResult) -> dict[str, Any]:
    pull = result.pull
    return {
        # None: no pull was asked for (or nothing is tracked); the files were used as found.
        "pulled": None if pull is None else pull.downloaded_objects > 0,
        "message": None if pull is None else describe_pull(result.model, pull),
        "downloaded_objects": 0 if pull is None else pull.downloaded_objects,
        "downloaded_bytes": 0 if pull is None else pull.downloaded_bytes,
        "files": [
            {
                "path": tracked.path.as_posix(),
                "md5": tracked.md5,
                "bytes": tracked.size,
                "downloaded": None if pull is None else tracked.md5 in pull.fetched,
            }
            for tracked in result.weights
        ],
    }


def package_report(result: PackageResult) -> dict[str, Any]:
    """The report of one package run, as JSON-ready data (schema `PACKAGE_REPORT_SCHEMA`)."""
    warning = size_warning(result)
    return {
        "schema": PACKAGE_REPORT_SCHEMA,
        "contract": CONTRACT_VERSION,
        "mmepack_version": __version__,
        "model": result.model,
        "version": result.version,
        "artifacts": [
            {
                "path": result.path.as_posix(),
                "name": result.path.name,
                "bytes": result.size,
                "sha256": result.sha256,
            }
        ],
        "weights": _weights(result),
        "size": {
            "message": size_message(result),
            "layout": result.layout.value,
            "total_bytes": sum(result.part_bytes.values()),
            "parts": {
                part: {
                    "bytes": result.part_bytes.get(part, 0),
                    "unpacked_bytes": result.part_content.get(part, 0),
                }
                for part in PARTS
            },
        },
        "warnings": [] if warning is None else [warning],
    }


def write_package_report(result: PackageResult, path: Path) -> None:
    """Write the report whole or not at all (a reader never sees half a file)."""
    text = json.dumps(package_report(result), indent=2, sort_keys=True) + "\n"
    try:
        with atomic_path(path) as partial:
            partial.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise MmepackError(
            f"{path}: cannot write the package report ({exc.strerror or exc}); choose a "
            "writable --report path (the artifact itself was written)"
        ) from None
