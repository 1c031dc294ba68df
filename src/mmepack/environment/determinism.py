"""Make a built prefix, and the `python_env.tar.gz` packed from it, the same bytes on any machine.

The same lock and the same seed Python must give the same archive, or an unchanged model gets a
new sha256 whenever a CI cache is cold (and production refuses it). Everything that differs from
one build to the next, found by building twice and comparing, is neutralised here:

- bytecode: pip compiles `.pyc` with the source's mtime, and the interpreter writes more `.pyc`
  while pip runs; both embed the absolute build path too. Every `__pycache__` is removed and
  site-packages is compiled again as checked-hash pycs (PEP 552: valid whatever the files' times)
  with the build prefix stripped from the recorded file names (the importer fixes `co_filename`
  to the real location at import anyway).
- files installers write with the build's path: console-script shebangs (`#!<prefix>/bin/python`,
  or a `#!/bin/sh` trampoline when that path is too long for a shebang; rewritten to
  `#!/usr/bin/env python3.X`, and their RECORD lines updated) and `direct_url.json`
  (removed with its RECORD line).
- what conda-pack adds: the `conda-unpack` script lists the build prefix as the placeholder to
  rewrite, so the prefix is packed with a fixed `dest_prefix` (which leaves that script out; Triton
  never runs it) and the generic `bin/activate`/`bin/deactivate` it adds are kept.
- the archive: members sorted by name, times set to one fixed epoch, owners root/root with no
  names, modes reduced to 0644/0755, and a gzip header without a time or file name. Its deflate
  data ends with a full flush before the final block (`SpliceableGzipWriter`), so an artifact
  can copy those bytes instead of compressing the environment again; it stays a standard gzip.

`check_no_build_path` then refuses an environment in which the build's path still appears, so a
new installer quirk fails the build rather than silently changing bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import IO, Any, cast

from mmepack.artifact.gzip_member import SpliceableGzipWriter
from mmepack.errors import MmepackError

# 1980-01-01T00:00:00Z: the time of every member (the oldest time a zip can hold, so tools that
# convert archives do not choke on it). Also exported as SOURCE_DATE_EPOCH to every build step.
FIXED_EPOCH = 315532800
RECORD_FILE = "mmepack-env.json"
# Where conda-pack is told the prefix will live; only text files holding the build's path are
# rewritten to it, which the steps above leave none of. It is never where Triton unpacks.
PACKED_PREFIX = "/opt/mmepack/python_env"
_COMPRESS_LEVEL = 4


def deterministic_variables() -> dict[str, str]:
    """Variables for every command that writes into the prefix: no stray bytecode, and any
    tool that honours SOURCE_DATE_EPOCH uses the fixed time."""
    return {"SOURCE_DATE_EPOCH": str(FIXED_EPOCH), "PYTHONDONTWRITEBYTECODE": "1"}


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _records(site: Path) -> list[Path]:
    return sorted(site.glob("*.dist-info/RECORD"))


def _update_record(record: Path, site: Path, changed: dict[Path, bytes | None]) -> None:
    """Rewrite RECORD lines of files we changed (new hash and size) or removed (line dropped)."""
    lines = record.read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines:
        path_text = line.rsplit(",", 2)[0] if line.count(",") >= 2 else line
        target = (site / path_text).resolve() if path_text else None
        if target is not None and target in changed:
            data = changed[target]
            if data is None:
                continue
            line = f"{path_text},{_record_hash(data)},{len(data)}"
        out.append(line)
    record.write_text("\n".join(out) + "\n", encoding="utf-8")


# Installers fall back to this trampoline when `#!<python>` would pass the kernel's 127-byte
# shebang limit: a shell line that re-executes the file with the build's interpreter.
_TRAMPOLINE_START = b"#!/bin/sh"
_TRAMPOLINE_EXEC = b"'''exec' "
_TRAMPOLINE_END = b"' '''"


def _launcher_lines(data: bytes, prefix: Path) -> int:
    """How many leading lines of a console script start the build's interpreter: 1 for a
    `#!<prefix>/bin/python` shebang, 3 for the long-path trampoline, 0 for anything else."""
    lines = data.split(b"\n", 3)
    bin_dir = f"{prefix}/bin/".encode()
    if lines[0].startswith(b"#!" + bin_dir):
        return 1
    if (
        len(lines) > 3
        and lines[0] == _TRAMPOLINE_START
        and lines[1].startswith(_TRAMPOLINE_EXEC)
        and bin_dir in lines[1]
        and lines[2] == _TRAMPOLINE_END
    ):
        return 3
    return 0


def _fix_scripts(prefix: Path, minor: str) -> dict[Path, bytes | None]:
    """Point console scripts at `/usr/bin/env python3.X` instead of the build's interpreter."""
    changed: dict[Path, bytes | None] = {}
    bin_dir = prefix / "bin"
    for script in sorted(bin_dir.iterdir()) if bin_dir.is_dir() else []:
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        count = _launcher_lines(data, prefix)
        if count == 0:
            continue
        rest = data.split(b"\n", count)[count]
        fixed = f"#!/usr/bin/env python{minor}\n".encode() + rest
        script.write_bytes(fixed)
        changed[script.resolve()] = fixed
    return changed


