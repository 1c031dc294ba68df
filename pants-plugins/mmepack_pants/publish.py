"""`pants publish` for `triton_model` targets: `mmepack publish` on the packaged artifact.

Pants builds the package first and hands it here; the upload itself (bucket by branch,
refusal to overwrite production, checksums, provenance, the tested-bytes rule) is the library's
job. The branch and commit come from CI variables or the git worktree, since the upload runs
outside the repo. The test records `./pants test` wrote under dist/ go into the upload's sandbox,
so a production publish finds the passing run of the exact bytes it packages.

The upload runs inside this rule and writes a JSON report (`mmepack publish --report`); what
Pants then prints comes from that report, never from a guess: "published" only for bytes that
were sent, "skipped (unchanged ...)" when the bucket already held them, "failed" with
mmepack's own message otherwise. (Pants says "published" for any run process that exits 0, so
the process handed back to it only shows what already happened.)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Mapping, Optional, Sequence

from pants.backend.python.util_rules.pex import VenvPexProcess
from pants.base.build_root import BuildRoot
from pants.core.goals.publish import (
    PublishFieldSet,
    PublishOutputData,
    PublishPackages,
    PublishProcesses,
    PublishRequest,
)
from pants.core.util_rules.distdir import DistDir
from pants.core.util_rules.source_files import SourceFilesRequest
from pants.core.util_rules.system_binaries import BashBinary, GitBinaryException
from pants.engine.fs import CreateDigest, FileContent
from pants.engine.process import InteractiveProcess, ProcessCacheScope
from pants.engine.rules import collect_rules, rule
from pants.option.option_types import BoolOption, StrListOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.frozendict import FrozenDict
from pants.util.strutil import softwrap
from pants.vcs.git import GitWorktree

from mmepack_contract import BRANCH_VARIABLES, COMMIT_VARIABLES, S3_PREFIX_VARIABLE
from mmepack_pants import engine
from mmepack_pants.passthrough import APPEND_ONLY_CACHES, process_env
from mmepack_pants.target_types import TritonModelSourcesField


class MmepackPublish(Subsystem):
    options_scope = "mmepack-publish"
    help = "Where `pants publish` uploads triton_model artifacts (`mmepack publish`)."

    staging_bucket = StrOption(default=None, help="S3 bucket for every branch but `main`.")
    production_bucket = StrOption(default=None, help="S3 bucket for `main`.")
    prefix = StrOption(
        default=None,
        help="Key prefix: s3://<bucket>/<prefix>/<artifact>. Unset: mmepack's default "
        "($MMEPACK_S3_PREFIX, else none).",
    )
    region = StrOption(default=None, help="AWS region of the buckets (default: boto3's).")
    branch = StrOption(
        default=None,
        help="Publish as if on this branch (default: the CI's branch variable, else git's).",
    )
    dry_run = BoolOption(default=False, help="Print what would be uploaded; touch nothing.")
    untested = StrOption(
        default=None,
        help="Publish to production bytes that no passing test run covers, for this reason "
        "(`mmepack publish --untested`): loud, and written into the manifest. Unset: refused.",
    )
    env_passthrough = StrListOption(
        default=[
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_DEFAULT_REGION",
            "AWS_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "AWS_CA_BUNDLE",
            "HOME",
            *BRANCH_VARIABLES,
            *COMMIT_VARIABLES,
            S3_PREFIX_VARIABLE,
        ],
        help=softwrap(
            """
            Environment variables handed to the upload: AWS credentials, the CI's branch and
            commit variables that `mmepack publish` reads, and its `MMEPACK_S3_PREFIX`.
            """
        ),
        advanced=True,
    )


def publish_argv(
    artifacts: Sequence[str],
    models_root: str,
    options: MmepackPublish,
    env: Mapping[str, str],
    git_branch: Optional[str],
    git_commit: Optional[str],
    git_dirty: Optional[bool] = None,
) -> List[str]:
    """`mmepack publish` arguments; the branch and commit come from the worktree, not a guess.

    The upload runs in a sandbox with no git, so the worktree's branch is read here. Git's real
    branch name is used: Pants' `current_rev_identifier` is the literal `HEAD`, which once sent
    a local `main` checkout to staging. On a detached head (`git_branch` None) nothing is passed
    and `mmepack publish` refuses, saying how to name the branch. Whether the worktree has
    uncommitted changes is read here too, so the manifest's `git_dirty` is not null; with a CI
    commit variable the library's own rule (CI checked that commit out: clean) stands.
    """
    argv = ["publish", *artifacts, f"--models-root={models_root}"]
    for flag, value in (
        ("--prefix", options.prefix),
        ("--staging-bucket", options.staging_bucket),
        ("--production-bucket", options.production_bucket),
        ("--region", options.region),
        ("--branch", options.branch),
    ):
        if value:
            argv.append(f"{flag}={value}")
    ci_branch = any(env.get(v) for v in BRANCH_VARIABLES)
    if git_branch and not options.branch and not ci_branch:
        argv.append(f"--branch={git_branch}")
    ci_commit = any(env.get(v) for v in COMMIT_VARIABLES)
    if git_commit and not ci_commit:
        argv.append(f"--commit={git_commit}")
    if git_dirty is not None and not ci_commit:
        argv.append(f"--git-dirty={'true' if git_dirty else 'false'}")
    if options.dry_run:
        argv.append("--dry-run")
    if options.untested:
        argv.append(f"--untested={options.untested}")
    argv.extend(
        [
            f"--test-records={_RECORDS_DIR}",
            f"--capacity-records={_RECORDS_DIR}",
            f"--report={_REPORT_FILE}",
        ]
    )
    return argv


_RECORDS_DIR = "__mmepack_test_records"
_REPORT_FILE = "__mmepack_publish_report.json"
# The library's suffix of a test run's record (mmepack.publish.tested.RECORD_SUFFIX).
_RECORD_SUFFIX = ".tested.json"
# The library's capacity record beside it (mmepack.capacity.record.CAPACITY_SUFFIX): the
# manifest's `capacity` block comes from the one of the same bytes.
_CAPACITY_SUFFIX = ".capacity.json"


def find_test_records(build_root: str, dist: str, artifacts: Sequence[str]) -> List[FileContent]:
    """The test and capacity records `./pants test` (under dist/test/) and `mmepack test-cases`
    (beside the artifact) left for these artifacts, as files for the upload's sandbox; the library decides
    which, if any, passed on the exact bytes. Read from the build root as plain files: dist/ is
    not a source Pants can glob."""
    found: List[FileContent] = []
    root = Path(build_root) / dist
    for artifact in artifacts:
        for suffix in (_RECORD_SUFFIX, _CAPACITY_SUFFIX):
            name = os.path.basename(artifact) + suffix
            paths = [root / (artifact + suffix), *sorted((root / "test").glob(f"**/{name}"))]
            for path in paths:
                try:
                    content = path.read_bytes()
                except OSError:
                    continue
                found.append(FileContent(f"{_RECORDS_DIR}/{len(found)}/{name}", content))
    return found


def report_packages(
    artifacts: Sequence[str], exit_code: int, output: str, report: Optional[bytes], bash: str
) -> List[PublishPackages]:
    """What Pants prints for each artifact, from the CLI's report of what it did."""
    said = "\n".join(f"  {line}" for line in output.splitlines())

    def shown(code: int) -> InteractiveProcess:
        # Shows mmepack's own account (the upload already ran) with its exit status.
        return InteractiveProcess(
            argv=(bash, "-c", 'printf "%s\\n" "$1"; exit "$2"', "mmepack", said, str(code))
        )

    results = {}
    if report is not None:
        try:
            results = {r["artifact"]: r for r in json.loads(report)["results"]}
        except (ValueError, KeyError, TypeError):
            results = {}
    packages = []
    for artifact in artifacts:
        result = results.get(artifact)
        if exit_code != 0 or result is None:
            packages.append(
                PublishPackages(
                    names=(artifact,),
                    process=shown(exit_code or 1),
                    description="mmepack publish (see its message above)",
                )
            )
        elif result["status"] == "unchanged":
            packages.append(
                PublishPackages(
                    names=(artifact,),
                    process=None,
                    description=f"(unchanged: {result['url']} already holds these bytes, "
                    "nothing was uploaded)",
                )
            )
        else:
            packages.append(
                PublishPackages(
                    names=(artifact,),
                    process=shown(0),
                    description=f"{result['url']} ({result['status']})",
                )
            )
    return packages


