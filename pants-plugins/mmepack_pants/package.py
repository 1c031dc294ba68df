"""`pants package` for `triton_model` targets: the environment rule, then `mmepack package`.

1. `PythonEnvRequest` (environment.py): build, slim, conda-pack and prove the Python steps'
   environment and pick the stub the `[triton-server]` target needs; keyed only on
   requirements.txt and the build options, so editing a config or model.py never rebuilds it.
2. `mmepack package --pull`: pull the DVC weights, verify their md5s, and write the MME tar.
   Working-tree copies of DVC-tracked files are kept out of its sandbox, so only what the
   remote holds is packed (a copy that differs from its record fails the build first, through
   `mmepack check-weights`, rather than being silently ignored); the weights pass through mmepack's DVC cache outside the sandbox,
   downloaded once per content. A local-folder remote inside the repository (the example's
   dvc-remote/) is read from the sandbox: the rule copies in the remote's objects that the
   model's `.dvc` files name, by content.
Nothing in a process depends on where the checkout is (no absolute build-root path in its
arguments or inputs) nor on the user's environment (credentials, PATH and HOME reach the steps
through passthrough.py, outside their keys), so two clones, or two CI runners with different
credentials, make the same cache keys and share one remote cache (README "A shared build
cache").
Each step is a Pants process, so unchanged inputs are answered from Pants' cache; behind it,
mmepack's own content-addressed environment cache serves other runs and other checkouts.
Both steps run in `build_triton_model`, which does not depend on the run, so pantsd keeps its
result between runs; `package_triton_model` only reports it (or cleans up after a failure).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import List, Optional

from pants.backend.python.util_rules.pex import VenvPex, VenvPexProcess
from pants.base.build_root import BuildRoot
from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.core.util_rules.distdir import DistDir
from pants.core.util_rules.source_files import SourceFilesRequest
from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST, Digest, DigestContents, PathGlobs, Snapshot
from pants.engine.internals.session import RunId
from pants.engine.process import FallibleProcessResult, ProcessResultMetadata
from pants.engine.rules import collect_rules, rule
from pants.engine.target import SourcesField
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

from mmepack_contract import (
    ARTIFACT_SUFFIX,
    CONFIG_FILE,
    MODEL_VERSION_PATTERN,
    PACKAGE_REPORT_FILE,
    REQUIREMENTS_FILE,
    SAGEMAKER_ENSEMBLE_PATTERN,
    VERSION_FILE,
)
from mmepack_contract.reports import ContractError, PackageReport
from mmepack_pants import engine
from mmepack_pants.engine import (
    PackagedModel,
    PassthroughRequest,
    PythonEnv,
    PythonEnvRequest,
    TritonModelPackageFieldSet,
)
from mmepack_pants.environment import (
    ENV_FILE,
    STUB_FILE,
    MmepackBuildError,
    PythonEnv,
    PythonEnvRequest,
    failure,
    stub_dir_globs,
    target_args,
)
from mmepack_pants.passthrough import APPEND_ONLY_CACHES, PassthroughRequest, process_env
from mmepack_pants.subsystem import MmepackSubsystem, TritonServerSubsystem

logger = logging.getLogger(__name__)

_OUT_DIR = "__mmepack_out"
# `md5: <hex>` in a `.dvc` file and in a `.dir` listing (DVC 2 and 3 write both forms).
_MD5 = re.compile(r"\bmd5[\"']?\s*:\s*[\"']?([0-9a-f]{32}(?:\.dir)?)\b")
# The library's rules for the names of `<model>_<version>.tar.gz`: the model version's pattern
# and the one SageMaker finds the ensemble's folder with (mmepack_contract).
_VERSION_RE = re.compile(MODEL_VERSION_PATTERN)
_ENSEMBLE_RE = re.compile(SAGEMAKER_ENSEMBLE_PATTERN)


def _require_dvc_config(address: Address, files: tuple[str, ...], dvc_target: str) -> None:
    """Name the missing dependency before the package step would fail on it in the sandbox."""
    tracked = [f for f in files if f.endswith(".dvc") and not f.startswith(".dvc/")]
    if tracked and ".dvc/config" not in files:
        raise MmepackBuildError(
            f"{address}: {tracked[0]} tracks weights with DVC, but no dependency brings the DVC "
            f'configuration (.dvc/config) to pull them; add dependencies=["{dvc_target}"] to '
            f"this triton_model in {address.spec_path}/BUILD (`./pants tailor` writes it so)"
        )


def _object_globs(md5s: set[str]) -> list[str]:
    """Where a local-folder DVC remote keeps each object (`files/md5/ab/cdef...` in DVC 3),
    wherever in the repository that remote folder is."""
    return [f"**/files/md5/{md5[:2]}/{md5[2:]}" for md5 in sorted(md5s)]


# A rule helper: Pants finds its Gets only when it is defined before the rule that awaits it.
async def _local_remote_objects(model: Snapshot) -> Digest:
    """The objects of a local-folder DVC remote in the repository that this model's `.dvc` files
    name, at their repository paths, so the remote resolves inside the sandbox from the
    committed `.dvc/config`, with no absolute path to the checkout. The inputs are named by
    content, so they change the cache key only when the weights do. None for a remote elsewhere
    (S3, a folder outside the repository)."""
    dvc_files = [f for f in model.files if f.endswith(".dvc") and not f.startswith(".dvc/")]
    if not dvc_files:
        return EMPTY_DIGEST
    contents = await engine.subset_contents(model.digest, PathGlobs(dvc_files))
    md5s = {m for c in contents for m in _MD5.findall(c.content.decode(errors="replace"))}
    found = await engine.snapshot(PathGlobs(_object_globs(md5s)))
    listings = [f for f in found.files if f.endswith(".dir")]
    if not listings:
        return found.digest
    # A tracked folder: its `.dir` object lists the md5 of every file in it.
    dir_contents = await engine.subset_contents(found.digest, PathGlobs(listings))
    children = {m for c in dir_contents for m in _MD5.findall(c.content.decode(errors="replace"))}
    more = await engine.snapshot(PathGlobs(_object_globs(children)))
    return await engine.merge([found.digest, more.digest])


# A rule helper: Pants finds its Gets only when it is defined before the rule that awaits it.
async def _check_working_copies(
    address: Address, model_dir: str, model: Snapshot, tracked: List[str], cli: VenvPex
) -> None:
    """Refuse a build whose DVC-tracked working copy differs from its `.dvc` record: the build
    packs the recorded bytes, so the user's rewrite would otherwise be silently ignored. Only
    the present copies and their `.dvc` files are the input: a clean clone (no copies) runs
    nothing, and Pants answers an unchanged pair from its cache."""
    present = [path for path in tracked if path in model.files]
    if not present:
        return
    pairs = await engine.subset(model.digest, PathGlobs([*present, *(f"{p}.dvc" for p in present)]))
    result = await engine.run(
        VenvPexProcess(
            cli,
            argv=["check-weights", model_dir],
            description=f"Check {address}'s DVC-tracked working copies against their records",
            input_digest=pairs,
            level=LogLevel.DEBUG,
        ),
    )
    if result.exit_code != 0:
        raise failure(address, "the weights check", result)


# A rule helper: Pants finds its Gets only when it is defined before the rule that awaits it.
async def _build(
    field_set: TritonModelPackageFieldSet,
    subsystem: MmepackSubsystem,
    target_server: TritonServerSubsystem,
) -> PackagedModel:
    address = field_set.address
    model_dir = address.spec_path
    toolchain = await engine.toolchain()
    transitive, toolchain_closure, cli = await engine.package_inputs(address, toolchain)
    # The toolchain (dependencies.py) reaches the build through the CLI; its files are no input.
    not_model = set(toolchain_closure.closure)
    sources = await engine.sources(
        SourceFilesRequest(t.get(SourcesField) for t in transitive.closure if t not in not_model),
    )
    _require_dvc_config(address, sources.snapshot.files, subsystem.dvc_target)
    target = target_args(field_set.python_version.value or subsystem.python_version, target_server)
    # DVC writes a .gitignore beside each tracked output, which Pants does not read: leave the
    # working-tree copy of `x` (tracked by `x.dvc`) out, so the build packs the remote's bytes.
    tracked = [path[: -len(".dvc")] for path in sources.snapshot.files if path.endswith(".dvc")]
    model_files = sources.snapshot.digest
    if tracked:
        model_files = await engine.subset(
            model_files,
            PathGlobs(["**", *(f"!{p}" for p in tracked), *(f"!{p}/**" for p in tracked)]),
        )
    await _check_working_copies(address, model_dir, sources.snapshot, tracked, cli)
    remote_objects = await _local_remote_objects(sources.snapshot)
    stubs = await engine.digest(PathGlobs(stub_dir_globs(target_server)))
    inputs = [model_files, remote_objects, stubs]
    env_args: list[str] = []
    env: Optional[PythonEnv] = None
    if os.path.join(model_dir, REQUIREMENTS_FILE) in sources.snapshot.files:
        env = await engine.python_env(
            PythonEnvRequest(address, model_dir, sources.snapshot.digest, target)
        )
        inputs.append(env.digest)
        env_args = [
            f"--env={ENV_FILE}",
            # Its build report states its Python: the package step need not open the archive.
            *([f"--env-python={env.python_version}"] if env.python_version else []),
            *([f"--stub={STUB_FILE}"] if env.stub else []),
        ]

    package_input = await engine.merge(inputs)
    result = await engine.run(
        VenvPexProcess(
            cli,
            argv=[
                "package",
                model_dir,
                "--pull",
                "--repo-root=.",
                f"--output-dir={_OUT_DIR}",
                f"--report={PACKAGE_REPORT_FILE}",
                *target,
                *env_args,
            ],
            description=f"Package {address} for SageMaker MME",
            input_digest=package_input,
            output_directories=[_OUT_DIR],
            output_files=[PACKAGE_REPORT_FILE],
            # Credentials and the machine's paths reach it outside its cache key.
            extra_env=process_env(),
            append_only_caches=APPEND_ONLY_CACHES,
            level=LogLevel.INFO,
        ),
    )
    if result.exit_code != 0:
        raise failure(address, "packaging", result)
    artifacts, report_contents = await engine.package_outputs(
        result.output_digest, _OUT_DIR, PACKAGE_REPORT_FILE
    )
    report = read_package_report(address, report_contents)
    output = await engine.remove_prefix(artifacts, _OUT_DIR)
    snapshot = await engine.add_prefix(output, field_set.output_dir.value or "mme")
    built = BuiltPackage(
        snapshot.digest,
        tuple(BuiltPackageArtifact(path) for path in snapshot.files),
    )
    return PackagedModel(built, result, env, report=report)


@rule(desc="Build a Triton model's MME artifact", level=LogLevel.DEBUG)
async def build_triton_model(
    field_set: TritonModelPackageFieldSet,
    subsystem: MmepackSubsystem,
    target_server: TritonServerSubsystem,
) -> PackagedModel:
    """The packaging work, kept free of the run's id (see `package_triton_model`)."""
    try:
        return await _build(field_set, subsystem, target_server)
    except MmepackBuildError as exc:
        return PackagedModel(built=None, result=None, env=None, error=str(exc))


