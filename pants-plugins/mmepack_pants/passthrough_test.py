"""Credentials never reach a process the rules build, so rotating them changes no cache key:
the packaging and environment-build processes are compared whole for two machines that differ
in every passed-through value (credentials, pip's index token, proxy, PATH, HOME). The values
reach the steps through a private file instead, written on every run."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping

from pants.backend.python.util_rules.pex import VenvPex, VenvPexProcess
from pants.core.util_rules.source_files import SourceFiles, SourceFilesRequest
from pants.engine.addresses import Address, Addresses
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import (
    EMPTY_DIGEST,
    AddPrefix,
    Digest,
    DigestContents,
    DigestSubset,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
    Snapshot,
)
from pants.engine.internals.session import RunId
from pants.engine.process import (
    FallibleProcessResult,
    ProcessExecutionEnvironment,
    ProcessResultMetadata,
)
from pants.engine.target import TransitiveTargets, TransitiveTargetsRequest
from pants.option.global_options import NamedCachesDirOption
from pants.testutil.option_util import create_subsystem
from pants.testutil.rule_runner import MockGet, run_rule_with_mocks
from pants.util.ordered_set import FrozenOrderedSet

from mmepack_pants.engine import (
    EnvBuilderRequest,
    MmepackCliRequest,
    PassthroughRequest,
    PythonEnv,
    PythonEnvRequest,
    ToolchainRequest,
    TritonModelPackageFieldSet,
)
from mmepack_pants.environment import build_python_env
from mmepack_pants.package import build_triton_model
from mmepack_pants.passthrough import (
    APPEND_ONLY_CACHES,
    VARIABLE,
    passthrough_file,
    write_passthrough,
    write_passthrough_file,
)
from mmepack_pants.subsystem import MmepackSubsystem, TritonServerSubsystem
from mmepack_pants.target_types import TritonModelTarget


def _machine(n: int) -> Dict[str, str]:
    """A machine's passed-through variables; every value is unique to machine `n`."""
    token = f"mmepackUnique{n}x7Q"
    return {
        "AWS_ACCESS_KEY_ID": f"ASIAMMEPACK{n}UNIQUEKEY",
        "AWS_SECRET_ACCESS_KEY": f"secret-{token}",
        "AWS_SESSION_TOKEN": f"session-{token}",
        "PIP_INDEX_URL": f"https://ci:{token}-pip@index.invalid/simple",
        "HTTPS_PROXY": f"http://ci:{token}-proxy@proxy.invalid:3128",
        "HOME": f"/home/user{n}",
        "PATH": f"/home/user{n}/bin:/usr/bin",
    }


def _environment_vars(machine: Mapping[str, str]) -> Any:
    """Pants' EnvironmentVars rule for `machine`: exactly the variables a rule asks for."""
    return lambda request: EnvironmentVars(
        {k: machine[k] for k in request.requested if k in machine}
    )


_BUILDER, _CLI = object(), object()
_ENVIRONMENT = ProcessExecutionEnvironment(
    environment_name=None,
    platform="linux_x86_64",
    docker_image=None,
    remote_execution=False,
    remote_execution_extra_platform_properties=[],
)


def _declared(rule: Any, mocks: List[MockGet]) -> List[MockGet]:
    """The mocks for the Gets `rule` declares (the test runner wants exactly those), so one
    test runs against any version of the rule: one that asks for the machine's variables gets
    them all, as it would from Pants."""
    declared = {(g.output_type, g.input_types) for g in rule.rule.input_gets}
    return [m for m in mocks if (m.output_type, tuple(m.input_types)) in declared]


def _failed(captured: List[VenvPexProcess]) -> Any:
    """Record the process, then fail it: the rule stops there with mmepack's error."""

    def run(process: VenvPexProcess) -> FallibleProcessResult:
        captured.append(process)
        return FallibleProcessResult(
            stdout=b"",
            stdout_digest=EMPTY_DIGEST,  # type: ignore[arg-type]
            stderr=b"mmepack: error: stopped by the test",
            stderr_digest=EMPTY_DIGEST,  # type: ignore[arg-type]
            exit_code=1,
            output_digest=EMPTY_DIGEST,
            metadata=ProcessResultMetadata(None, _ENVIRONMENT, "ran", 1),
        )

    return run


