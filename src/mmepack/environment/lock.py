"""Per-model lock files: what requirements.txt resolves to, pinned and hashed, committed beside it.

`requirements.txt` says what a model needs (`pillow==13.*`); two machines resolving it on two
days can install two different environments, and a cache keyed on that text cannot tell them
apart. The lock written here pins every distribution to one version and one wheel's sha256 for
the target platform (manylinux x86_64) and the environment's Python, so the environment build
installs exactly those files (`--require-hashes --no-deps`: no resolution at build time) and the
environment cache is keyed on the lock's content.

Resolution is pip's own: `pip install --dry-run --report` with the target's platform tags and
Python, run by the seed interpreter of that Python so environment markers are evaluated for it.
mmepack only turns pip's report into a requirements file with hashes.

The target Triton release's numpy requirement (`numpy<2` for 2.51.0, see
`mmepack.triton.target.NUMPY_BY_TRITON`) joins every resolution, as it joins every unlocked build:
a lock the build would refuse for that server is never written.

The lock also records a digest of the requirements it was made from (normalised, with every
`-r`/`-c` include), so validation can say when `requirements.txt` changed and its lock did not.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from mmepack.environment.builders import install_environment
from mmepack.environment.requirements import (
    canonical_name,
    includes,
    normalised_requirements,
    read_requirements,
)
from mmepack.errors import MmepackError, model_prefix
from mmepack.files import atomic_path
from mmepack.names import LOCK_FILE, REQUIREMENTS_FILE
from mmepack.triton.target import TargetServer

Log = Callable[[str], None]

# The glibc of the target hosts: SageMaker's Triton images (24.x) are Ubuntu 22.04, glibc 2.35.
DEFAULT_GLIBC = "2.35"
DEFAULT_ARCH = "x86_64"
_HEADER_FIELDS = ("model", "python", "platform", "requirements-sha256", "resolver", "target")


def lock_path(requirements: Path) -> Path:
    """Where the lock of a requirements file lives: beside it, named once in names.py."""
    return requirements.with_name(LOCK_FILE)


def target_platforms(glibc: str = DEFAULT_GLIBC, arch: str = DEFAULT_ARCH) -> list[str]:
    """Every wheel platform tag a manylinux host with this glibc accepts, newest first.

    pip's `--platform` takes tags literally (it does not expand `manylinux_2_35` to the older
    manylinux tags a 2.35 host also runs), so the whole list is spelled out.
    """
    major, minor = (int(part) for part in glibc.split("."))
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{name}_{arch}" for m, name in legacy.items() if minor >= m]
    return tags


def _includes(path: Path, text: str) -> list[Path]:
    """Files `text` (read from `path`) pulls in, in every form pip accepts (`-rx`, `--constraint=x`,
    ...): parsed by the same function the environment cache key uses."""
    return [path.parent / include.target for _, include in includes(text)]


def requirements_digest(requirements: Path, label: str = "") -> str:
    """sha256 of the normalised requirements and every file they include (`-r`, `-c`).

    Comments, blank lines, spacing, name case and order do not count (they do not change what
    pip resolves), so only a real change makes a lock stale.
    """
    parts: list[tuple[str, str]] = []
    pending, seen = [requirements], set()
    while pending:
        path = pending.pop(0)
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        if not path.is_file():
            raise MmepackError(
                f"{model_prefix(label)}{path} is missing; it is included from "
                f"{requirements} (-r/-c); restore it or remove the include"
            )
        text = path.read_text(encoding="utf-8")
        name = os.path.relpath(path, requirements.parent)
        parts.append((name, normalised_requirements(text)))
        pending.extend(_includes(path, text))
    payload = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class LockFile:
    path: Path
    python: str
    platform: str
    requirements_sha256: str
    pins: tuple[Pin, ...]
    text: str

    @property
    def sha256(self) -> str:
        """The hash of what the lock pins (comments and order aside): the environment cache key
        and the provenance record use this, so relocking to the same pins changes neither."""
        return hashlib.sha256(normalised_requirements(self.text).encode()).hexdigest()


def render_lock(
    model: str,
    python: str,
    platform: str,
    digest: str,
    resolver: str,
    pins: list[Pin],
    target: str | None = None,
) -> str:
    """The lock's text: a pip requirements file (`name==version --hash=sha256:...`) that
    `pip install --require-hashes --no-deps -r` accepts, with a header mmepack reads back.
    `target` (e.g. `Triton 2.51.0, numpy<2`) says which server's numpy cap the pins honour."""
    command = f"mmepack lock models/{model}" if model else "mmepack lock <model dir>"
    lines = [
        f"# Written by `{command} --python {python}`; do not edit by hand.",
        "# Every distribution the environment installs, pinned to one wheel by sha256.",
        f"# model: {model}",
        f"# python: {python}",
        f"# platform: {platform}",
        f"# requirements-sha256: {digest}",
        f"# resolver: {resolver}",
        *([f"# target: {target}"] if target else []),
    ]
    for pin in sorted(pins, key=lambda p: p.name):
        lines.append(f"{pin.name}=={pin.version} \\")
        lines.append(f"    --hash=sha256:{pin.sha256}")
    return "\n".join(lines) + "\n"


