"""Every request the plugin's rules make of the Pants engine, as typed helpers the rules await.

Rule bodies hold no `Get` or `MultiGet`: they call these functions, so a port to Pants'
call-by-name API (2.30 deprecates `Get`/`MultiGet`, 2.32 removes them) rewrites this module
and leaves the rules alone (docs/design/call-by-name.md). This relies on how Pants 2.17 finds
a rule's engine calls (`pants.engine.internals.rule_visitor`): it parses the rule's source and,
for each call whose target it can resolve to a coroutine function through the rule module's
globals (a name, or attributes chained from one), parses that function too and adds its
`Get`s to the rule's. So:

- helpers are reached by name (`engine.digest(...)`), never through a local variable, an
  argument or an object built inline, which the parser cannot resolve;
- each `Get` here names concrete types: the parser reads them from this module's globals, so
  a helper generic in its output type would be a RuleTypeError;
- 2.17's `MultiGet` takes `Get`s only (a coroutine is not one), so work that must run
  concurrently is one helper that issues the `MultiGet` itself (`*_inputs` below);
- this module imports no rule module of the plugin (the request and result types the rules
  exchange live here), so every helper exists before any rule that awaits it is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence, Tuple

from pants.backend.python.subsystems.setuptools import PythonDistributionFieldSet
from pants.backend.python.util_rules.pex import PexRequest, VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_from_targets import PexFromTargetsRequest
from pants.core.goals.package import BuiltPackage, PackageFieldSet
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.addresses import Address, Addresses, UnparsedAddressInputs
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    MergeDigests,
    PathGlobs,
    Paths,
    RemovePrefix,
    Snapshot,
)
from pants.engine.internals.session import RunId
from pants.engine.process import FallibleProcessResult, Process, ProcessResultMetadata
from pants.engine.rules import Get, MultiGet
from pants.engine.target import Targets, TransitiveTargets, TransitiveTargetsRequest
from pants.vcs.git import GitWorktreeRequest, MaybeGitWorktree

from mmepack_contract.reports import PackageReport
from mmepack_pants.target_types import (
    TritonModelOutputDirField,
    TritonModelPythonVersionField,
    TritonModelSourcesField,
)

# The requests and results the plugin's rules exchange through the engine.


@dataclass(frozen=True)
class MmepackCliRequest:
    """The full mmepack CLI, built from `[mmepack].cli` (cli.py)."""


@dataclass(frozen=True)
class EnvBuilderRequest:
    """Only the environment builder, built from `[mmepack].env_builder` (cli.py), so that
    environment builds are cached independently of the rest of mmepack."""


@dataclass(frozen=True)
class CasesRunnerRequest:
    """The CLI with the server packages, built from `[model-cases].runner` (cli.py), to run test
    cases."""


@dataclass(frozen=True)
class ProgramRequest:
    """One mmepack program built from targets of this repository (`[mmepack].from_sources`):
    `address` as `option` names it, run as `module:function`."""

    address: str
    option: str
    module: str
    function: str


@dataclass(frozen=True)
class ToolchainRequest:
    """The resolved addresses of the toolchain options (dependencies.toolchain_specs)."""


@dataclass(frozen=True)
class PassthroughRequest:
    """Write this run's `[mmepack].env_passthrough` values for the steps that may run, plus
    the variables `extra` names (the publish upload's `[mmepack-publish].env_passthrough`)."""

    extra: Tuple[str, ...] = ()


@dataclass(frozen=True)
class PassthroughWritten:
    """The names written (never the values, which must not enter the engine's graph output)."""

    names: Tuple[str, ...]


@dataclass(frozen=True)
class PythonEnvRequest:
    """Build the environment of the model at `model_dir`, whose files are in `sources`."""

    address: Address
    model_dir: str
    sources: Digest
    # `--python` and the target-server options, from `environment.target_args`.
    target_args: Tuple[str, ...]


@dataclass(frozen=True)
class PythonEnv:
    """`python_env.tar.gz` and, when the target server needs one, the stub, at the root; with
    what to tell the user about the build, which the package rule logs (`report`).

    The rule that makes this does not depend on the run's id, so pantsd keeps it across runs
    instead of re-running it for every model on each `package`; whether the builder ran in the
    current run is decided where it is logged, from `metadata`.
    """

    digest: Digest
    stub: bool
    # report_lines for a builder that ran in this run, and for one answered from Pants' cache.
    lines_if_ran: Tuple[str, ...]
    lines_if_cached: Tuple[str, ...]
    # Not part of equality, as in Pants' own ProcessResult: it names the run that made it.
    metadata: ProcessResultMetadata = field(compare=False, hash=False)
    # The environment's Python as its build report states it (e.g. 3.12.1), for the package step.
    python_version: Optional[str] = None

    def report(self, run_id: RunId) -> Tuple[str, ...]:
        """The lines to log in the run `run_id`."""
        if self.metadata.source(run_id) == ProcessResultMetadata.Source.RAN:
            return self.lines_if_ran
        return self.lines_if_cached


@dataclass(frozen=True)
class TritonModelPackageFieldSet(PackageFieldSet):
    required_fields = (TritonModelSourcesField,)

    sources: TritonModelSourcesField
    python_version: TritonModelPythonVersionField
    output_dir: TritonModelOutputDirField


@dataclass(frozen=True)
class PackagedModel:
    """What `package.build_triton_model` made: the artifact, the packaging process's result
    (whose output the user is shown) and the environment it packed, if any; or, for a build
    that failed, mmepack's explanation (`error`).

    The explanation is returned, not raised: an exception that crosses a rule boundary reaches
    the awaiting rule wrapped by the engine, and `package_triton_model` must still recognise a
    `MmepackBuildError` to add what it removed from dist/ to the message.
    """

    built: Optional[BuiltPackage]
    result: Optional[FallibleProcessResult]
    env: Optional[PythonEnv]
    error: Optional[str] = None
    # The package step's report: what the user is shown about weights and size.
    report: Optional[PackageReport] = None


# Files and digests.


async def digest(globs: PathGlobs) -> Digest:
    return await Get(Digest, PathGlobs, globs)


async def snapshot(globs: PathGlobs) -> Snapshot:
    return await Get(Snapshot, PathGlobs, globs)


async def snapshots_each(globs: Iterable[PathGlobs]) -> Tuple[Snapshot, ...]:
    """A snapshot of each glob set, made concurrently."""
    return await MultiGet(Get(Snapshot, PathGlobs, g) for g in globs)


async def snapshot_of(digest: Digest) -> Snapshot:
    return await Get(Snapshot, Digest, digest)


async def paths(globs: PathGlobs) -> Paths:
    return await Get(Paths, PathGlobs, globs)


async def paths_each(globs: Iterable[PathGlobs]) -> Tuple[Paths, ...]:
    """The paths of each glob set, read concurrently."""
    return await MultiGet(Get(Paths, PathGlobs, g) for g in globs)


async def contents(digest: Digest) -> DigestContents:
    return await Get(DigestContents, Digest, digest)


async def contents_each(digests: Iterable[Digest]) -> Tuple[DigestContents, ...]:
    """The contents of each digest, read concurrently."""
    return await MultiGet(Get(DigestContents, Digest, d) for d in digests)


async def contents_of(globs: PathGlobs) -> DigestContents:
    return await Get(DigestContents, PathGlobs, globs)


async def subset(digest: Digest, globs: PathGlobs) -> Digest:
    return await Get(Digest, DigestSubset(digest, globs))


async def subset_contents(digest: Digest, globs: PathGlobs) -> DigestContents:
    return await Get(DigestContents, DigestSubset(digest, globs))


async def package_outputs(
    digest: Digest, out_dir: str, report_file: str
) -> Tuple[Digest, DigestContents]:
    """The package step's artifacts (still under `out_dir`) and its report file's contents."""
    artifacts, report = await MultiGet(
        Get(Digest, DigestSubset(digest, PathGlobs([f"{out_dir}/**"]))),
        Get(DigestContents, DigestSubset(digest, PathGlobs([report_file]))),
    )
    return artifacts, report


async def subset_snapshots(digest: Digest, globs: Iterable[PathGlobs]) -> Tuple[Snapshot, ...]:
    """A snapshot of `digest`'s files matching each glob set, made concurrently."""
    return await MultiGet(Get(Snapshot, DigestSubset(digest, g)) for g in globs)


async def merge(digests: Iterable[Digest]) -> Digest:
    return await Get(Digest, MergeDigests(digests))


async def remove_prefix(digest: Digest, prefix: str) -> Digest:
    return await Get(Digest, RemovePrefix(digest, prefix))


async def add_prefix(digest: Digest, prefix: str) -> Snapshot:
    return await Get(Snapshot, AddPrefix(digest, prefix))


async def create(files: CreateDigest) -> Digest:
    return await Get(Digest, CreateDigest, files)


async def sources(request: SourceFilesRequest) -> SourceFiles:
    return await Get(SourceFiles, SourceFilesRequest, request)


async def sources_each(requests: Iterable[SourceFilesRequest]) -> Tuple[SourceFiles, ...]:
    """The source files of each request, gathered concurrently."""
    return await MultiGet(Get(SourceFiles, SourceFilesRequest, r) for r in requests)


# Processes and the machine.


async def run(process: VenvPexProcess) -> FallibleProcessResult:
    return await Get(FallibleProcessResult, VenvPexProcess, process)


async def run_each(processes: Iterable[VenvPexProcess]) -> Tuple[FallibleProcessResult, ...]:
    """Run the processes concurrently (as the engine's slots allow)."""
    return await MultiGet(Get(FallibleProcessResult, VenvPexProcess, p) for p in processes)


async def process(request: VenvPexProcess) -> Process:
    """The Process that would run `request`, for a rule that runs it itself."""
    return await Get(Process, VenvPexProcess, request)


async def run_process(request: Process) -> FallibleProcessResult:
    return await Get(FallibleProcessResult, Process, request)


async def env_vars(names: Sequence[str]) -> EnvironmentVars:
    return await Get(EnvironmentVars, EnvironmentVarsRequest(names))


# The plugin's own products.


async def addresses(specs: UnparsedAddressInputs) -> Addresses:
    return await Get(Addresses, UnparsedAddressInputs, specs)


async def targets(specs: UnparsedAddressInputs) -> Targets:
    return await Get(Targets, UnparsedAddressInputs, specs)


async def built_distributions(
    field_sets: Iterable[PythonDistributionFieldSet],
) -> Tuple[BuiltPackage, ...]:
    """Each `python_distribution` built (`./pants package`), concurrently."""
    return await MultiGet(Get(BuiltPackage, PythonDistributionFieldSet, fs) for fs in field_sets)


async def pex_from_targets(request: PexFromTargetsRequest) -> PexRequest:
    return await Get(PexRequest, PexFromTargetsRequest, request)


async def venv_pex(request: PexRequest) -> VenvPex:
    return await Get(VenvPex, PexRequest, request)


async def program(request: ProgramRequest) -> VenvPex:
    return await Get(VenvPex, ProgramRequest, request)


async def toolchain() -> Addresses:
    return await Get(Addresses, ToolchainRequest())


async def passthrough(request: PassthroughRequest) -> PassthroughWritten:
    return await Get(PassthroughWritten, PassthroughRequest, request)


async def mmepack_cli() -> VenvPex:
    return await Get(VenvPex, MmepackCliRequest())


async def python_env(request: PythonEnvRequest) -> PythonEnv:
    return await Get(PythonEnv, PythonEnvRequest, request)


async def packaged_model(field_set: TritonModelPackageFieldSet) -> PackagedModel:
    return await Get(PackagedModel, TritonModelPackageFieldSet, field_set)


async def built_package(field_set: TritonModelPackageFieldSet) -> BuiltPackage:
    return await Get(BuiltPackage, TritonModelPackageFieldSet, field_set)


# What one rule needs at once, fetched concurrently.


async def package_inputs(
    address: Address, tools: Addresses
) -> Tuple[TransitiveTargets, TransitiveTargets, VenvPex]:
    """The model's closure, the toolchain's closure and the CLI."""
    return await MultiGet(
        Get(TransitiveTargets, TransitiveTargetsRequest([address])),
        Get(TransitiveTargets, TransitiveTargetsRequest(tools)),
        Get(VenvPex, MmepackCliRequest()),
    )


async def env_builder_inputs(
    requirements: Digest, model_dir: str, stub_globs: PathGlobs, variables: Sequence[str]
) -> Tuple[Digest, Digest, VenvPex, EnvironmentVars]:
    """The requirements moved to the root, the stubs, the builder PEX and the variables."""
    return await MultiGet(
        Get(Digest, RemovePrefix(requirements, model_dir)),
        Get(Digest, PathGlobs, stub_globs),
        Get(VenvPex, EnvBuilderRequest()),
        Get(EnvironmentVars, EnvironmentVarsRequest(variables)),
    )


async def env_builder_outputs(
    output: Digest, report: PathGlobs, env: PathGlobs
) -> Tuple[DigestContents, Digest]:
    """The builder's report, read, and its environment files."""
    return await MultiGet(
        Get(DigestContents, DigestSubset(output, report)),
        Get(Digest, DigestSubset(output, env)),
    )


async def cases_inputs(
    data: PathGlobs, model: SourceFilesRequest
) -> Tuple[Snapshot, SourceFiles, VenvPex, PassthroughWritten]:
    """The cases' data files, the model's sources, the runner and this run's variables."""
    return await MultiGet(
        Get(Snapshot, PathGlobs, data),
        Get(SourceFiles, SourceFilesRequest, model),
        Get(VenvPex, CasesRunnerRequest()),
        Get(PassthroughWritten, PassthroughRequest()),
    )


async def validate_inputs(models: SourceFilesRequest) -> Tuple[SourceFiles, VenvPex]:
    return await MultiGet(
        Get(SourceFiles, SourceFilesRequest, models), Get(VenvPex, MmepackCliRequest())
    )


async def lock_inputs() -> Tuple[VenvPex, PassthroughWritten]:
    return await MultiGet(
        Get(VenvPex, MmepackCliRequest()), Get(PassthroughWritten, PassthroughRequest())
    )


async def publish_inputs(
    variables: Tuple[str, ...], model: SourceFilesRequest
) -> Tuple[VenvPex, EnvironmentVars, MaybeGitWorktree, SourceFiles, PassthroughWritten]:
    """The CLI, the upload's variables, the git worktree, the model's sources, and those
    variables written for the upload process (passthrough.py)."""
    return await MultiGet(
        Get(VenvPex, MmepackCliRequest()),
        Get(EnvironmentVars, EnvironmentVarsRequest(variables)),
        Get(MaybeGitWorktree, GitWorktreeRequest()),
        Get(SourceFiles, SourceFilesRequest, model),
        Get(PassthroughWritten, PassthroughRequest(variables)),
    )