@rule(desc="Package a Triton model for SageMaker MME", level=LogLevel.DEBUG)
async def package_triton_model(
    field_set: TritonModelPackageFieldSet,
    run_id: RunId,
    dist_dir: DistDir,
    build_root: BuildRoot,
) -> BuiltPackage:
    """Report what `build_triton_model` did, or clean up after its failure.

    This rule depends on the run's id, to say whether each process ran in this run or came
    from Pants' cache, so pantsd re-runs it on every `package`. The work is in
    `build_triton_model`, which pantsd keeps between runs: a no-op `package ::` re-runs these
    short rules, not every model's packaging and environment rules (README "Scale benchmark").
    """
    address = field_set.address
    # Before any step can run: the variables it needs, which are in none of their cache keys.
    await engine.passthrough(PassthroughRequest())
    try:
        packaged = await engine.packaged_model(field_set)
        if packaged.error is not None:
            raise MmepackBuildError(packaged.error)
    except Exception as exc:
        # Pants writes dist/ only when every package succeeds, so a failed build would leave the
        # previous tar of this model and version there, ready to be published as if it were
        # this build's. The engine gives rules no workspace; the build root is a plain folder.
        removed = remove_stale_artifacts(
            Path(build_root.path),
            dist_dir.relpath / (field_set.output_dir.value or "mme"),
            address.spec_path,
        )
        if not removed:
            raise
        said = ", ".join(str(path) for path in removed)
        if isinstance(exc, MmepackBuildError):
            raise MmepackBuildError(
                f"{exc}\nRemoved {said}, the artifact of an earlier build, so that it cannot be "
                "published as this one's."
            ) from None
        logger.warning(f"{address}: removed {said}: an earlier build's artifact, not this one's")
        raise
    if packaged.env is not None:
        for line in packaged.env.report(run_id):
            logger.info(f"{address}: {line}")
    # All three are set when no error was returned.
    assert packaged.result is not None and packaged.built is not None
    assert packaged.report is not None
    reused = packaged.result.metadata.source(run_id) != ProcessResultMetadata.Source.RAN
    _relay_weights_line(address, packaged.report, reused)
    _relay_size_report(address, packaged.report)
    return packaged.built