def worktree_dirty(git: GitWorktree) -> Optional[bool]:
    """Uncommitted changes to tracked files, or untracked files git does not ignore: what
    `git status --porcelain` lists. None when git fails (the manifest then says it cannot tell)."""
    try:
        return bool(git.changed_files(include_untracked=True))
    except GitBinaryException:
        return None


class MmepackDryRunFailed(Exception):
    """`mmepack publish --dry-run` refused; its own message says why and how to fix it."""


def dry_run_packages(artifacts: Sequence[str], exit_code: int, output: str) -> PublishPackages:
    """What `pants publish --mmepack-publish-dry-run` reports once the CLI's dry run has run.

    Pants ends a run process that succeeded with "published.", which a dry run is not, so the
    CLI runs here instead and the packages are reported as skipped, with what it would do.
    """
    if exit_code != 0:
        raise MmepackDryRunFailed(output or f"mmepack publish --dry-run exited {exit_code}")
    said = "\n".join(f"  {line}" for line in output.splitlines())
    return PublishPackages(
        names=tuple(artifacts),
        process=None,
        description=f"(dry run, nothing was uploaded):\n{said}\n",
    )


class PublishTritonModelRequest(PublishRequest):
    pass


@dataclass(frozen=True)
class PublishTritonModelFieldSet(PublishFieldSet):
    publish_request_type = PublishTritonModelRequest
    required_fields = (TritonModelSourcesField,)

    sources: TritonModelSourcesField

    def get_output_data(self) -> PublishOutputData:
        return PublishOutputData({"publisher": "mmepack", **super().get_output_data()})


