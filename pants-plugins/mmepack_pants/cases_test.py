"""The test rule's file gathering: which files a model's case run carries into its sandbox."""

from __future__ import annotations

from mmepack_pants.cases import budget_args, case_globs, data_globs
from mmepack_pants.target_types import DEFAULT_CASES_GLOB, TritonModelTarget


def test_default_glob_is_under_the_model_directory() -> None:
    assert case_globs("models/doubler", DEFAULT_CASES_GLOB) == (
        "models/doubler/tests/cases/*.json",
    )


def test_data_files_come_from_every_folder_holding_a_case() -> None:
    files = (
        "models/m/tests/cases/a.json",
        "models/m/tests/cases/b.json",
        "models/m/tests/more/c.json",
    )
    assert data_globs(files) == ("models/m/tests/cases/**", "models/m/tests/more/**")


def test_triton_model_has_the_cases_and_timeout_fields() -> None:
    aliases = {field.alias for field in TritonModelTarget.core_fields}
    assert {"cases", "timeout", "capacity_budget"} <= aliases


def test_capacity_budget_becomes_the_library_flags() -> None:
    assert budget_args({"host_memory_mb": "800", "cold_load_s": "30"}) == (
        "--budget=cold_load_s=30",
        "--budget=host_memory_mb=800",
    )
    assert budget_args(None) == ()
