"""DVC-tracked weights: find what a model tracks, pull it, and prove the bytes are the tracked ones.

Weights never live in git, so an artifact is only as trustworthy as this check: every file a
`.dvc` file describes must be present with the recorded md5 before it is packed, and it must
come from the team's DVC remote, never from whatever copy happens to sit in a working tree.
Weights are the large part of a model, so they pass through one DVC cache per machine that
outlives sandboxes and runs.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from mmepack.errors import MmepackError
from mmepack.files import file_hexdigest, read_text
from mmepack.model.dvc_remote import bucket_missing, default_remote, explain, require_plugin
from mmepack_contract import DVC_CACHE_VARIABLE as CONTRACT_DVC_CACHE_VARIABLE

DVC_CACHE_VARIABLE = CONTRACT_DVC_CACHE_VARIABLE


@dataclass(frozen=True)
class TrackedFile:
    """One `outs` entry of a `.dvc` file."""

    dvc_file: Path
    path: Path
    md5: str
    size: int | None

    @property
    def is_directory(self) -> bool:
        return self.md5.endswith(".dir")


def _load_dvc_file(dvc_file: Path) -> dict[str, Any]:
    if dvc_file.is_dir() and not dvc_file.is_symlink():
        raise MmepackError(
            f"{dvc_file}: is a folder, but names ending in .dvc are DVC files written by "
            "`dvc add`; rename the folder"
        )
    text = read_text(dvc_file, "DVC file")
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise MmepackError(f"{dvc_file}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("outs"), list):
        raise MmepackError(f"{dvc_file}: expected a DVC file with an 'outs' list")
    return data


def _inside_model(model_dir: Path, dvc_file: Path, index: int, raw: object) -> Path:
    """The tracked path, refused unless it is relative and stays inside the model directory
    (and so inside the repository): DVC would otherwise write, and the packager read, a file
    anywhere on the machine."""
    text = str(raw)
    relative = Path(text)
    if not text or relative.is_absolute() or ".." in relative.parts or "\\" in text:
        raise MmepackError(
            f"{dvc_file}: outs[{index}].path is {text!r}; it must be a relative path beside the "
            "DVC file, inside the model directory; re-create it with `dvc add <file>` from there"
        )
    path = dvc_file.parent / relative
    root = os.path.realpath(model_dir)
    resolved = os.path.realpath(path)
    if resolved != root and not resolved.startswith(root + os.sep):
        raise MmepackError(
            f"{dvc_file}: outs[{index}].path {text!r} leads to {resolved}, outside the model "
            f"directory {model_dir}; keep tracked weights inside it"
        )
    return path


def tracked_files(model_dir: Path) -> list[TrackedFile]:
    """Every output recorded by the `.dvc` files under `model_dir`."""
    found: list[TrackedFile] = []
    for dvc_file in sorted(model_dir.rglob("*.dvc")):
        for index, out in enumerate(_load_dvc_file(dvc_file)["outs"]):
            if not isinstance(out, dict) or "path" not in out or "md5" not in out:
                raise MmepackError(
                    f"{dvc_file}: outs[{index}] needs 'path' and 'md5'; re-create it with "
                    "`dvc add <file>`"
                )
            size = out.get("size")
            found.append(
                TrackedFile(
                    dvc_file=dvc_file,
                    path=_inside_model(model_dir, dvc_file, index, out["path"]),
                    md5=str(out["md5"]),
                    size=int(size) if isinstance(size, int) else None,
                )
            )
    return found


def file_md5(path: Path) -> str:
    return file_hexdigest(path, "md5")


def verify_weights(model: str, files: list[TrackedFile]) -> None:
    """Fail unless every tracked file is present with its recorded content.

    Compared as `mmepack.model.drift` compares (the size first, then the md5, remembered per
    file identity), so a file validation already hashed is not hashed again.
    """
    from mmepack.model.drift import find_drift

    problems: list[str] = []
    present: list[TrackedFile] = []
    for tracked in files:
        if tracked.is_directory:
            if not tracked.path.is_dir():
                problems.append(f"{tracked.path} (tracked by {tracked.dvc_file}) is missing")
            continue
        if not tracked.path.is_file():
            problems.append(f"{tracked.path} (tracked by {tracked.dvc_file}) is missing")
            continue
        present.append(tracked)
    for drift in find_drift(present):
        problems.append(
            f"{drift.tracked.path} does not match {drift.tracked.dvc_file} ({drift.why})"
        )
    if problems:
        raise MmepackError(
            f"model '{model}': DVC-tracked weights are not in place:\n  "
            + "\n  ".join(problems)
            + "\nRun `dvc pull` (or `mmepack pull-weights`) and check that the remote holds them; "
            "if you changed the file on purpose, `dvc add` and `dvc push` it."
        )


def default_dvc_cache() -> Path:
    """$MMEPACK_DVC_CACHE, else the XDG cache folder, else ~/.cache/mmepack/dvc."""
    if os.environ.get(DVC_CACHE_VARIABLE):
        return Path(os.environ[DVC_CACHE_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmepack" / "dvc"


def _cache_object(cache_dir: Path, md5: str) -> Path:
    """Where DVC 3 keeps the object of an md5 in a cache folder."""
    return cache_dir / "files" / "md5" / md5[:2] / md5[2:]


def _missing_objects(cache_dir: Path, files: list[TrackedFile]) -> dict[str, int]:
    """md5 -> size of every object the tracked files need that the cache lacks (a directory
    needs its listing and each file it lists)."""
    missing: dict[str, int] = {}
    for tracked in files:
        listing = _cache_object(cache_dir, tracked.md5)
        if not listing.is_file():
            missing[tracked.md5] = tracked.size or 0
            continue
        if not tracked.is_directory:
            continue
        try:
            entries = json.loads(listing.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            missing[tracked.md5] = tracked.size or 0
            continue
        for entry in entries:
            md5 = str(entry.get("md5", ""))
            if md5 and not _cache_object(cache_dir, md5).is_file():
                missing[md5] = int(entry.get("size") or 0)
    return missing


def modified_local_copies(files: list[TrackedFile]) -> list[str]:
    """Tracked files present on disk with other bytes than their `.dvc` record (see
    `mmepack.model.drift` for how cheaply that is decided)."""
    from mmepack.model.drift import find_drift

    return [drift.describe() for drift in find_drift(files)]


class _Collector(logging.Handler):
    """Keeps the exceptions DVC logs (it raises only a count) and silences DVC's own console
    output, so a failure is reported once, by mmepack."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.failures: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.failures.append(record.exc_info[1])