@rule(desc="Publish Triton model artifacts to S3")
async def publish_triton_model(
    request: PublishTritonModelRequest,
    options: MmepackPublish,
    build_root: BuildRoot,
    dist_dir: DistDir,
    bash: BashBinary,
) -> PublishProcesses:
    artifacts = tuple(
        artifact.relpath
        for package in request.packages
        for artifact in package.artifacts
        if artifact.relpath
    )
    # The upload runs as a process Pants runs itself, whose Command (environment included) is
    # stored once a remote cache is on, even uncached: its credentials go through
    # passthrough.py, like every other step's (publish_inputs writes them).
    cli, env, worktree, sources, _ = await engine.publish_inputs(
        tuple(options.env_passthrough), SourceFilesRequest([request.field_set.sources])
    )
    records = await engine.create(
        CreateDigest(find_test_records(build_root.path, str(dist_dir.relpath), artifacts))
    )
    # The model's .dvc files ride along so the manifest can record the weights' DVC hashes.
    input_digest = await engine.merge(
        [sources.snapshot.digest, records, *(package.digest for package in request.packages)]
    )
    models_root = os.path.dirname(request.field_set.address.spec_path) or "."
    git = worktree.git_worktree
    argv = publish_argv(
        artifacts,
        models_root,
        options,
        env,
        git_branch=git.branch_name if git is not None else None,
        git_commit=git.commit_id if git is not None else None,
        git_dirty=worktree_dirty(git) if git is not None else None,
    )
    process = await engine.process(
        VenvPexProcess(
            cli,
            argv=argv,
            description=f"Publish {', '.join(artifacts)}",
            input_digest=input_digest,
            extra_env=process_env(),
            append_only_caches=APPEND_ONLY_CACHES,
            output_files=(_REPORT_FILE,),
            # An upload is an effect: run it every time, never from (or into) a cache.
            cache_scope=ProcessCacheScope.PER_SESSION,
        ),
    )
    result = await engine.run_process(process)
    output = (result.stdout + result.stderr).decode(errors="replace").strip()
    if options.dry_run:
        return PublishProcesses([dry_run_packages(artifacts, result.exit_code, output)])
    contents = await engine.contents(result.output_digest)
    report = next((c.content for c in contents if c.path == _REPORT_FILE), None)
    return PublishProcesses(report_packages(artifacts, result.exit_code, output, report, bash.path))


def rules():
    return [*collect_rules(), *PublishTritonModelFieldSet.rules()]