def _subsystems() -> tuple[MmepackSubsystem, TritonServerSubsystem]:
    mmepack = create_subsystem(
        MmepackSubsystem,
        builder=None,
        conda=None,
        python_version=None,
        env_passthrough=[*_machine(0), "MMEPACK_ENV_CACHE", "XDG_CACHE_HOME"],
        dvc_target="//:dvc",
    )
    server = create_subsystem(TritonServerSubsystem, version=None, stub_python=None, stub_dir=None)
    return mmepack, server


def _environment_process(machine: Mapping[str, str]) -> VenvPexProcess:
    captured: List[VenvPexProcess] = []
    mmepack, server = _subsystems()
    request = PythonEnvRequest(Address("models/m", target_name="m"), "models/m", EMPTY_DIGEST, ())
    try:
        run_rule_with_mocks(
            build_python_env,
            rule_args=[request, mmepack, server],
            mock_gets=_declared(
                build_python_env,
                [
                    MockGet(Digest, (DigestSubset,), lambda _: EMPTY_DIGEST),
                    MockGet(DigestContents, (DigestSubset,), lambda _: DigestContents([])),
                    MockGet(Digest, (RemovePrefix,), lambda _: EMPTY_DIGEST),
                    MockGet(Digest, (PathGlobs,), lambda _: EMPTY_DIGEST),
                    MockGet(Digest, (MergeDigests,), lambda _: EMPTY_DIGEST),
                    MockGet(VenvPex, (EnvBuilderRequest,), lambda _: _BUILDER),
                    MockGet(EnvironmentVars, (EnvironmentVarsRequest,), _environment_vars(machine)),
                    MockGet(FallibleProcessResult, (VenvPexProcess,), _failed(captured)),
                ],
            ),
        )
    except Exception as exc:
        assert "stopped by the test" in str(exc)
    assert len(captured) == 1
    return captured[0]


def _package_process(machine: Mapping[str, str]) -> VenvPexProcess:
    captured: List[VenvPexProcess] = []
    mmepack, server = _subsystems()
    field_set = TritonModelPackageFieldSet.create(TritonModelTarget({}, Address("models/m")))
    files = ("models/m/model_version.txt", "models/m/requirements.txt")
    env = PythonEnv(
        EMPTY_DIGEST, False, (), (), ProcessResultMetadata(None, _ENVIRONMENT, "ran", 1)
    )
    packaged = run_rule_with_mocks(
        build_triton_model,
        rule_args=[field_set, mmepack, server],
        mock_gets=_declared(
            build_triton_model,
            [
                MockGet(Addresses, (ToolchainRequest,), lambda _: Addresses()),
                MockGet(
                    TransitiveTargets,
                    (TransitiveTargetsRequest,),
                    lambda _: TransitiveTargets((), FrozenOrderedSet()),
                ),
                MockGet(VenvPex, (MmepackCliRequest,), lambda _: _CLI),
                MockGet(
                    SourceFiles,
                    (SourceFilesRequest,),
                    lambda _: SourceFiles(Snapshot.create_for_testing(files, ("models/m",)), ()),
                ),
                MockGet(Digest, (PathGlobs,), lambda _: EMPTY_DIGEST),
                MockGet(Digest, (MergeDigests,), lambda _: EMPTY_DIGEST),
                MockGet(PythonEnv, (PythonEnvRequest,), lambda _: env),
                MockGet(EnvironmentVars, (EnvironmentVarsRequest,), _environment_vars(machine)),
                MockGet(FallibleProcessResult, (VenvPexProcess,), _failed(captured)),
                MockGet(Digest, (DigestSubset,), lambda _: EMPTY_DIGEST),
                MockGet(DigestContents, (DigestSubset,), lambda _: DigestContents([])),
                MockGet(Snapshot, (PathGlobs,), lambda _: Snapshot.create_for_testing((), ())),
                MockGet(Digest, (RemovePrefix,), lambda _: EMPTY_DIGEST),
                MockGet(Snapshot, (AddPrefix,), lambda _: Snapshot.create_for_testing((), ())),
            ],
        ),
    )
    assert packaged.error is not None and "stopped by the test" in packaged.error
    assert len(captured) == 1
    return captured[0]