@contextmanager
def dvc_logs() -> Iterator[_Collector]:
    collector = _Collector()
    loggers = [logging.getLogger(name) for name in ("dvc", "dvc_data", "dvc_objects")]
    saved = [(logger.handlers[:], logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.handlers = [collector]
        logger.propagate = False
    try:
        yield collector
    finally:
        for logger, (handlers, propagate) in zip(loggers, saved):
            logger.handlers = handlers
            logger.propagate = propagate


@dataclass(frozen=True)
class PullResult:
    """What a pull cost: objects and bytes fetched from the remote, and from where."""

    remote: str
    downloaded_objects: int
    downloaded_bytes: int
    cache_dir: Path
    # The md5 of every object fetched from the remote (the rest came from the cache).
    fetched: frozenset[str] = frozenset()


def pull_weights(
    model: str,
    repo_root: Path,
    files: list[TrackedFile],
    *,
    cache_dir: Path | None = None,
    checkout: Path | None = None,
    check_drift: bool = True,
) -> PullResult | None:
    """Put a model's DVC-tracked files in place from the repository's default remote.

    Objects go through one DVC cache outside the repository (`cache_dir`, default
    `default_dvc_cache()`), so each content is downloaded once per machine and shared by every
    model and checkout that tracks it; only this model's `.dvc` files are fetched. The remote is
    always asked for objects the cache lacks, even when a working-tree copy exists, so a missing
    `dvc push` fails here rather than for the next person. A working-tree copy that differs from
    its record is refused, never overwritten. `checkout` is the real checkout when `repo_root`
    is a copy of it (a Pants sandbox), for remotes that are local folders. `check_drift=False`
    is for a caller that has just refused drifted copies itself (package, after validation).
    """
    if not files:
        return None
    dvc_files = ", ".join(sorted({str(f.dvc_file) for f in files}))
    if not (repo_root / ".dvc").is_dir():
        raise MmepackError(
            f"model '{model}': {repo_root} has no .dvc/ folder but {dvc_files} tracks weights; "
            "run from the repository root (or give --repo-root)"
        )
    modified = modified_local_copies(files) if check_drift else []
    if modified:
        raise MmepackError(f"model '{model}': " + "; ".join(modified) + ".")
    cache = (cache_dir or default_dvc_cache()).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    targets = sorted({str(f.dvc_file.resolve()) for f in files})
    core = {"no_scm": not (repo_root / ".git").exists()}
    with tempfile.TemporaryDirectory(prefix="mmepack-dvc-") as scratch, dvc_logs() as logs:
        # DVC's per-repository index goes to a scratch folder: a sandbox path is never reused.
        base = {"core": {**core, "site_cache_dir": scratch}, "cache": {"dir": str(cache)}}
        try:
            with Repo(str(repo_root), config=base) as probe:
                remote = default_remote(probe.config, model, dvc_files)
            require_plugin(remote, model, dvc_files)
            settings = remote.overrides(repo_root, checkout)
            if remote.scheme in ("s3", ""):
                settings["verify"] = True  # hash each download before it enters the cache
            config = {**base, "remote": {remote.name: settings}}
            needed = _missing_objects(cache, files)
            with Repo(str(repo_root), config=config) as repo:
                if needed:
                    try:
                        repo.fetch(targets=targets)
                    except DvcException:
                        pass  # the cause is in the log; judged by what reached the cache below
                still_missing = _missing_objects(cache, files)
                if still_missing:
                    where = ", ".join(
                        str(f.path) for f in files if f.md5 in still_missing or f.is_directory
                    )
                    raise MmepackError(
                        f"model '{model}': cannot pull {where} (tracked by {dvc_files}) from "
                        f"{remote.describe()}: "
                        + explain(
                            remote,
                            logs.failures,
                            no_bucket=not logs.failures and bucket_missing(repo, remote),
                        )
                    )
                repo.checkout(targets=targets, force=True)
        except DvcException as exc:
            raise MmepackError(
                f"model '{model}': DVC failed for {dvc_files}: {exc}"
                + (f" ({exc.__cause__})" if exc.__cause__ else "")
            ) from None
    fetched = {md5: size for md5, size in needed.items() if md5 not in still_missing}
    return PullResult(
        remote=remote.describe(),
        downloaded_objects=len(fetched),
        downloaded_bytes=sum(fetched.values()),
        cache_dir=cache,
        fetched=frozenset(fetched),
    )


def describe_pull(model: str, result: PullResult) -> str:
    """One line for the build log: whether the remote was needed at all."""
    if not result.downloaded_objects:
        return f"model '{model}': weights from the DVC cache {result.cache_dir}, nothing downloaded"
    return (
        f"model '{model}': downloaded {result.downloaded_objects} object(s), "
        f"{result.downloaded_bytes} bytes, from {result.remote} into {result.cache_dir}"
    )