def _remove_direct_urls(site: Path) -> dict[Path, bytes | None]:
    """pip writes direct_url.json (holding a local path or URL) for non-index installs."""
    removed: dict[Path, bytes | None] = {}
    for path in sorted(site.glob("*.dist-info/direct_url.json")):
        removed[path.resolve()] = None
        path.unlink()
    return removed


def _purge_bytecode(prefix: Path) -> None:
    for folder in sorted(prefix.rglob("__pycache__"), reverse=True):
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)


def prefix_python(prefix: Path) -> Path:
    """The prefix's own interpreter: bytecode must carry its magic number."""
    python = next(
        (p for p in (prefix / "bin" / "python3", prefix / "bin" / "python") if p.exists()), None
    )
    if python is None:
        raise MmepackError(f"{prefix}: no bin/python3 to compile bytecode with")
    return python


def prefix_environment() -> dict[str, str]:
    """What the prefix's interpreter runs with: nothing leaking in from this process's Python,
    and no stray bytecode (deterministic_variables)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(deterministic_variables())
    return env


def compile_checked_hash(prefix: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    """`compileall` by the prefix's interpreter: checked-hash pycs (valid whatever the file
    times), the prefix stripped from the names they record; `targets` are compileall's own
    arguments (folders, or `-i <list>`)."""
    env = prefix_environment()
    command = [str(prefix_python(prefix)), "-B", "-m", "compileall", "-q"]
    command += ["--invalidation-mode", "checked-hash", "-s", str(prefix), *targets]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def _compile(prefix: Path, site: Path) -> None:
    """Checked-hash pycs for site-packages (see compile_checked_hash)."""
    result = compile_checked_hash(prefix, str(site))
    # A source file that does not compile (some packages ship deliberately broken examples) gets
    # no pyc, as with pip's own compile step; only a compileall that could not run is an error.
    if result.returncode != 0 and "*** Error compiling" not in result.stdout:
        failed = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        failed = failed[-10:]
        raise MmepackError(
            f"compiling the environment's bytecode failed (exit {result.returncode}):\n"
            + "\n".join(failed)
        )


def make_reproducible(prefix: Path, site: Path, minor: str, record: dict[str, Any]) -> None:
    """Remove every build-to-build difference from a slimmed prefix (see the module docstring)
    and record what it was built from in `mmepack-env.json` at its root (not in conda-meta/,
    where conda-pack reads every JSON file as a conda package record)."""
    changed = _fix_scripts(prefix, minor)
    changed.update(_remove_direct_urls(site))
    for record_file in _records(site):
        _update_record(record_file, site, changed)
    _purge_bytecode(prefix)
    _compile(prefix, site)
    (prefix / RECORD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    check_no_build_path(prefix)


def check_no_build_path(prefix: Path) -> None:
    """Fail if a file still holds the build's absolute path: its bytes would differ on every
    build (and it would point nowhere once unpacked)."""
    needle = str(prefix).encode()
    offenders = []
    for path in sorted(prefix.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        with path.open("rb") as handle:
            if needle in handle.read():
                offenders.append(path.relative_to(prefix).as_posix())
    if offenders:
        raise MmepackError(
            f"the environment still contains its build path {prefix} in "
            f"{', '.join(offenders[:5])}{' ...' if len(offenders) > 5 else ''}; its bytes would "
            "differ on every build (report this as an mmepack bug, with the requirement that "
            "installed these files)"
        )


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    clean = tarfile.TarInfo(info.name)
    clean.type = info.type
    clean.linkname = info.linkname
    clean.size = info.size if info.isfile() else 0
    if info.issym():
        clean.mode = 0o777
    elif info.isdir() or info.mode & 0o111:
        clean.mode = 0o755
    else:
        clean.mode = 0o644
    clean.mtime = FIXED_EPOCH
    clean.uid = clean.gid = 0
    clean.uname = clean.gname = ""
    return clean


def normalise_archive(source_tar: Path, archive: Path) -> None:
    """Write `archive` (tar.gz) from the uncompressed `source_tar`: sorted members, fixed
    times, owners and modes, and a gzip header without time or name, in the spliceable shape."""
    with tarfile.open(source_tar, "r:") as source:
        members = sorted(source.getmembers(), key=lambda m: m.name)
        with archive.open("wb") as raw, SpliceableGzipWriter(raw, _COMPRESS_LEVEL) as gz:
            # tarfile only writes to it and asks tell(): cast rather than a whole IO class.
            target = cast(IO[bytes], gz)
            with tarfile.open(fileobj=target, mode="w", format=tarfile.PAX_FORMAT) as out:
                for member in members:
                    clean = _normalised(member)
                    if member.isfile():
                        out.addfile(clean, source.extractfile(member))
                    else:
                        out.addfile(clean)


def pack_reproducibly(prefix: Path, archive: Path) -> None:
    """conda-pack the prefix (it adds bin/activate, which Triton's loader sources), then
    normalise the archive so its bytes depend only on the prefix's file contents."""
    import conda_pack

    plain = archive.with_name(archive.name + ".tar")
    try:
        conda_pack.pack(
            prefix=str(prefix),
            output=str(plain),
            format="tar",
            dest_prefix=PACKED_PREFIX,
            verbose=False,
        )
        normalise_archive(plain, archive)
    finally:
        plain.unlink(missing_ok=True)
