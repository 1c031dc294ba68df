"""`pants publish` for `triton_model` targets: `mmepack publish` on the packaged artifact.

Pants builds the package first and hands it here; the upload itself (bucket by branch,
refusal to overwrite production, checksums, provenance) is the library's job. The branch and
commit come from CI variables or the git worktree, since the upload runs outside the repo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import List, Mapping, Optional, Sequence

from pants.backend.python.util_rules.pex import VenvPex, VenvPexProcess
from pants.core.goals.publish import (
    PublishFieldSet,
    PublishOutputData,
    PublishPackages,
    PublishProcesses,
    PublishRequest,
)
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.core.util_rules.system_binaries import GitBinaryException
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import Digest, MergeDigests
from pants.engine.process import (
    FallibleProcessResult,
    InteractiveProcess,
    Process,
    ProcessCacheScope,
)
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.option.option_types import BoolOption, StrListOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.frozendict import FrozenDict
from pants.util.strutil import softwrap
from pants.vcs.git import GitWorktree, GitWorktreeRequest, MaybeGitWorktree

from mmepack_pants.cli import MmepackCliRequest
from mmepack_pants.passthrough import (
    APPEND_ONLY_CACHES,
    PassthroughRequest,
    PassthroughWritten,
    process_env,
)
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
            "GITHUB_REF_NAME",
            "CI_COMMIT_BRANCH",
            "BRANCH_NAME",
            "GITHUB_SHA",
            "CI_COMMIT_SHA",
            "GIT_COMMIT",
            "MMEPACK_S3_PREFIX",
        ],
        help=softwrap(
            """
            Environment variables handed to the upload: AWS credentials, the CI's branch and
            commit variables that `mmepack publish` reads, and its `MMEPACK_S3_PREFIX`.
            """
        ),
        advanced=True,
    )


_BRANCH_VARIABLES = ("GITHUB_REF_NAME", "CI_COMMIT_BRANCH", "BRANCH_NAME")
_COMMIT_VARIABLES = ("GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT")


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
    ci_branch = any(env.get(v) for v in _BRANCH_VARIABLES)
    if git_branch and not options.branch and not ci_branch:
        argv.append(f"--branch={git_branch}")
    ci_commit = any(env.get(v) for v in _COMMIT_VARIABLES)
    if git_commit and not ci_commit:
        argv.append(f"--commit={git_commit}")
    if git_dirty is not None and not ci_commit:
        argv.append(f"--git-dirty={'true' if git_dirty else 'false'}")
    if options.dry_run:
        argv.append("--dry-run")
    return argv


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
    request: PublishTritonModelRequest, options: MmepackPublish
) -> PublishProcesses:
    artifacts = tuple(
        artifact.relpath
        for package in request.packages
        for artifact in package.artifacts
        if artifact.relpath
    )
    cli, env, worktree, sources = await MultiGet(
        Get(VenvPex, MmepackCliRequest()),
        Get(EnvironmentVars, EnvironmentVarsRequest(options.env_passthrough)),
        Get(MaybeGitWorktree, GitWorktreeRequest()),
        Get(SourceFiles, SourceFilesRequest([request.field_set.sources])),
    )
    # The model's .dvc files ride along so the manifest can record the weights' DVC hashes.
    input_digest = await Get(
        Digest,
        MergeDigests([sources.snapshot.digest, *(package.digest for package in request.packages)]),
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
    process = await Get(
        Process,
        VenvPexProcess(
            cli,
            argv=argv,
            description=f"Publish {', '.join(artifacts)}",
            input_digest=input_digest,
            extra_env=dict(env),
        ),
    )
    if options.dry_run:
        # A process Pants runs itself has its environment stored once a remote cache is on, even
        # uncached: the credentials go through passthrough.py. (The interactive publish below is
        # run outside the process runners and stores nothing.)
        await Get(PassthroughWritten, PassthroughRequest())
        result = await Get(
            FallibleProcessResult,
            Process,
            replace(
                process,
                env=FrozenDict(process_env()),
                append_only_caches=FrozenDict({**process.append_only_caches, **APPEND_ONLY_CACHES}),
                cache_scope=ProcessCacheScope.PER_SESSION,
            ),
        )
        output = (result.stdout + result.stderr).decode(errors="replace").strip()
        return PublishProcesses([dry_run_packages(artifacts, result.exit_code, output)])
    return PublishProcesses(
        [PublishPackages(names=artifacts, process=InteractiveProcess.from_process(process))]
    )


def rules():
    return [*collect_rules(), *PublishTritonModelFieldSet.rules()]
