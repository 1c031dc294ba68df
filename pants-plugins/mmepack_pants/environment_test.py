"""The plugin passes an option to mmepack only when it is set, so the library owns defaults;
the environment's report is told as it happened in the run that logs it."""

from __future__ import annotations

import dataclasses

from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST
from pants.engine.internals.session import RunId
from pants.engine.process import ProcessExecutionEnvironment, ProcessResultMetadata
from pants.testutil.option_util import create_subsystem

from mmepack_pants.engine import PythonEnv
from mmepack_pants.environment import (
    build_description,
    builder_args,
    progress_log_path,
    stub_dir_globs,
    target_args,
)
from mmepack_pants.subsystem import EnvBuilderKind, MmepackSubsystem, TritonServerSubsystem


def test_unset_options_pass_nothing() -> None:
    server = create_subsystem(TritonServerSubsystem, version=None, stub_python=None, stub_dir=None)
    assert target_args(None, server) == ()
    assert builder_args(create_subsystem(MmepackSubsystem, builder=None, conda=None)) == ()


def test_set_options_are_passed_as_given() -> None:
    server = create_subsystem(
        TritonServerSubsystem, version="2.53.0", stub_python="3.12", stub_dir="stubs"
    )
    assert target_args("3.12", server) == (
        "--python=3.12",
        "--triton-version=2.53.0",
        "--stub-python=3.12",
        "--stub-dir=stubs",
    )
    # A relative stub folder travels into the sandbox, so no clone's own path is in the key.
    assert stub_dir_globs(server) == ("stubs/**",)
    subsystem = create_subsystem(MmepackSubsystem, builder=EnvBuilderKind.portable, conda="mamba")
    assert builder_args(subsystem) == ("--builder=portable", "--conda=mamba")


def test_absolute_stub_dir_is_not_copied() -> None:
    server = create_subsystem(
        TritonServerSubsystem, version="2.53.0", stub_python="3.12", stub_dir="/opt/stubs"
    )
    assert stub_dir_globs(server) == ()
    assert target_args(None, server)[-1] == "--stub-dir=/opt/stubs"


def test_progress_log_is_where_the_library_writes_it() -> None:
    # mmepack.environment.cache.default_cache_root, then names.PROGRESS_LOG.
    assert progress_log_path({"HOME": "/h"}) == "/h/.cache/mmepack/envs/progress.log"
    assert progress_log_path({"HOME": "/h", "XDG_CACHE_HOME": "/x"}) == (
        "/x/mmepack/envs/progress.log"
    )
    assert progress_log_path({"MMEPACK_ENV_CACHE": "/c", "XDG_CACHE_HOME": "/x"}) == (
        "/c/progress.log"
    )


def test_running_builder_says_what_it_does_and_where_pip_shows() -> None:
    said = build_description(Address("models/m", target_name="m"), "3.12", {"HOME": "/h"})
    assert "Python 3.12 environment for models/m:m" in said
    assert "about a minute" in said
    assert "tail -f /h/.cache/mmepack/envs/progress.log" in said


def _metadata(source: str, run_id: int) -> ProcessResultMetadata:
    environment = ProcessExecutionEnvironment(
        environment_name=None,
        platform="linux_x86_64",
        docker_image=None,
        remote_execution=False,
        remote_execution_extra_platform_properties=[],
    )
    return ProcessResultMetadata(None, environment, source, run_id)


def test_env_report_says_whether_the_builder_ran_in_the_run_that_logs_it() -> None:
    # pantsd keeps a PythonEnv across runs; the package rule logs it in every run.
    env = PythonEnv(
        EMPTY_DIGEST,
        stub=False,
        lines_if_ran=("built now",),
        lines_if_cached=("Pants' cache",),
        metadata=_metadata("ran", 7),
    )
    assert env.report(RunId(7)) == ("built now",)
    assert env.report(RunId(8)) == ("Pants' cache",)
    from_cache = dataclasses.replace(env, metadata=_metadata("hit_locally", 7))
    assert from_cache.report(RunId(7)) == ("Pants' cache",)
    # The run that made it is no part of its value (as in Pants' ProcessResult), so the same
    # environment made again in a later run does not look changed to the rules using it.
    assert from_cache == env
