"""What an artifact's bytes are made of: environment, weights, code, stubs.

On a multi-model endpoint every cold invoke waits for the artifact's download and unpacking, so
its size is load time. The report says which part to shrink; the usual surprise is that the
Python environment, not the model, is most of the file. The flag is raised only with a fix it
can name, a requirement no Python step imports (`unused_requirements`): for numpy plus a package
the steps use there is nothing to drop, and a warning nobody can act on teaches users to ignore
warnings.
"""

from __future__ import annotations

from mmepack.artifact.writer import PART_ENVIRONMENT, PARTS, PackageResult
from mmepack.names import REQUIREMENTS_FILE

# How the size message starts (the package report carries it for the plugin to relay).
SIZE_MESSAGE = "size of "
# Above this share of the compressed artifact, the environment "dominates" it.
ENV_DOMINATES = 0.5


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} KB"


def environment_share(result: PackageResult) -> float:
    """The environment's share of the artifact's compressed bytes (0 without one)."""
    total = sum(result.part_bytes.values())
    return result.part_bytes.get(PART_ENVIRONMENT, 0) / total if total else 0.0


def size_message(result: PackageResult) -> str:
    """The size by part (compressed in the artifact / unpacked), without the `mmepack: ` that
    stdout puts before it; the package report carries it as is."""
    total = sum(result.part_bytes.values())
    cells = []
    for part in PARTS:
        packed = result.part_bytes.get(part, 0)
        cells.append(f"{part} {_mb(packed)} ({_mb(result.part_content.get(part, 0))} unpacked)")
    return (
        f"{SIZE_MESSAGE}{result.path.name}: {_mb(total)}, environment layout "
        f"{result.layout.value}: " + ", ".join(cells)
    )


def size_warning(result: PackageResult) -> str | None:
    """The flag, only when the environment dominates and a requirement can be dropped; without
    the `mmepack: warning: ` that stdout puts before it."""
    share = environment_share(result)
    if share <= ENV_DOMINATES or not result.unused_requirements:
        return None
    unused = ", ".join(result.unused_requirements)
    return (
        f"{result.path.name}: the Python environment is {share:.0%} of the "
        "artifact, and every cold load on the endpoint downloads and unpacks it; "
        f"{REQUIREMENTS_FILE} lists {unused}, which no Python step imports and no package "
        f"they import needs: drop {'it' if len(result.unused_requirements) == 1 else 'them'} "
        f"and re-lock (`mmepack lock <model dir>`)"
    )


def size_lines(result: PackageResult) -> list[str]:
    """One line per part with bytes (compressed in the artifact / unpacked), then the flag."""
    lines = [f"mmepack: {size_message(result)}"]
    warning = size_warning(result)
    if warning is not None:
        lines.append(f"mmepack: warning: {warning}")
    return lines
