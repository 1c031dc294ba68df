"""Leave out of an environment what a served model never needs, and say what is left.

Every byte of `python_env.tar.gz` is stored in each artifact, downloaded by each endpoint host
and unpacked on every model load. Test suites, C headers, type stubs and pip itself are dead
weight there. The proof that follows (env_probe) imports every requirement after slimming, so a
package that did need something removed fails the build instead of the endpoint.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mmepack.environment.requirements import requirement_names

# Folders inside an installed package that only its own test suite or a compiler uses.
# Compiled bytecode (__pycache__) stays: without it every load recompiles the packages.
_PACKAGE_DIRS = {"tests", "test", "include"}
_DROPPED_SUFFIXES = (".pyi", ".h", ".hpp", ".pxd", ".c", ".cpp", ".a")
# Distributions only an installer needs.
_INSTALLERS = ("pip", "setuptools", "wheel")


@dataclass(frozen=True)
class SlimReport:
    removed_bytes: int
    largest: tuple[tuple[str, int], ...]

    def describe(self) -> str:
        largest = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in self.largest)
        return f"removed {self.removed_bytes / 1e6:.1f} MB; largest packages: {largest}"


def tree_bytes(path: Path) -> int:
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def site_packages(prefix: Path) -> Path:
    found = sorted(prefix.glob("lib/python3.*/site-packages"))
    if len(found) != 1:
        raise FileNotFoundError(f"{prefix} has {len(found)} lib/python3.*/site-packages folders")
    return found[0]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _uninstall_installers(prefix: Path, site: Path) -> None:
    """pip removes itself cleanly (entry points, RECORD); what it cannot is removed by hand."""
    python = prefix / "bin" / "python3"
    present = [
        name
        for name in _INSTALLERS
        if any(site.glob(f"{name}-*.dist-info")) and not _required_by_others(site, name)
    ]
    if present and python.exists():
        subprocess.run(
            [str(python), "-m", "pip", "uninstall", "--yes", *present],
            capture_output=True,
            check=False,
        )


def _required_by_others(site: Path, name: str) -> bool:
    """A requirement of some installed distribution (e.g. setuptools for pkg_resources users)."""
    for metadata in site.glob("*.dist-info/METADATA"):
        if metadata.parent.name.lower().startswith(f"{name}-"):
            continue
        for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Requires-Dist:") and "extra ==" not in line:
                if requirement_names(line.split(":", 1)[1]) == [name]:
                    return True
    return False


def slim_prefix(prefix: Path, largest_count: int = 5) -> SlimReport:
    site = site_packages(prefix)
    before = tree_bytes(prefix)
    _uninstall_installers(prefix, site)
    for path in sorted(site.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if not path.exists():
            continue
        depth = len(path.relative_to(site).parts)
        if path.is_dir() and path.name in _PACKAGE_DIRS and depth >= 2:
            _remove(path)
        elif path.is_file() and path.name.endswith(_DROPPED_SUFFIXES):
            _remove(path)
    removed = before - tree_bytes(prefix)
    sizes = sorted(
        (
            (tree_bytes(p), p.name)
            for p in site.iterdir()
            if not p.name.endswith(".dist-info") and p.name != "__pycache__"
        ),
        reverse=True,
    )
    return SlimReport(removed, tuple((name, size) for size, name in sizes[:largest_count]))
