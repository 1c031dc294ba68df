"""Capacity budgets: the repo-wide defaults (owned here) and the check a model test fails on.

A model's BUILD can set its own (`triton_model(capacity_budget={...})`, passed to
`mmepack test-cases --budget KEY=VALUE`); what it leaves out takes the defaults below.
"""

from __future__ import annotations

from typing import Any

from mmepack.errors import MmepackError

INVOKE_LIMIT_S = 60.0
# Cold load to first answer, in seconds: SageMaker fails an InvokeEndpoint that takes longer
# than 60 s and a cold model's first request must load it inside that time, so this leaves a
# 15 s margin for a slower instance and the download SageMaker does before the load.
DEFAULT_COLD_LOAD_S = 45.0

MB = 1024 * 1024
# key -> (what it bounds, unit, default); memory is unset by default: a model may be as large as
# its instance type allows, and a team sets a limit when it has chosen one.
BUDGET_KEYS: dict[str, tuple[str, str, float | None]] = {
    "cold_load_s": ("cold load to first answer", "s", DEFAULT_COLD_LOAD_S),
    "host_memory_mb": ("host memory (PSS)", "MB", None),
    "gpu_memory_mb": ("GPU memory", "MB", None),
    "shm_mb": ("shared memory of its Python instances", "MB", None),
    "disk_mb": ("unpacked size on disk", "MB", None),
}

_ADVICE = {
    "cold_load_s": (
        "make the load faster (a smaller python_env.tar.gz: fewer requirements; lighter "
        "weights; fewer instances in instance_group) or raise cold_load_s, which must stay "
        f"under the {INVOKE_LIMIT_S:.0f} s InvokeEndpoint limit"
    ),
    "host_memory_mb": (
        "lower instance_group counts (each Python instance is a stub process), load fewer or "
        "smaller weights, or raise host_memory_mb"
    ),
    "gpu_memory_mb": "use smaller weights or fewer GPU instances, or raise gpu_memory_mb",
    "shm_mb": (
        "lower the Python instance count or its tensor sizes, or raise shm_mb (and the "
        "endpoint's SAGEMAKER_TRITON_SHM_* settings)"
    ),
    "disk_mb": "trim the environment or the weights, or raise disk_mb",
}


def parse_budgets(items: list[str] | None, where: str = "--budget") -> dict[str, float | None]:
    """`["cold_load_s=30", "host_memory_mb=800"]` over the defaults; `key=` unsets one."""
    budgets = {key: default for key, (_what, _unit, default) in BUDGET_KEYS.items()}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if key not in BUDGET_KEYS or not sep:
            raise MmepackError(
                f"{where}: expected KEY=NUMBER with KEY one of {', '.join(BUDGET_KEYS)}, got "
                f'{item!r}; e.g. capacity_budget={{"cold_load_s": "30"}} in the model\'s BUILD'
            )
        if not text.strip():
            budgets[key] = None
            continue
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise MmepackError(
                f"{where}: {key} must be a number above 0 (or empty to unset it), got {text!r}"
            )
        budgets[key] = value
    return budgets


def _measured(figures: dict[str, Any], key: str) -> float | None:
    if key == "cold_load_s":
        loads = figures.get("cold_load_s", {}).get("max")
        first = figures.get("first_answer_s")
        values = [v for v in (loads, first) if v is not None]
        return max(values) if values else None
    field = {
        "host_memory_mb": figures.get("host_memory_bytes"),
        "gpu_memory_mb": figures.get("gpu_memory_bytes"),
        "shm_mb": figures.get("shm", {}).get("needed_bytes"),
        "disk_mb": figures.get("disk_bytes"),
    }[key]
    return None if field is None else field / MB


def check_budgets(figures: dict[str, Any], budgets: dict[str, float | None]) -> list[str]:
    """One message per budget the figures exceed: the measured number, the budget, the fix."""
    failures = []
    for key, limit in budgets.items():
        if limit is None:
            continue
        value = _measured(figures, key)
        if value is None or value <= limit:
            continue
        what, unit, _default = BUDGET_KEYS[key]
        detail = ""
        if key == "cold_load_s":
            loads = figures["cold_load_s"]
            detail = (
                f" (load to ready {loads['min']}-{loads['max']} s over "
                f"{len(loads['samples'])} load(s), first answer at "
                f"{figures.get('first_answer_s')} s)"
            )
        elif key == "host_memory_mb":
            host = figures["host_memory"]
            detail = (
                f" ({host['method']}: server growth {_mb(host['server_growth_bytes'])} MB + "
                f"{host['stub_processes']} stub(s) {_mb(host['stub_bytes'])} MB)"
            )
        failures.append(
            f"{what} {value:.3f} {unit}{detail} is over its budget of {limit:g} {unit} "
            f"({key}); {_ADVICE[key]}"
        )
    return failures


def _mb(value: int | None) -> str:
    return "?" if value is None else f"{value / MB:.1f}"
