"""The `triton_model` target: one deployable Triton model directory.

Only declarations live here (fields and the target); the rules that act on them are in
`package.py`, the way Pants' own backends keep target types, rules and subsystems apart.
"""

from __future__ import annotations

from pants.core.goals.test import TestTimeoutField
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    Dependencies,
    DictStringToStringField,
    MultipleSourcesField,
    StringField,
    Target,
)

from mmepack_contract import CASES_GLOB

# Where a model's declarative test cases are, relative to its directory (the contract's).
DEFAULT_CASES_GLOB = CASES_GLOB


class TritonModelSourcesField(MultipleSourcesField):
    # Everything in the model directory except its tests and BUILD files (at any depth: a BUILD
    # file is never model content). A DVC-tracked file's working-tree copy matches too (Pants
    # ignores DVC's nested .gitignore files); the package rule drops it, so the weights always
    # come from the DVC remote.
    default = ("**/*", "!**/BUILD", "!**/BUILD.*", "!tests/**", "!**/__pycache__/**")
    help = (
        "The model directory's files: one folder per Triton model (with config.pbtxt), "
        "model_version.txt, requirements.txt and the .dvc files of the weights."
    )


class TritonModelDependenciesField(Dependencies):
    help = (
        "Targets whose files must sit beside the model while it is built, typically the "
        "repository's DVC configuration (`//:dvc`) so the weights can be pulled."
    )


class TritonModelPythonVersionField(StringField):
    alias = "python_version"
    help = (
        "Python version (e.g. `3.11`) of the conda-packed environment for the model's Python "
        "steps; defaults to `[mmepack].python_version`."
    )


class TritonModelOutputDirField(StringField):
    alias = "output_dir"
    default = "mme"
    help = (
        "Folder under `dist/` that receives `<model>_<version>.tar.gz`. All models share one "
        "folder by default, mirroring the flat S3 prefix of a multi-model endpoint."
    )


class TritonModelCasesField(StringField):
    alias = "cases"
    default = DEFAULT_CASES_GLOB
    help = (
        "Glob of the model's JSON test cases, relative to the model directory. `test` runs each "
        "against the packaged artifact on the local endpoint; a model without case files has "
        "no tests. Data files the cases name must sit in the case files' folders."
    )


class TritonModelTestTimeoutField(TestTimeoutField):
    help = (
        "Seconds the model's test cases may take in all, packaging excluded (server start, "
        "load, every case). Unset: `[test].timeout_default`, else 1200."
    )


class TritonModelCapacityBudgetField(DictStringToStringField):
    alias = "capacity_budget"
    help = (
        "What the model may cost an endpoint, checked by `test` on the local endpoint: "
        '`{"cold_load_s": "30", "host_memory_mb": "800"}`; keys cold_load_s, host_memory_mb, '
        "gpu_memory_mb, shm_mb, disk_mb (an empty value unsets one). Unset keys take mmepack's "
        "defaults (cold_load_s 45, under SageMaker's 60 s InvokeEndpoint limit; the rest "
        "unset). A model over budget fails its test with the measured numbers."
    )


class TritonModelTarget(Target):
    alias = "triton_model"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        TritonModelSourcesField,
        TritonModelDependenciesField,
        TritonModelPythonVersionField,
        TritonModelOutputDirField,
        TritonModelCasesField,
        TritonModelTestTimeoutField,
        TritonModelCapacityBudgetField,
    )
    help = (
        "A deployable Triton model repository (an ensemble and its steps, or one model). "
        "`package` pulls its DVC-tracked weights, conda-packs the Python steps' environment "
        "from requirements.txt and writes a SageMaker multi-model artifact "
        "`dist/<output_dir>/<model>_<version>.tar.gz`, the version read from model_version.txt. "
        "`test` runs its JSON test cases (`cases`) against that artifact."
    )
