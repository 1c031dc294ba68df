"""Static checks of a model repository: every problem Triton or the MME would hit, found from
the files alone, each with its file, line and field."""

from mmepack.validate.checks import (
    Problem,
    Severity,
    Validation,
    count_errors,
    discover_model_directories,
    validate_model,
    validate_model_directory,
    validate_tree,
)

__all__ = [
    "Problem",
    "Severity",
    "Validation",
    "count_errors",
    "discover_model_directories",
    "validate_model",
    "validate_model_directory",
    "validate_tree",
]
