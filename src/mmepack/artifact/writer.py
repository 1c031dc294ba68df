"""Write one model directory as a SageMaker multi-model endpoint artifact.

Layout (what SageMaker's Triton front end expects of a multi-model tar): every Triton model
folder at the tar root, the ensemble with a version folder even though it holds no files, the
packed Python environment once for all Python steps (in the ensemble's folder, each step's
EXECUTION_ENV_PATH rewritten to it; see `mmepack.artifact.env_layout`) and, when the target
server's own stub runs another Python, the environment's `triton_python_backend_stub` beside
each Python step's config.pbtxt. Build inputs (BUILD, tests, `.dvc` files, requirements) stay out, and
only what `safe_files` allows ships (no links out of the folder, no special or hidden files).

The tar is reproducible (sorted entries, fixed times and owners, see `mmepack.artifact.gzip_tar`)
so the same inputs give the same bytes, which is what lets a publish of an unchanged model be a
no-op.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from mmepack.artifact.bytecode import add_step_bytecode, archive_python
from mmepack.artifact.env_layout import EnvLayout, place_environment
from mmepack.artifact.gzip_member import GzipFacts, inspect_gzip_reading
from mmepack.artifact.gzip_tar import BinarySink, GzipTarWriter
from mmepack.artifact.safe_files import scan_model_folder
from mmepack.artifact.unused_requirements import Distribution, read_environment
from mmepack.errors import MmepackError
from mmepack.files import atomic_path, open_regular, process_alive
from mmepack.model.repository import ModelDirectory, TritonModel
from mmepack.model.version import artifact_name, check_folder_name, check_model_name
from mmepack.model.weights import PullResult, TrackedFile
from mmepack.names import (
    CONFIG_FILE,
    ENV_PATH_PARAMETER,
    REQUIREMENTS_FILE,
    SHARED_ENV_TAR,
    STUB_NAME,
)

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
    # Compressed bytes per part (environment, weights, stubs, code) and their content's size.
    part_bytes: dict[str, int] = field(default_factory=dict)
    part_content: dict[str, int] = field(default_factory=dict)
    layout: EnvLayout = EnvLayout.default()
    # Requirements no Python step imports nor needs (see artifact.unused_requirements): what
    # the size warning names; filled in by `package_model` when the environment dominates.
    unused_requirements: tuple[str, ...] = ()
    # The artifact's bytes and their sha256, counted as they were written.
    size: int = 0
    sha256: str = ""
    # The DVC-tracked files packed, and what pulling them cost (`package_model` fills both in).
    weights: tuple[TrackedFile, ...] = ()
    pull: PullResult | None = None
    # The environment's distributions, read while its bytes were checked for splicing (None
    # when they were not: no environment, or another layout); what the size warning needs.
    env_distributions: dict[str, Distribution] | None = None


class _HashingFile:
    """The artifact's file, hashing and counting what is written to it (no second read)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self._raw.write(data)


def _artifact_files(model: TritonModel, model_dir: Path) -> list[tuple[str, Path]]:
    """(archive name, source file) for every file of one Triton model folder that may ship."""
    scanned = scan_model_folder(model.folder, model_dir)
    if scanned.unsafe:
        raise MmepackError(
            f"model '{model.name}': {len(scanned.unsafe)} entries must not ship:\n  "
            + "\n  ".join(str(u) for u in scanned.unsafe)
        )
    return [(f"{model.name}/{rel}", source) for rel, source in scanned.files]


def _ships_version_folder(model: TritonModel, members: dict[str, Path | bytes | None]) -> bool:
    """Whether a version folder of this model is already among the members.

    Asked of the members, not the disk: a `1/` that holds only ignored files (a `.gitkeep`)
    exists on disk but ships nothing, and Triton will not load an ensemble without one.
    """
    prefix = f"{model.name}/"
    return any(
        name.startswith(prefix) and _VERSION_DIR_RE.match(name[len(prefix) :].split("/", 1)[0])
        for name in members
    )


# The parts an artifact's size is reported by (`package` prints them).
PART_ENVIRONMENT = "environment"
PART_WEIGHTS = "weights"
PART_STUBS = "stubs"
PART_CODE = "code"
PARTS = (PART_ENVIRONMENT, PART_WEIGHTS, PART_STUBS, PART_CODE)
# The artifact's gzip level: what it compresses is configs, code and weights (the environment
# arrives compressed); benchmarks/package_bench.py measures the level's cost.
COMPRESS_LEVEL = 6


@dataclass(frozen=True)
class PlannedMember:
    """One tar member: a folder (source None), a file, or bytes the packager wrote (a config
    whose EXECUTION_ENV_PATH it rewrote)."""

    name: str
    source: Path | bytes | None
    part: str


def _part_of(name: str, source: Path, weights: list[TrackedFile]) -> str:
    if name.endswith(f"/{STUB_NAME}"):
        return PART_STUBS
    resolved = source.resolve()
    for tracked in weights:
        target = tracked.path.resolve()
        if resolved == target or target in resolved.parents:
            return PART_WEIGHTS
    return PART_CODE


