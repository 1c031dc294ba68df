"""What the plugin tells the user about an environment build, from the builder's JSON report.

The report's schema and its strict reader are the contract's (`mmepack_contract.reports`), the
same code the library writes it with; only the wording of the log lines is the plugin's.
"""

from __future__ import annotations

from typing import List

from mmepack_contract.reports import EnvReport

# Where the plugin asks the builder to write its report, inside the builder's sandbox.
REPORT_FILE = "build-env-report.json"


def report_lines(report: EnvReport, from_pants_cache: bool) -> List[str]:
    """What to tell the user: how the build went when it ran now, else only where the
    environment came from.

    `from_pants_cache`: Pants answered the builder process from its own cache, so nothing ran
    now and the figures are those of the run that produced the cached result.
    """
    if from_pants_cache:
        source = "Pants' cache"
    elif report.cache_hit:
        source = f"mmepack's cache {report.cache_entry}"
    else:
        source = "built now"
    stub = (
        f"; ships the Python {report.python_version.rsplit('.', 1)[0]} stub (Triton "
        f"{report.triton_version}'s own runs {report.server_stub_python})"
        if report.stub
        else ""
    )
    ready = (
        f"environment ready: {report.archive} ({report.archive_bytes / 1e6:.1f} MB, Python "
        f"{report.python_version}, {source}){stub}"
    )
    if source != "built now":
        return [ready]
    by_size = sorted(report.largest_packages.items(), key=lambda item: (-item[1], item[0]))
    largest = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in by_size)
    return [
        f"slimmed: removed {report.removed_bytes / 1e6:.1f} MB; largest packages: {largest}",
        f"proven: Triton {report.proven_with_triton} imported {', '.join(report.proven_imports)}",
        ready,
    ]
