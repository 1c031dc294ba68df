"""The file-name contract between a model directory, the artifact and Triton.

Every name a data scientist writes, a builder produces or Triton looks for is spelled here (or,
where the Pants plugin needs it too, in mmepack_contract and re-exported here) and nowhere else,
so a rename is one edit and no two stages can disagree about a file.
"""

from __future__ import annotations

# The names the Pants plugin also looks for live in mmepack_contract, which it can import.
from mmepack_contract import ARTIFACT_SUFFIX as ARTIFACT_SUFFIX
from mmepack_contract import CASES_GLOB as CASES_GLOB
from mmepack_contract import CONFIG_FILE as CONFIG_FILE
from mmepack_contract import ENV_ARCHIVE as ENV_ARCHIVE
from mmepack_contract import LOCK_FILE as LOCK_FILE
from mmepack_contract import PROGRESS_LOG as PROGRESS_LOG
from mmepack_contract import REQUIREMENTS_FILE as REQUIREMENTS_FILE
from mmepack_contract import STUB_NAME as STUB_NAME
from mmepack_contract import VERSION_FILE as VERSION_FILE

# The Pants files whose settings the CLI reads so both build the same artifact.
BUILD_FILE = "BUILD"
PANTS_CONFIG = "pants.toml"

# The one environment an artifact carries for all its Python steps: the same archive, unpacked
# from its gzip (the artifact's own gzip compresses it; see mmepack.artifact.env_layout).
SHARED_ENV_TAR = "python_env.tar"
# How a packed environment's tar member ends, in either layout (publish records each one).
ENV_MEMBER_SUFFIXES = (ENV_ARCHIVE, SHARED_ENV_TAR)

# The Python backend parameter that points a step at its packed environment, and the prefix it
# must start with (the host path of an MME model is only known at load time).
ENV_PATH_PARAMETER = "EXECUTION_ENV_PATH"
MODEL_DIR_VARIABLE = "$$TRITON_MODEL_DIRECTORY/"

# The artifact name SageMaker uses as TargetModel: `<model>_<version>.tar.gz`.

# Declarative model tests: JSON case files beside a model, relative to its directory (the
# `cases` field of a `triton_model` target may name another glob).