def read_lock(path: Path) -> LockFile:
    """Parse a lock written by `render_lock`; a hand-edited or foreign file is an error that
    says how to regenerate it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MmepackError(f"{path}: cannot read ({exc.strerror})") from None
    header: dict[str, str] = {}
    pins: list[Pin] = []
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.startswith("# ") and ":" in raw and not pins and not pending:
            key, value = raw[2:].split(":", 1)
            if key in _HEADER_FIELDS:
                header[key] = value.strip()
            continue
        if not raw.strip() or raw.startswith("#"):
            continue
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        tokens = (pending + raw).split()
        pending = ""
        hashes = [t.split(":", 1)[1] for t in tokens[1:] if t.startswith("--hash=sha256:")]
        if "==" not in tokens[0] or len(hashes) != 1:
            raise MmepackError(
                f"{path}:{number}: expected `name==version --hash=sha256:<hex>` as `mmepack lock` "
                f"writes it; regenerate the file with `mmepack lock {path.parent}`"
            )
        name, version = tokens[0].split("==", 1)
        pins.append(Pin(canonical_name(name), version, hashes[0]))
    missing = [f for f in ("python", "platform", "requirements-sha256") if f not in header]
    if missing:
        raise MmepackError(
            f"{path}:1: the header lacks {', '.join(missing)}; regenerate the file with "
            f"`mmepack lock {path.parent}`"
        )
    return LockFile(
        path, header["python"], header["platform"], header["requirements-sha256"], tuple(pins), text
    )


def stale_reason(requirements: Path, lock: LockFile, label: str = "") -> str | None:
    """Why `lock` no longer matches `requirements` (with the command that fixes it), or None."""
    if requirements_digest(requirements, label) == lock.requirements_sha256:
        return None
    return (
        f"{requirements} (or a file it includes) changed after {lock.path.name} was made; run "
        f"`mmepack lock {requirements.parent} --python {lock.python}` (or `./pants lock-envs "
        f"{requirements.parent}:`) and commit {lock.path.name}"
    )


def _wheel_sha256(item: dict[str, object], label: str) -> str:
    info = item.get("download_info")
    url = str(info.get("url", "")) if isinstance(info, dict) else ""
    archive = info.get("archive_info", {}) if isinstance(info, dict) else {}
    hashes = archive.get("hashes", {}) if isinstance(archive, dict) else {}
    if isinstance(hashes, dict) and isinstance(hashes.get("sha256"), str):
        return str(hashes["sha256"])
    parsed = urlparse(url)
    if parsed.scheme == "file" and Path(unquote(parsed.path)).is_file():
        return hashlib.sha256(Path(unquote(parsed.path)).read_bytes()).hexdigest()
    raise MmepackError(
        f"{model_prefix(label)}the index gave no sha256 for {url or item}; lock from an index "
        "that publishes hashes (a PEP 503 index with #sha256= links)"
    )


def _pip_for(python: str) -> tuple[list[str], str]:
    """The pip to resolve with: the seed interpreter of `python` when one is found (markers are
    then evaluated for that Python), else this interpreter's pip with `--python-version`."""
    from mmepack.environment.base_python import find_base_interpreter

    try:
        base = find_base_interpreter(python)
        probe = subprocess.run(
            [str(base.executable), "-m", "pip", "--version"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return [str(base.executable), "-m", "pip"], base.version
    except MmepackError:
        pass
    return [sys.executable, "-m", "pip"], "%d.%d.%d" % sys.version_info[:3]


def resolve(
    requirements: Path,
    python: str,
    *,
    glibc: str = DEFAULT_GLIBC,
    target: TargetServer | None = None,
    label: str = "",
    log: Log | None = None,
) -> tuple[list[Pin], str]:
    """Resolve `requirements` plus the target server's numpy requirement (`numpy<2` for Triton
    2.51.0) with pip's resolver, so the pins are ones the build accepts; (pins, resolver)."""
    read_requirements(requirements, label)  # a missing include is named before pip runs
    target = target or TargetServer()
    numpy, why = target.numpy_requirement
    pip, interpreter = _pip_for(python)
    with tempfile.TemporaryDirectory(prefix="mmepack-lock-") as scratch:
        report = Path(scratch) / "report.json"
        argv = [
            *pip,
            "install",
            "--dry-run",
            "--quiet",
            "--no-input",
            "--disable-pip-version-check",
            "--ignore-installed",
            "--only-binary=:all:",
            f"--python-version={python}",
            "--implementation=cp",
            *(f"--platform={tag}" for tag in target_platforms(glibc)),
            # pip accepts platform options only with --target; --dry-run writes nothing there.
            f"--target={Path(scratch) / 'unused'}",
            f"--report={report}",
            "-r",
            str(requirements),
            numpy,
        ]
        if log:
            log(
                f"{model_prefix(label)}resolving {requirements} for Python {python} on "
                f"manylinux_{glibc.replace('.', '_')}_{DEFAULT_ARCH} with pip, with {numpy} "
                f"for Triton {target.triton_version}"
            )
        result = subprocess.run(
            argv, capture_output=True, text=True, env=install_environment(), check=False
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise MmepackError(
                f"{model_prefix(label)}pip could not resolve {requirements} for Python {python} "
                f"on manylinux x86_64 with {numpy} (Triton {target.triton_version} needs it: "
                f"{why}) (exit {result.returncode}):\n{tail}"
            )
        data = json.loads(report.read_text(encoding="utf-8"))
    pins = [
        Pin(
            canonical_name(str(item["metadata"]["name"])),
            str(item["metadata"]["version"]),
            _wheel_sha256(item, label),
        )
        for item in data.get("install", [])
    ]
    return pins, f"pip {data.get('pip_version', '?')} on CPython {interpreter}"


def lock_model(
    model_dir: Path,
    python: str,
    *,
    glibc: str = DEFAULT_GLIBC,
    target: TargetServer | None = None,
    log: Log | None = None,
) -> LockFile:
    """Write `<model_dir>/requirements.lock` for `python` and the target server (atomically)
    and return it."""
    requirements = model_dir / REQUIREMENTS_FILE
    label = model_dir.resolve().name
    target = target or TargetServer()
    digest = requirements_digest(requirements, label)
    pins, resolver = resolve(requirements, python, glibc=glibc, target=target, label=label, log=log)
    platform = f"manylinux_{glibc.replace('.', '_')}_{DEFAULT_ARCH}"
    numpy, _ = target.numpy_requirement
    text = render_lock(
        label, python, platform, digest, resolver, pins, f"Triton {target.triton_version}, {numpy}"
    )
    path = lock_path(requirements)
    with atomic_path(path) as partial:
        partial.write_text(text, encoding="utf-8")
    return read_lock(path)


@dataclass(frozen=True)
class InstallSource:
    """What the environment build installs from: the lock when there is one, else (with a
    warning) requirements.txt resolved at build time."""

    path: Path
    text: str
    locked: bool
    lock_sha256: str | None


def install_source(
    requirements: Path, python: str, label: str = "", log: Log | None = None
) -> InstallSource:
    """The lock beside `requirements` if present (checked: made from these requirements, for
    this Python), else `requirements` itself, which is not reproducible and says so."""
    text = read_requirements(requirements, label)
    path = lock_path(requirements)
    if not path.is_file():
        if log:
            log(
                f"{model_prefix(label)}warning: no {LOCK_FILE} beside {requirements}: resolving at "
                f"build time, so two builds may install different versions; run `mmepack lock "
                f"{requirements.parent} --python {python}` and commit {LOCK_FILE}"
            )
        return InstallSource(requirements, text, False, None)
    lock = read_lock(path)
    if lock.python != python:
        raise MmepackError(
            f"{model_prefix(label)}{path} was made for Python {lock.python} but the environment "
            f"is Python {python}; run `mmepack lock {requirements.parent} --python {python}` and "
            f"commit {LOCK_FILE}"
        )
    reason = stale_reason(requirements, lock, label)
    if reason is not None:
        raise MmepackError(f"{model_prefix(label)}{reason}")
    return InstallSource(path, lock.text, True, lock.sha256)
