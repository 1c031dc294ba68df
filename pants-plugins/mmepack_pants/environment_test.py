"""The plugin passes an option to mmepack only when it is set, so the library owns defaults."""

from __future__ import annotations

from pants.testutil.option_util import create_subsystem

from mmepack_pants.environment import builder_args, target_args
from mmepack_pants.subsystem import EnvBuilderKind, MmepackSubsystem, TritonServerSubsystem


def test_unset_options_pass_nothing() -> None:
    server = create_subsystem(TritonServerSubsystem, version=None, stub_python=None, stub_dir=None)
    assert target_args(None, server, "/repo") == ()
    assert builder_args(create_subsystem(MmepackSubsystem, builder=None, conda=None)) == ()


def test_set_options_are_passed_as_given() -> None:
    server = create_subsystem(
        TritonServerSubsystem, version="2.53.0", stub_python="3.12", stub_dir="stubs"
    )
    assert target_args("3.12", server, "/repo") == (
        "--python=3.12",
        "--triton-version=2.53.0",
        "--stub-python=3.12",
        "--stub-dir=/repo/stubs",
    )
    subsystem = create_subsystem(MmepackSubsystem, builder=EnvBuilderKind.portable, conda="mamba")
    assert builder_args(subsystem) == ("--builder=portable", "--conda=mamba")
