"""Write one model directory as a SageMaker multi-model endpoint artifact.

Layout (what SageMaker's Triton front end expects of a multi-model tar): every Triton model
folder at the tar root, the ensemble with a version folder even though it holds no files, each
Python step's packed environment where its EXECUTION_ENV_PATH points and, when the target
server's own stub runs another Python, the environment's `triton_python_backend_stub` beside
that step's config.pbtxt. Build inputs (BUILD, tests, `.dvc` files, requirements) stay out, and
only what `safe_files` allows ships (no links out of the folder, no special or hidden files).

The tar is reproducible (sorted entries, fixed times and owners) so the same inputs give the same
bytes, which is what lets a publish of an unchanged model be a no-op.
"""

from __future__ import annotations

import gzip
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from mmepack.artifact.bytecode import add_step_bytecode
from mmepack.artifact.safe_files import scan_model_folder
from mmepack.errors import MmepackError
from mmepack.files import atomic_path, open_regular, process_alive
from mmepack.model.repository import ModelDirectory, TritonModel
from mmepack.model.version import artifact_name, check_model_name
from mmepack.model.weights import TrackedFile
from mmepack.names import CONFIG_FILE, ENV_PATH_PARAMETER, REQUIREMENTS_FILE, STUB_NAME

_VERSION_DIR_RE = re.compile(r"^[1-9][0-9]*$")
# `.<artifact>.partial-<pid>`: the name is cut so the whole stays within 255 bytes.
_PARTIAL_RE = re.compile(r"^\..*\.partial-(?P<pid>[0-9]+)$")
_MAX_NAME_BYTES = 255


@dataclass(frozen=True)
class PackageResult:
    path: Path
    model: str
    version: str
    members: tuple[str, ...]


def _artifact_files(model: TritonModel, model_dir: Path) -> list[tuple[str, Path]]:
    """(archive name, source file) for every file of one Triton model folder that may ship."""
    scanned = scan_model_folder(model.folder, model_dir)
    if scanned.unsafe:
        raise MmepackError(
            f"model '{model.name}': {len(scanned.unsafe)} entries must not ship:\n  "
            + "\n  ".join(str(u) for u in scanned.unsafe)
        )
    return [(f"{model.name}/{rel}", source) for rel, source in scanned.files]


def _ships_version_folder(model: TritonModel, members: dict[str, Path | None]) -> bool:
    """Whether a version folder of this model is already among the members.

    Asked of the members, not the disk: a `1/` that holds only ignored files (a `.gitkeep`)
    exists on disk but ships nothing, and Triton will not load an ensemble without one.
    """
    prefix = f"{model.name}/"
    return any(
        name.startswith(prefix) and _VERSION_DIR_RE.match(name[len(prefix) :].split("/", 1)[0])
        for name in members
    )


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, source: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = source.stat().st_size
    # The mode comes from the member's name, never the source file's permission bits: the CLI
    # and Pants hand over the same files with different bits (a cache copy, a sandbox digest),
    # and the artifacts must be byte-identical. Only the stub is run as a program.
    info.mode = 0o755 if name.endswith(f"/{STUB_NAME}") else 0o644
    with open_regular(source) as handle:
        tar.addfile(info, handle)


def plan_members(
    directory: ModelDirectory,
    env_archive: Path | None,
    weights: list[TrackedFile],
    stub: Path | None = None,
) -> list[tuple[str, Path | None]]:
    """Every tar member in order: (name, source file) or (name, None) for a directory."""
    members: dict[str, Path | None] = {}
    missing_weights = [w for w in weights if not w.path.exists()]
    if missing_weights:
        first = missing_weights[0]
        raise MmepackError(
            f"model '{directory.name}': {first.path} is tracked by {first.dvc_file} but is not "
            "present; pull the weights first (`mmepack pull-weights` or `dvc pull`)"
        )
    for model in directory.models:
        check_model_name(model.name, model.folder / CONFIG_FILE)
        members[f"{model.name}/"] = None
        files = _artifact_files(model, directory.root)
        for name, source in files:
            parent = name.rsplit("/", 1)[0]
            while parent and f"{parent}/" not in members:
                members[f"{parent}/"] = None
                parent = parent.rsplit("/", 1)[0] if "/" in parent else ""
            members[name] = source
        if model.is_ensemble and not _ships_version_folder(model, members):
            members[f"{model.name}/1/"] = None
        env_rel = model.execution_env_relpath()
        if env_rel is not None:
            if env_archive is None:
                raise MmepackError(
                    f"{model.folder / CONFIG_FILE}: sets {ENV_PATH_PARAMETER} but no Python "
                    "environment was built; pass --env (or let `mmepack package` build one from "
                    f"{REQUIREMENTS_FILE})"
                )
            for placed in [env_rel] + ([STUB_NAME] if stub is not None else []):
                if f"{model.name}/{placed}" in members:
                    raise MmepackError(
                        f"{model.folder / CONFIG_FILE}: the packager places "
                        f"{'the Python environment' if placed == env_rel else 'the Python stub'} "
                        f"at {model.folder / placed}, but the model folder already has a file "
                        "there that it would silently replace; rename that file or point "
                        "EXECUTION_ENV_PATH elsewhere"
                    )
            members[f"{model.name}/{env_rel}"] = env_archive
            if stub is not None:
                # Triton's Python backend runs a stub found beside config.pbtxt instead of its
                # own, which is how a step gets a Python other than the server's.
                members[f"{model.name}/{STUB_NAME}"] = stub
    return sorted(members.items(), key=lambda item: item[0])


def write_artifact(
    directory: ModelDirectory,
    version: str,
    output_dir: Path,
    env_archive: Path | None,
    weights: list[TrackedFile],
    stub: Path | None = None,
) -> PackageResult:
    """Write `<output_dir>/<model>_<version>.tar.gz` atomically: a failure leaves nothing."""
    name = check_model_name(directory.name, directory.root)
    members = plan_members(directory, env_archive, weights, stub)
    final = output_dir / artifact_name(name, version)
    if len(final.name.encode("utf-8")) > _MAX_NAME_BYTES:
        raise MmepackError(
            f"{directory.root}: the artifact name {final.name[:60]}... is longer than a file name "
            f"may be ({_MAX_NAME_BYTES} bytes); shorten the model name or the version in "
            "model_version.txt"
        )
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(output_dir)
    except OSError as exc:
        raise MmepackError(
            f"{output_dir}: cannot use the output folder ({exc.strerror}); choose a writable "
            "--output-dir"
        ) from None
    try:
        with atomic_path(final) as partial, partial.open("wb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6
        ) as gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for member, source in members:
                if source is None:
                    _add_dir(tar, member.rstrip("/"))
                else:
                    _add_file(tar, member, source)
            bytecode = add_step_bytecode(tar, directory, env_archive)
    except OSError as exc:
        raise MmepackError(
            f"{final}: cannot write the artifact ({exc.strerror or exc}); check the free space "
            f"and permissions of {output_dir}, then package again (nothing was left behind)"
        ) from None
    return PackageResult(
        path=final, model=name, version=version, members=tuple(m for m, _ in members) + bytecode
    )


def remove_stale_partials(output_dir: Path) -> list[Path]:
    """Remove `.*.partial-<pid>` files of processes that no longer run (killed packagers)."""
    removed = []
    for entry in output_dir.iterdir():
        match = _PARTIAL_RE.match(entry.name)
        if match is not None and not process_alive(int(match.group("pid"))):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def read_members(artifact: Path) -> list[str]:
    """Names in an artifact, for reports and tests."""
    with tarfile.open(artifact, "r:gz") as tar:
        return tar.getnames()
