"""The contract between the `mmepack` library and the `mmepack-pants` plugin, in one place.

The plugin runs inside Pants' own Python (3.7 to 3.9) and the library in 3.11, so the plugin
cannot import the library. Both import this package instead: it is its own distribution,
`mmepack-contract` (stdlib only, Python 3.7 and up), which both wheels require at their one
shared version; in this repository Pants loads it from `src/` beside the plugin's
`pants-plugins/` (pants.toml `[GLOBAL].pythonpath`), so there is one copy of it in git and none
in the plugin. This module holds plain values only (tests/test_contract.py checks it): the file
names both sides look for, the patterns both sides apply, the variables both sides read and the
schema versions of the reports the library writes for the plugin. `reports` reads those reports
and `paths` finds the library's caches, for both sides.

`CONTRACT_VERSION` changes whenever a value here changes meaning, so a plugin meeting a library
of another contract can say which two versions disagree instead of misreading its files.
"""

# Python 3.7 is the oldest Python Pants 2.17 runs on: keep this file to its syntax.

# The version of this contract: it changes whenever a value here changes meaning.
# 2: `mmepack package --report` writes the package report below, which the plugin reads.
CONTRACT_VERSION = 2

# What a model directory holds besides its Triton model folders.
CONFIG_FILE = "config.pbtxt"
VERSION_FILE = "model_version.txt"
REQUIREMENTS_FILE = "requirements.txt"

# Exact versions and sha256 hashes resolved from requirements.txt by `mmepack lock`, committed
# beside it; the environment is installed from this file alone.
LOCK_FILE = "requirements.lock"

# What the environment build produces and the artifact carries beside a Python step's config.
ENV_ARCHIVE = "python_env.tar.gz"
STUB_NAME = "triton_python_backend_stub"

# In the environment cache's folder: every build's progress lines (pip's included), appended as
# they come. Pants shows a process's output only when it ends; this file can be followed.
PROGRESS_LOG = "progress.log"

# Declarative model tests: JSON case files beside a model, relative to its directory (the
# `cases` field of a `triton_model` target may name another glob).
CASES_GLOB = "tests/cases/*.json"

# The artifact name SageMaker uses as TargetModel: `<model>_<version>.tar.gz`.
ARTIFACT_SUFFIX = ".tar.gz"

# A model version: it ends up in an S3 key and in SageMaker's TargetModel string, where Triton
# guesses a backend from the text after the first dot, so digits and dots only.
MODEL_VERSION_PATTERN = r"[0-9]+(\.[0-9]+){0,2}"

# How SageMaker's Triton picks the ensemble among several model folders at an artifact's root.
SAGEMAKER_ENSEMBLE_PATTERN = r'platform:(\s)*"ensemble"'

# GitHub Actions, GitLab CI, Jenkins: the first one set names the branch, or the commit, built.
BRANCH_VARIABLES = ("GITHUB_REF_NAME", "CI_COMMIT_BRANCH", "BRANCH_NAME")
COMMIT_VARIABLES = ("GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT")

# Where the environment builder caches built environments, when set (paths.env_cache_root).
ENV_CACHE_VARIABLE = "MMEPACK_ENV_CACHE"

# Else that cache is this folder under $XDG_CACHE_HOME, or under ~/.cache.
ENV_CACHE_FOLDER = "mmepack/envs"

# The S3 prefix `mmepack publish` uploads under when `--prefix` is not given.
S3_PREFIX_VARIABLE = "MMEPACK_S3_PREFIX"

# The base interpreter for Python 3.X, when set: `MMEPACK_PYTHON_3_X` (a prefix).
PYTHON_VARIABLE = "MMEPACK_PYTHON_"

# Where the shared DVC cache lives when --dvc-cache is not given.
DVC_CACHE_VARIABLE = "MMEPACK_DVC_CACHE"

# The conda-like executable the conda builder runs, when set.
CONDA_VARIABLE = "MMEPACK_CONDA_EXE"

# The JSON file of the machine's variables (credentials, PATH, HOME) that the plugin writes
# outside every cache key and the library's steps load first (mmepack.passthrough).
PASSTHROUGH_VARIABLE = "MMEPACK_PASSTHROUGH_FILE"

# How a library command starts the stderr line that explains its failure; the plugin shows a
# failed step's output from that line on.
ERROR_PREFIX = "mmepack: error:"

# Schema of the environment builder's JSON report (reports.EnvReport), which the plugin reads:
# bump on any change of its fields or their meaning. 2: the report carries `contract`.
ENV_REPORT_SCHEMA = 2

# The package step's JSON report (`mmepack package --report PATH`; mmepack.artifact.report),
# which the plugin reads instead of the command's output: the weights, the size by part and
# its warning, the artifacts with their bytes and sha256. Bump on any change of its fields or
# their meaning.
PACKAGE_REPORT_SCHEMA = 1
# Where the plugin has the package step write it: in the sandbox, outside the output folder.
PACKAGE_REPORT_FILE = "mmepack-package-report.json"
