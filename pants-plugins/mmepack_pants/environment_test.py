"""The plugin passes an option to mmepack only when it is set, so the library owns defaults."""

from __future__ import annotations

from pants.engine.addresses import Address
from pants.testutil.option_util import create_subsystem

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
