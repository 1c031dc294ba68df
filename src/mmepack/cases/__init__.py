"""Model tests without code: JSON case files beside a model, run against its packaged artifact.

A case states an ensemble's inputs and the outputs (or error) it must answer with; shapes and
data types come from the ensemble's config. `load_cases` reads and checks every case before
any server starts; the runner and the recorder build on it.
"""

from mmepack.cases.load import (
    DEFAULT_TOLERANCES,
    Case,
    CaseError,
    ExpectedOutput,
    Tolerance,
    case_paths,
    load_cases,
)
from mmepack.cases.signature import Signature, TensorSpec, read_signature

__all__ = [
    "DEFAULT_TOLERANCES",
    "Case",
    "CaseError",
    "ExpectedOutput",
    "Signature",
    "TensorSpec",
    "Tolerance",
    "case_paths",
    "load_cases",
    "read_signature",
]