def plan_members(
    directory: ModelDirectory,
    env_archive: Path | None,
    weights: list[TrackedFile],
    stub: Path | None = None,
    layout: EnvLayout = EnvLayout.default(),
) -> list[PlannedMember]:
    """Every tar member in name order. `weights` are the model's DVC-tracked files, which the
    caller has checked are in place (`verify_weights`, as `package_model` does); here they
    only say which members are weights."""
    members: dict[str, Path | bytes | None] = {}
    parts: dict[str, str] = {}
    for model in directory.models:
        check = check_folder_name if model.names_its_backend else check_model_name
        check(model.name, model.folder / CONFIG_FILE)
        members[f"{model.name}/"] = None
        files = _artifact_files(model, directory.root)
        for name, source in files:
            parent = name.rsplit("/", 1)[0]
            while parent and f"{parent}/" not in members:
                members[f"{parent}/"] = None
                parent = parent.rsplit("/", 1)[0] if "/" in parent else ""
            members[name] = source
            parts[name] = _part_of(name, source, weights)
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
            if stub is not None:
                # Triton's Python backend runs a stub found beside config.pbtxt instead of its
                # own, which is how a step gets a Python other than the server's.
                members[f"{model.name}/{STUB_NAME}"] = stub
                parts[f"{model.name}/{STUB_NAME}"] = PART_STUBS
    if env_archive is not None:
        placement = place_environment(directory, layout)
        for name in placement.members:
            if name in members:
                raise MmepackError(
                    f"{directory.root / name}: the packager places the Python environment "
                    "there, but the model folder already has a file there that it would "
                    "silently replace; rename that file"
                )
            members[name] = env_archive
            parts[name] = PART_ENVIRONMENT
        for name, text in placement.configs.items():
            members[name] = text
    return [
        PlannedMember(name, source, parts.get(name, PART_CODE))
        for name, source in sorted(members.items(), key=lambda item: item[0])
    ]


def _info(name: str, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    # The mode comes from the member's name, never the source file's permission bits: the CLI
    # and Pants hand over the same files with different bits (a cache copy, a sandbox digest),
    # and the artifacts must be byte-identical. Only the stub is run as a program.
    info.mode = 0o755 if kind == tarfile.DIRTYPE or name.endswith(f"/{STUB_NAME}") else 0o644
    return info


def _write_member(tar: GzipTarWriter, member: PlannedMember, env_facts: GzipFacts | None) -> None:
    source = member.source
    if source is None:
        tar.add_dir(_info(member.name.rstrip("/"), tarfile.DIRTYPE), member.part)
    elif isinstance(source, bytes):
        tar.add_bytes(_info(member.name), source, member.part)
    elif member.part == PART_ENVIRONMENT and member.name.endswith(f"/{SHARED_ENV_TAR}"):
        # The plain tar, shipped as the environment build's own deflate bytes (compressed once).
        tar.add_spliced(_info(member.name), source, member.part, env_facts)
    else:
        info = _info(member.name)
        info.size = source.stat().st_size
        # An environment archive is gzip already: stored, not compressed a second time.
        tar.add_file(info, source, member.part, store=member.part == PART_ENVIRONMENT)


def write_artifact(
    directory: ModelDirectory,
    version: str,
    output_dir: Path,
    env_archive: Path | None,
    weights: list[TrackedFile],
    stub: Path | None = None,
    *,
    layout: EnvLayout = EnvLayout.default(),
    compress_level: int = COMPRESS_LEVEL,
    env_python: str | None = None,
) -> PackageResult:
    """Write `<output_dir>/<model>_<version>.tar.gz` atomically: a failure leaves nothing.

    `weights` must be in place (`verify_weights`): the writer does not look for them again.
    `env_python` is the environment's Python version as its build report states it (the steps'
    bytecode is compiled for it); without it, it is read from the archive.

    `layout` says how the Python environment travels (see `mmepack.artifact.env_layout`);
    `EnvLayout.PER_STEP` writes the layout of earlier releases, one copy per step, recompressed
    by the artifact's gzip as before.
    """
    name = check_model_name(directory.name, directory.root)
    members = plan_members(directory, env_archive, weights, stub, layout)
    env_facts = contents = None
    if env_archive is not None and layout is EnvLayout.SHARED_TAR:
        # One inflate of the environment: the splice check, its Python and its distributions.
        env_facts, contents = inspect_gzip_reading(env_archive, read_environment)
    if env_archive is not None and env_python is None:
        env_python = contents.python if contents is not None else archive_python(env_archive)
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
        with atomic_path(final) as partial, partial.open("wb") as file:
            raw = _HashingFile(file)
            if layout is EnvLayout.PER_STEP:
                tar = _legacy_writer(raw, compress_level)
            else:
                tar = GzipTarWriter(raw, compress_level)
            for member in members:
                _write_member(tar, member, env_facts)
            bytecode = add_step_bytecode(tar, directory, env_python)
            tar.close(PART_CODE)
    except OSError as exc:
        raise MmepackError(
            f"{final}: cannot write the artifact ({exc.strerror or exc}); check the free space "
            f"and permissions of {output_dir}, then package again (nothing was left behind)"
        ) from None
    sizes = {part: tar.part_bytes.get(part, 0) for part in PARTS}
    content = {part: tar.part_content.get(part, 0) for part in PARTS}
    return PackageResult(
        path=final,
        model=name,
        version=version,
        members=tuple(m.name for m in members) + bytecode,
        part_bytes=sizes,
        part_content=content,
        layout=layout,
        size=raw.size,
        sha256=raw.hash.hexdigest(),
        env_distributions=None if contents is None else contents.distributions,
    )


class _LegacyGzipTarWriter(GzipTarWriter):
    """Before: one deflate stream over everything, the environment's gzip included."""

    def add_file(
        self, info: tarfile.TarInfo, source: Path | IO[bytes], part: str, *, store: bool = False
    ) -> None:
        super().add_file(info, source, part, store=False)


def _legacy_writer(raw: BinarySink, level: int) -> GzipTarWriter:
    return _LegacyGzipTarWriter(raw, level)


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
