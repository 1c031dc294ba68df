"""`./pants lock-envs ::`: write every triton_model's requirements.lock, like generate-lockfiles.

Thin by design: for each model with a requirements.txt the rule runs `mmepack lock <dir>
--python <the target's python_version>` (none when unset: the library's default; and
`--triton-version` when [triton-server].version is set, so the lock honours that server's numpy
cap as the build does) in a sandbox holding the model's files, and writes the lock it produced
into the workspace. Resolution needs the index, so it reruns every time (never answered from
Pants' cache).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

from pants.backend.python.util_rules.pex import VenvPexProcess
from pants.core.util_rules.source_files import SourceFilesRequest
from pants.engine.console import Console
from pants.engine.fs import Workspace
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import ProcessCacheScope
from pants.engine.rules import collect_rules, goal_rule
from pants.engine.target import FieldSet, Targets
from pants.util.logging import LogLevel

from mmepack_contract import LOCK_FILE, REQUIREMENTS_FILE
from mmepack_pants import engine
from mmepack_pants.passthrough import APPEND_ONLY_CACHES, process_env
from mmepack_pants.subsystem import MmepackSubsystem, TritonServerSubsystem
from mmepack_pants.target_types import TritonModelPythonVersionField, TritonModelSourcesField


class LockEnvsSubsystem(GoalSubsystem):
    name = "lock-envs"
    help = (
        "Pin each triton_model's requirements.txt to exact versions and sha256 hashes "
        "(requirements.lock, written beside it by `mmepack lock`)."
    )


class LockEnvs(Goal):
    subsystem_cls = LockEnvsSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@dataclass(frozen=True)
class _LockFieldSet(FieldSet):
    required_fields = (TritonModelSourcesField,)

    sources: TritonModelSourcesField
    python_version: TritonModelPythonVersionField


def lock_argv(model_dir: str, python: Optional[str]) -> List[str]:
    """`mmepack lock` arguments: `--python` only when the target or `[mmepack].python_version`
    says it, so an unset version (a BUILD `./pants tailor` wrote) takes the library's default
    rather than the text "None"."""
    return ["lock", model_dir, *([f"--python={python}"] if python else [])]


def lock_description(address: str, python: Optional[str]) -> str:
    return f"Lock {address} (Python {python})" if python else f"Lock {address} (mmepack's Python)"


@goal_rule(desc="Lock the Python environments of Triton models")
async def lock_envs(
    targets: Targets,
    subsystem: MmepackSubsystem,
    target_server: TritonServerSubsystem,
    workspace: Workspace,
    console: Console,
) -> LockEnvs:
    field_sets = [_LockFieldSet.create(t) for t in targets if _LockFieldSet.is_applicable(t)]
    cli, _ = await engine.lock_inputs()
    all_sources = await engine.sources_each(SourceFilesRequest([fs.sources]) for fs in field_sets)
    # Only what the user set: the library owns the default server.
    server = [f"--triton-version={target_server.version}"] if target_server.version else []
    processes = []
    for field_set, sources in zip(field_sets, all_sources):
        model_dir = field_set.address.spec_path
        if os.path.join(model_dir, REQUIREMENTS_FILE) not in sources.snapshot.files:
            continue
        python = field_set.python_version.value or subsystem.python_version
        processes.append(
            VenvPexProcess(
                cli,
                argv=[*lock_argv(model_dir, python), *server],
                description=lock_description(str(field_set.address), python),
                input_digest=sources.snapshot.digest,
                output_files=[os.path.join(model_dir, LOCK_FILE)],
                # The environment build resolves with this machine's pip configuration; so does
                # the lock (Pants points pip at /dev/null for its own resolves). pip's index and
                # its token come through passthrough.py: even an uncached process's environment
                # is stored when a remote cache is on.
                extra_env=process_env({"PIP_CONFIG_FILE": ""}),
                append_only_caches=APPEND_ONLY_CACHES,
                cache_scope=ProcessCacheScope.PER_SESSION,
                level=LogLevel.INFO,
            )
        )
    results = await engine.run_each(processes)
    failed = 0
    for process, result in zip(processes, results):
        if result.exit_code != 0:
            failed += 1
            console.print_stderr(result.stderr.decode(errors="replace").strip())
        else:
            console.print_stdout(result.stdout.decode(errors="replace").strip())
    merged = await engine.merge(r.output_digest for r in results if r.exit_code == 0)
    workspace.write_digest(merged)
    if not processes:
        console.print_stderr(f"No triton_model with a {REQUIREMENTS_FILE} among the targets.")
    return LockEnvs(exit_code=1 if failed else 0)


def rules():
    return collect_rules()
