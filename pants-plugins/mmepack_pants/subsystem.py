"""`[mmepack]` and `[triton-server]` options in pants.toml.

The library owns every default: options that choose how an artifact is built default to unset
and are passed to the mmepack command line only when set, so `mmepack ...` run by hand and
`./pants package` agree without restating a value here.
"""

from __future__ import annotations

from enum import Enum
from importlib.metadata import PackageNotFoundError, version
from typing import Optional

from pants.backend.python.subsystems.python_tool_base import PythonToolBase
from pants.backend.python.target_types import ConsoleScript
from pants.option.option_types import BoolOption, EnumOption, SkipOption, StrListOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.meta import classproperty
from pants.util.strutil import softwrap

from mmepack_contract import CONDA_VARIABLE, DVC_CACHE_VARIABLE, ENV_CACHE_VARIABLE, PYTHON_VARIABLE
from mmepack_pants.tool_lock import (
    LOCK_PACKAGE,
    LOCK_RESOURCE,
    PLUGIN_DISTRIBUTION,
    tool_requirement,
)


def plugin_version() -> Optional[str]:
    """The version of this plugin, which is the version of mmepack it installs; None where the
    plugin is not installed as a distribution (this repository loads it from source through
    `[GLOBAL].pythonpath` and builds mmepack from sources, `[mmepack].from_sources`)."""
    try:
        return version(PLUGIN_DISTRIBUTION)
    except PackageNotFoundError:
        return None


class EnvBuilderKind(Enum):
    auto = "auto"
    conda = "conda"
    portable = "portable"


class MmepackSubsystem(PythonToolBase):
    options_scope = "mmepack"
    help = softwrap(
        """
        How mmepack builds Triton model artifacts, and which mmepack does it.

        mmepack is a Python tool, installed the way Pants installs black: by default the
        `mmepack[serve]` release of this plugin's own version, from the lockfile inside the
        plugin's wheel (see the install page of the mmepack docs). Its CLI, environment builder
        and case runner are entry points of that one install. `from_sources` builds them from
        targets in this repository instead (the mmepack repository itself).
        """
    )

    # `mmepack[serve]==<this plugin's version>`; unpinned only where the plugin is not installed.
    default_version = tool_requirement(plugin_version())
    default_main = ConsoleScript("mmepack")
    register_interpreter_constraints = True
    # The library's own: src/mmepack:dist's python_requires.
    default_interpreter_constraints = ["CPython==3.11.*"]
    default_lockfile_resource = (LOCK_PACKAGE, LOCK_RESOURCE)

    @classproperty
    def default_lockfile_url(cls) -> str:
        """Where `help` says the default lockfile is: not in Pants' repository, as the base
        class assumes, but in this plugin's wheel."""
        return "the file mmepack_pants/mmepack.lock inside the mmepack-pants wheel"

    from_sources = BoolOption(
        default=False,
        help=softwrap(
            """
            Build the mmepack programs from this repository's targets (`cli`, `env_builder`,
            `[model-cases].runner`) instead of installing the `mmepack` tool. For the mmepack
            repository itself, which builds its examples with the code under review.
            """
        ),
        advanced=True,
    )
    cli = StrOption(
        default="//src/mmepack:cli",
        help=softwrap(
            """
            With `from_sources`: address of the `pex_binary` of the mmepack command line that
            the rules run.
            """
        ),
        advanced=True,
    )
    env_builder = StrOption(
        default="//src/mmepack:env-builder",
        help=softwrap(
            """
            With `from_sources`: address of the target whose dependencies make mmepack's
            environment builder PEX (entry point `mmepack.environment.command:main`).
            """
        ),
        advanced=True,
    )
    python_version = StrOption(
        default=None,
        help=softwrap(
            """
            Python version of the conda-packed environments of models whose target sets no
            `python_version`. Unset: mmepack's default (`mmepack build-env --help`).
            """
        ),
    )
    builder = EnumOption(
        default=None,
        enum_type=EnvBuilderKind,
        help=softwrap(
            """
            How Python backend environments are made. `auto`: with conda, mamba or micromamba
            when one is found (see `conda`), else the portable builder (a local shared-library
            CPython). `conda`: conda only; the build fails where none is found, for teams that
            accept only conda-built environments. `portable`: never conda. Unset: mmepack's
            default (`auto`).
            """
        ),
    )
    conda = StrOption(
        default=None,
        help=softwrap(
            """
            The conda, mamba or micromamba executable (name on PATH or absolute path). Default:
            $MMEPACK_CONDA_EXE, $MAMBA_EXE, $CONDA_EXE, then micromamba, mamba, conda on PATH.
            """
        ),
    )
    toolchain = StrListOption(
        default=[],
        help=softwrap(
            """
            Targets every `triton_model` depends on besides (with `from_sources`) `cli` and
            `env_builder`: e.g. Pants' configuration, the lockfiles and an in-repo plugin. Through them a change to any of those
            selects every model under `--changed-since=<ref> --changed-dependents=transitive`.
            Their files never enter a model's build sandbox.
            """
        ),
        advanced=True,
    )
    dvc_target = StrOption(
        default="//:dvc",
        help=(
            "Target holding the repository's DVC configuration (.dvc/config); "
            "`tailor` adds it to the dependencies of models that track weights with DVC."
        ),
    )
    env_passthrough = StrListOption(
        default=[
            "PATH",
            "HOME",
            "PYENV_ROOT",
            *(f"{PYTHON_VARIABLE}3_{minor}" for minor in range(8, 14)),
            ENV_CACHE_VARIABLE,
            DVC_CACHE_VARIABLE,
            "XDG_CACHE_HOME",
            CONDA_VARIABLE,
            "MAMBA_EXE",
            "CONDA_EXE",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "NO_PROXY",
            "PIP_CONFIG_FILE",
            "PIP_INDEX_URL",
            "PIP_EXTRA_INDEX_URL",
            "PIP_CERT",
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            # An S3 DVC remote: credentials, profiles and endpoint as every AWS tool reads them,
            # including CI's web-identity and container credentials.
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_CONFIG_FILE",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "AWS_CA_BUNDLE",
            "AWS_MAX_ATTEMPTS",
            "AWS_RETRY_MODE",
            "AWS_ROLE_ARN",
            "AWS_ROLE_SESSION_NAME",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            "AWS_EC2_METADATA_DISABLED",
        ],
        help=softwrap(
            """
            Environment variables handed to mmepack's build steps: where to find a base Python,
            pip's index and proxies, and credentials for an S3 DVC remote. They are given
            through a private file in the named cache `mmepack_passthrough`, never as the
            processes' environment, so no value is in a cache key or sent to a remote cache.
            """
        ),
        advanced=True,
    )