def _assert_no_value_of(machine: Mapping[str, str], process: VenvPexProcess) -> None:
    # All but the description, which Pants shows the user and keeps out of the key and stores.
    said = repr(dataclasses.replace(process, description=""))
    for name, value in machine.items():
        assert value not in said, f"{name}'s value is in the process"


def test_rotated_credentials_build_the_same_environment_process() -> None:
    first, second = _environment_process(_machine(1)), _environment_process(_machine(2))
    # The whole process (argv, env, inputs, outputs, caches) is its cache key's source.
    assert first == second
    _assert_no_value_of(_machine(1), first)
    assert first.extra_env is not None and first.extra_env[VARIABLE].startswith(".cache/")
    assert dict(APPEND_ONLY_CACHES).items() <= dict(first.append_only_caches or {}).items()


def test_rotated_credentials_build_the_same_package_process() -> None:
    first, second = _package_process(_machine(1)), _package_process(_machine(2))
    assert first == second
    _assert_no_value_of(_machine(1), first)
    assert first.extra_env is not None and set(first.extra_env) == {VARIABLE}
    assert dict(first.append_only_caches or {}) == dict(APPEND_ONLY_CACHES)


def test_the_values_go_to_a_private_file_on_every_run(tmp_path: Path) -> None:
    mmepack, _ = _subsystems()
    for run_id, n in ((1, 1), (2, 2)):
        run_rule_with_mocks(
            write_passthrough,
            rule_args=[
                PassthroughRequest(),
                RunId(run_id),
                mmepack,
                NamedCachesDirOption(tmp_path),
            ],
            mock_gets=[
                MockGet(EnvironmentVars, (EnvironmentVarsRequest,), _environment_vars(_machine(n)))
            ],
        )
        path = passthrough_file(tmp_path)
        # The run's own values, whole: the second run's rotated credentials replaced the first's.
        assert json.loads(path.read_text()) == _machine(n)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_a_deleted_or_loosened_file_is_written_again(tmp_path: Path) -> None:
    path = write_passthrough_file(tmp_path, {"A": "1"})
    path.chmod(0o644)
    write_passthrough_file(tmp_path, {"A": "1"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.unlink()
    write_passthrough_file(tmp_path, {})
    assert json.loads(path.read_text()) == {}


def test_the_publish_uploads_variables_join_the_file(tmp_path: Path) -> None:
    # The upload asks for [mmepack-publish].env_passthrough on top of [mmepack]'s: both reach
    # the file, and a variable neither list names does not.
    mmepack, _ = _subsystems()
    machine = {**_machine(3), "GITHUB_SHA": "c0ffee", "UNLISTED": "never"}
    run_rule_with_mocks(
        write_passthrough,
        rule_args=[
            PassthroughRequest(("GITHUB_SHA", "AWS_SESSION_TOKEN")),
            RunId(3),
            mmepack,
            NamedCachesDirOption(tmp_path),
        ],
        mock_gets=[MockGet(EnvironmentVars, (EnvironmentVarsRequest,), _environment_vars(machine))],
    )
    assert json.loads(passthrough_file(tmp_path).read_text()) == {
        **_machine(3),
        "GITHUB_SHA": "c0ffee",
    }


def test_each_pants_process_writes_its_own_file_and_ended_ones_are_removed(
    tmp_path: Path,
) -> None:
    # Two Pants runs at once on one machine must not hand each other their credentials: the
    # file is named by the writing process, and the files of processes that ended go.
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    alive = os.getppid()
    folder = passthrough_file(tmp_path).parent
    folder.mkdir(parents=True)
    passthrough_file(tmp_path, ended.pid).write_text("{}")
    passthrough_file(tmp_path, alive).write_text("{}")
    path = write_passthrough_file(tmp_path, {"A": "1"})
    assert path == passthrough_file(tmp_path, os.getpid())
    assert path.name == f"env-{os.getpid()}.json"
    assert sorted(p.name for p in folder.iterdir()) == sorted([path.name, f"env-{alive}.json"])
