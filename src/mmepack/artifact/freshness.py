"""Whether an artifact still holds its model's current sources ("stale" when it does not).

`./pants test` packages in its sandbox and leaves dist/ alone, so a `dist/mme/<m>_<v>.tar.gz`
easily predates the model's latest edit; comparing cases against it reports "unchanged" for a
model that changed. The artifact carries no record of its sources, so this compares what it
holds with what the model directory would ship now: every file that would ship must be in the
artifact with the same bytes (a Python step's config as the packager rewrites it), a
DVC-tracked weight with the md5 its `.dvc` file records, and the version must be
model_version.txt's. Only files present are judged, so a folder holding part of a model (a
Pants sandbox with configs only) is checked as far as it goes. A deleted source file is not
detected.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

from mmepack.artifact.env_layout import EnvLayout, place_environment
from mmepack.artifact.safe_files import scan_model_folder
from mmepack.errors import MmepackError
from mmepack.files import file_hexdigest
from mmepack.model.repository import read_model_directory
from mmepack.model.version import parse_artifact_name, read_model_version
from mmepack.model.weights import tracked_files
from mmepack.names import CONFIG_FILE, VERSION_FILE

_SHOWN = 8


def _expected(model_dir: Path) -> dict[str, tuple[str, set[str]]]:
    """Member name -> (hash algorithm, the digests it may have) for what would ship now."""
    directory = read_model_directory(model_dir)
    weights = {t.path.resolve(): t for t in tracked_files(model_dir) if not t.is_directory}
    rewritten: dict[str, set[str]] = {}
    for layout in EnvLayout:
        try:
            placement = place_environment(directory, layout)
        except MmepackError:
            continue
        for name, text in placement.configs.items():
            rewritten.setdefault(name, set()).add(hashlib.sha256(text).hexdigest())
    expected: dict[str, tuple[str, set[str]]] = {}
    for model in directory.models:
        for rel, source in scan_model_folder(model.folder, model_dir).files:
            name = f"{model.name}/{rel}"
            tracked = weights.get(source.resolve())
            if tracked is not None:
                expected[name] = ("md5", {tracked.md5})
                continue
            if not source.is_file():
                continue
            digests = {file_hexdigest(source, "sha256")}
            if rel == CONFIG_FILE:
                digests |= rewritten.get(name, set())
            expected[name] = ("sha256", digests)
    # A tracked weight whose working copy is absent (a fresh clone, a sandbox) still ships.
    for model in directory.models:
        for tracked in weights.values():
            try:
                inside = tracked.path.resolve().relative_to(model.folder.resolve())
            except ValueError:
                continue
            expected.setdefault(f"{model.name}/{inside.as_posix()}", ("md5", {tracked.md5}))
    return expected


def stale_reasons(artifact: Path, model_dir: Path) -> list[str]:
    """Why `artifact` does not hold `model_dir`'s current sources; empty when it does."""
    reasons: list[str] = []
    _, version = parse_artifact_name(artifact)
    if (model_dir / VERSION_FILE).exists():  # a sandbox may hold only the configs
        current = read_model_version(model_dir)
        if version != current:
            reasons.append(f"it is version {version}; {model_dir}/{VERSION_FILE} says {current}")
    expected = _expected(model_dir)
    seen: set[str] = set()
    try:
        with tarfile.open(artifact, "r:gz") as tar:
            for member in tar:
                name = member.name.lstrip("./")
                if name not in expected or not member.isfile():
                    continue
                seen.add(name)
                algorithm, allowed = expected[name]
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                digest = hashlib.new(algorithm, usedforsecurity=False)
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
                if digest.hexdigest() not in allowed:
                    what = "its DVC record" if algorithm == "md5" else "the model's file"
                    reasons.append(f"{name} differs from {what}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise MmepackError(f"{artifact}: cannot read the artifact ({exc})") from None
    for name in sorted(set(expected) - seen):
        reasons.append(f"{name} is in the model but not in the artifact")
    return reasons


def require_fresh(artifact: Path, model_dir: Path) -> None:
    """Refuse to judge cases against an artifact built from other sources than the model's."""
    reasons = stale_reasons(artifact, model_dir)
    if not reasons:
        return
    shown = "\n  ".join(reasons[:_SHOWN])
    more = f"\n  ... and {len(reasons) - _SHOWN} more" if len(reasons) > _SHOWN else ""
    raise MmepackError(
        f"{artifact} is older than {model_dir}'s sources (stale), so its answers would not be "
        f"the model's:\n  {shown}{more}\nPackage the model again (`./pants package "
        f"{model_dir}:<target>` or `mmepack package {model_dir} --pull`), then run this again "
        "on the new artifact"
    )