def artifact_names(build_root: Path, model_dir: str) -> List[str]:
    """The names `mmepack package` gives this model's artifact: `<model>_<version>.tar.gz`,
    where the model is the SageMaker ensemble's folder (or the model directory's name).

    Read from the working tree, not the engine: it must work when the failure came from
    reading the sources themselves. Nothing is named when model_version.txt is unreadable.
    """
    root = build_root / model_dir
    try:
        version = (root / VERSION_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return []
    if not _VERSION_RE.fullmatch(version):
        return []
    models = {root.name}
    for config in sorted(root.glob(f"*/{CONFIG_FILE}")):
        try:
            if _ENSEMBLE_RE.search(config.read_text(encoding="utf-8", errors="replace")):
                models.add(config.parent.name)
        except OSError:
            continue
    return sorted(f"{model}_{version}{ARTIFACT_SUFFIX}" for model in models)


def remove_stale_artifacts(build_root: Path, dist_subdir: Path, model_dir: str) -> List[Path]:
    """Delete this model's artifacts from `dist/<output_dir>/`; the paths removed, relative to
    the build root. Links and folders are left alone (Pants writes regular files there)."""
    removed = []
    for name in artifact_names(build_root, model_dir):
        relative = dist_subdir / name
        path = build_root / relative
        if path.is_file() and not path.is_symlink():
            try:
                path.unlink()
            except OSError as exc:
                logger.warning(f"cannot remove {relative} ({exc.strerror}): delete it by hand")
                continue
            removed.append(relative)
    return removed


def read_package_report(address: Address, contents: DigestContents) -> PackageReport:
    """The package step's report, or the reason the plugin cannot use it (another contract
    version, say) as the build's error."""
    if len(contents) != 1:
        raise MmepackBuildError(
            f"{address}: the package step wrote no {PACKAGE_REPORT_FILE}; the mmepack tool is "
            "older than this plugin, so use the mmepack version that matches the plugin"
        )
    try:
        return PackageReport.from_json(contents[0].content.decode(errors="replace"))
    except ContractError as exc:
        raise MmepackBuildError(f"{address}: {exc}") from None


def _relay_weights_line(address: Address, report: PackageReport, reused: bool) -> None:
    """Log whether the weights were downloaded or came from the DVC cache, which Pants would
    otherwise swallow for a process that succeeded; `reused`: the process result came from
    Pants' cache, not from a run in this one."""
    if report.weights_message is not None:
        prefix = "reused from Pants' cache, as first reported: " if reused else ""
        logger.info(f"{address}: {prefix}{report.weights_message}")


def _relay_size_report(address: Address, report: PackageReport) -> None:
    """Show the artifact's size by part (environment, weights, stubs, code), and the warning
    when its environment dominates it."""
    logger.info(f"{address}: {report.size_message}")
    for warning in report.warnings:
        logger.warning(f"{address}: {warning}")


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, TritonModelPackageFieldSet),
    ]
