"""The file-name contract between a model directory, the artifact and Triton.

Every name a data scientist writes, a builder produces or Triton looks for is spelled here and
nowhere else, so a rename is one edit and no two stages can disagree about a file.
"""

from __future__ import annotations

# What a model directory holds besides its Triton model folders.
CONFIG_FILE = "config.pbtxt"
VERSION_FILE = "model_version.txt"
REQUIREMENTS_FILE = "requirements.txt"
# Exact versions and sha256 hashes resolved from requirements.txt by `mmepack lock`, committed
# beside it; the environment is installed from this file alone.
LOCK_FILE = "requirements.lock"
# The Pants files whose settings the CLI reads so both build the same artifact.
BUILD_FILE = "BUILD"
PANTS_CONFIG = "pants.toml"

# What the environment build produces and the artifact carries beside a Python step's config.
ENV_ARCHIVE = "python_env.tar.gz"
STUB_NAME = "triton_python_backend_stub"
# The one environment an artifact carries for all its Python steps: the same archive, unpacked
# from its gzip (the artifact's own gzip compresses it; see mmepack.artifact.env_layout).
SHARED_ENV_TAR = "python_env.tar"
# How a packed environment's tar member ends, in either layout (publish records each one).
ENV_MEMBER_SUFFIXES = (ENV_ARCHIVE, SHARED_ENV_TAR)

# In the environment cache's folder: every build's progress lines (pip's included), appended as
# they come. Pants shows a process's output only when it ends; this file can be followed.
PROGRESS_LOG = "progress.log"

# The Python backend parameter that points a step at its packed environment, and the prefix it
# must start with (the host path of an MME model is only known at load time).
ENV_PATH_PARAMETER = "EXECUTION_ENV_PATH"
MODEL_DIR_VARIABLE = "$$TRITON_MODEL_DIRECTORY/"

# The artifact name SageMaker uses as TargetModel: `<model>_<version>.tar.gz`.
ARTIFACT_SUFFIX = ".tar.gz"

# Declarative model tests: JSON case files beside a model, relative to its directory (the
# `cases` field of a `triton_model` target may name another glob).
CASES_GLOB = "tests/cases/*.json"
