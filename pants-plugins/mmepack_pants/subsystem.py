"""`[mmepack]` options in pants.toml."""

from __future__ import annotations

from pants.option.option_types import StrListOption, StrOption
from pants.option.subsystem import Subsystem


class MmepackSubsystem(Subsystem):
    options_scope = "mmepack"
    help = "How mmepack builds Triton model artifacts."

    cli = StrOption(
        default="//src/mmepack:cli",
        help="Address of the `pex_binary` of the mmepack command line that the rules run.",
    )
    env_builder = StrOption(
        default="//src/mmepack:env-builder",
        help="Address of the `pex_binary` of mmepack's environment builder.",
        advanced=True,
    )
    python_version = StrOption(
        default="3.11",
        help="Default Python version of the conda-packed environments (`python_version` field).",
    )
    dvc_target = StrOption(
        default="//:dvc",
        help=(
            "Target holding the repository's DVC configuration (and a local remote, if any); "
            "`tailor` adds it to the dependencies of models that track weights with DVC."
        ),
    )
    env_passthrough = StrListOption(
        default=[
            "PATH",
            "HOME",
            "PYENV_ROOT",
            "MMEPACK_PYTHON_3_10",
            "MMEPACK_PYTHON_3_11",
            "MMEPACK_PYTHON_3_12",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "NO_PROXY",
            "PIP_CONFIG_FILE",
            "PIP_INDEX_URL",
            "PIP_EXTRA_INDEX_URL",
            "PIP_CERT",
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
        ],
        help=(
            "Environment variables handed to the build processes: where to find a base Python, "
            "pip's index and proxies, and credentials for an S3 DVC remote."
        ),
        advanced=True,
    )
