"""Test records: which exact artifact bytes (by sha256) a run of the model's cases passed on.

Production must only receive bytes that passed their tests. A run of `mmepack test-cases`
(which `./pants test` runs) writes `<artifact>.tested.json` beside the artifact it served, passed
or not, holding the artifact's sha256; a production publish looks for a passing record with the
same sha256 and refuses without one, unless an explicit, loud override is given, which the
manifest then records.

Where records live, and why: beside the artifact, in the build's output folder (dist/), because
that is where both a laptop and a CI job already have what they test: `mmepack test-cases
dist/mme/x.tar.gz` writes `dist/mme/x.tar.gz.tested.json`, and `./pants test` writes its record
under `dist/test/<target>/` (Pants' place for a test's extra output; Pants writes it again when
the test result comes from its cache, so a CI job with a warm remote cache still gets it).
Artifacts are reproducible, so the bytes `./pants publish` packages are the bytes the test run
served, and the sha256 ties them. Publishing copies the record into the S3 manifest, so
`promote` (which sees only the buckets) checks the staging manifest. A record is a guard against
mistakes, not against forgery: anyone who can publish can write one.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from mmepack import __version__
from mmepack.errors import MmepackError
from mmepack.files import atomic_path, file_hexdigest

RECORD_SUFFIX = ".tested.json"
# Where a publish looks for records when not told: the build output folder.
DEFAULT_RECORD_DIRS = (Path("dist"),)
OVERRIDE_FLAG = "--untested"


def record_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + RECORD_SUFFIX)


def write_test_record(
    artifact: Path,
    *,
    passed: bool,
    cases: list[str],
    exit_code: int,
    destination: Path | None = None,
) -> Path:
    """Write the record of one run beside `artifact` (or at `destination`); a failed run too, so
    that it replaces an earlier passing record of the same bytes whose cases have since
    changed."""
    path = destination or record_path(artifact)
    record = {
        "artifact": artifact.name,
        "sha256": file_hexdigest(artifact, "sha256"),
        "passed": passed,
        "exit_code": exit_code,
        "cases": sorted(cases),
        "tested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mmepack_version": __version__,
    }
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _candidates(artifact: Path, record_dirs: list[Path]) -> list[Path]:
    found = [record_path(artifact)]
    name = artifact.name + RECORD_SUFFIX
    for folder in record_dirs:
        if folder.is_dir():
            found.extend(sorted(folder.rglob(name)))
    return found


def _records(
    artifact: Path, sha256: str, record_dirs: list[Path]
) -> list[tuple[Path, dict[str, Any]]]:
    """Every record of a run on exactly these bytes, with where it was found."""
    found = []
    for candidate in _candidates(artifact, record_dirs):
        try:
            record = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("sha256") == sha256:
            found.append((candidate, record))
    return found


def find_passing_record(
    artifact: Path, sha256: str, record_dirs: list[Path]
) -> dict[str, Any] | None:
    """A passing record for exactly these bytes, or None; None too when any run of these bytes
    failed (the python tests and the cases of one model are separate runs: both must pass)."""
    records = _records(artifact, sha256, record_dirs)
    if any(not record.get("passed") for _, record in records):
        return None
    for candidate, record in records:
        return {**record, "record": candidate.name}
    return None


def tested_entry(
    artifact: Path,
    sha256: str,
    record_dirs: list[Path],
    *,
    untested: str | None,
    where: str,
) -> dict[str, Any]:
    """The manifest's `tested` field for a production publish, or a refusal saying how to get a
    record. `untested` (the override's reason) lets untested bytes through, loudly."""
    record = find_passing_record(artifact, sha256, record_dirs)
    if record is not None:
        return {
            "passed": True,
            "sha256": sha256,
            "cases": record.get("cases", []),
            "tested_at": record.get("tested_at"),
        }
    if untested is not None:
        print(
            f"mmepack: WARNING: {artifact.name} (sha256 {sha256}) goes to {where} with NO "
            f"passing test run on these bytes, by override ({OVERRIDE_FLAG}): {untested!r}; "
            "the manifest records it",
            file=sys.stderr,
            flush=True,
        )
        return {"passed": False, "override": True, "reason": untested, "sha256": sha256}
    looked = ", ".join(str(p) for p in [record_path(artifact), *record_dirs])
    failed = [
        str(path)
        for path, record in _records(artifact, sha256, record_dirs)
        if not record.get("passed")
    ]
    why = (
        f"a test run of these exact bytes failed ({', '.join(failed)})"
        if failed
        else f"no passing test run of these exact bytes (sha256 {sha256}); looked for "
        f"{artifact.name}{RECORD_SUFFIX} in {looked}"
    )
    raise MmepackError(
        f"{artifact}: refusing to publish to {where}: {why}. Run the "
        f"model's tests on them first: `./pants test <model dir>:<model>` (CI's test step), or "
        f"`mmepack test-cases {artifact} <model dir>`, then publish again. To publish untested "
        f'bytes anyway, pass {OVERRIDE_FLAG}="<reason>" (the reason goes into the manifest)'
    )


def manifest_tested(manifest: dict[str, Any], sha256: str) -> bool:
    """Whether a published manifest carries a passing test record of `sha256`."""
    tested = manifest.get("tested")
    return (
        isinstance(tested, dict)
        and tested.get("passed") is True
        and tested.get("sha256") == (sha256)
    )