class TritonServerSubsystem(Subsystem):
    options_scope = "triton-server"
    help = softwrap(
        """
        The Triton server the artifacts are built for. When a model's environment Python differs
        from this server's own Python-backend stub, each Python step ships a stub for the
        environment's Python, built by this same Triton release; without one at hand the build
        fails rather than ship a model that would hang on load.
        """
    )

    version = StrOption(
        default=None,
        help=softwrap(
            """
            Triton server version (not the container tag), e.g. 2.51.0 for NGC/SageMaker
            release 24.10. Unset: mmepack's default, the release whose stubs nvidia-pytriton
            carries and whose server the model tests run.
            """
        ),
    )
    stub_python = StrOption(
        default=None,
        help=softwrap(
            """
            Python version of that server's own stub (3.10 for releases 23.05 to 24.11).
            Unset: mmepack's default, that of its default release.
            """
        ),
    )
    stub_dir = StrOption(
        default=None,
        help=softwrap(
            """
            Folder of stubs built by the target release, laid out as
            `3.X/triton_python_backend_stub` (relative to the build root or absolute). Needed only
            when `version` is not the release in nvidia-pytriton.
            """
        ),
    )


class ModelCasesSubsystem(Subsystem):
    options_scope = "model-cases"
    name = "model cases"
    help = "Running each `triton_model`'s JSON test cases against its artifact in `test`."

    skip = SkipOption("test")
    runner = StrOption(
        default="//src/mmepack:cases",
        help=softwrap(
            """
            With `[mmepack].from_sources`: address of the target whose dependencies make the
            PEX that runs model cases
            (`mmepack.cases.command`): the CLI plus the server packages, which the
            `[mmepack].cli` PEX leaves out.
            """
        ),
        advanced=True,
    )
