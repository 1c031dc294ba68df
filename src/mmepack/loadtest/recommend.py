"""The threshold to scale on, and the Application Auto Scaling policy that applies it.

SageMaker's target tracking on `SageMakerVariantInvocationsPerInstance` adds instances when the
average invocations per minute per instance rise above the target. The right target is the
highest rate one instance sustains while p99 stays under the latency objective, less a safety
margin for the time scaling takes to react (new instances need minutes, and an MME's models
load again on each). That rate is measured here; the margin is the user's choice.

Local CPU figures only show the method: the number to apply must come from a sweep of the
staging endpoint, on the production instance type, with production payloads.

A sweep whose best level is its highest did not find the knee (the load past which throughput
stops rising or p99 breaks the objective): the instance may sustain more, so the reason says to
raise the concurrency rather than present the figure as the instance's capacity.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mmepack.loadtest.stats import LevelStats

PREDEFINED_METRIC = "SageMakerVariantInvocationsPerInstance"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SERVICE_NAMESPACE = "sagemaker"
LOCAL_CAVEAT = (
    "Measured on a local endpoint: these figures only show the method. Apply a target measured "
    "on the staging endpoint, on the production instance type, with production payloads."
)


@dataclass(frozen=True)
class Recommendation:
    """`chosen` is None when no level met the objective; `reason` says why, either way."""

    p99_target_ms: float
    margin: float
    instances: int
    max_error_rate: float
    chosen: LevelStats | None
    measured_per_instance_per_minute: float | None
    target_value: int | None
    reason: str
    # False when the chosen level is the highest offered: the sustainable rate may be higher.
    knee_reached: bool = True


def recommend(
    levels: Sequence[LevelStats],
    *,
    p99_target_ms: float,
    margin: float,
    instances: int = 1,
    max_error_rate: float = 0.0,
) -> Recommendation:
    """The level with the most throughput whose warm p99 is under the target and whose error
    rate is at most `max_error_rate`; the target value is its per-instance invocations per
    minute times (1 - margin), rounded down."""
    if not 0 <= margin < 1:
        raise ValueError(f"margin {margin} outside [0, 1)")
    if instances < 1:
        raise ValueError(f"instances {instances} below 1")
    passing = [
        level
        for level in levels
        if level.warm > 0
        and not math.isnan(level.p99_ms)
        and level.p99_ms <= p99_target_ms
        and level.error_rate <= max_error_rate
    ]
    if not passing:
        failing = ", ".join(
            f"concurrency {lv.concurrency}: p99 {lv.p99_ms:.0f} ms, {lv.error_count} errors"
            for lv in levels
        )
        return Recommendation(
            p99_target_ms,
            margin,
            instances,
            max_error_rate,
            None,
            None,
            None,
            f"no level kept p99 under {p99_target_ms:g} ms with at most "
            f"{max_error_rate:.1%} errors ({failing or 'no levels ran'}); lower the load, raise "
            "the target or use a larger instance",
        )
    best = max(passing, key=lambda lv: (lv.throughput_per_s, -lv.concurrency))
    per_instance = best.invocations_per_minute / instances
    target = max(1, math.floor(per_instance * (1 - margin)))
    highest = max(lv.concurrency for lv in levels)
    knee = best.concurrency < highest
    note = ""
    if not knee:
        capped = (
            f"; that level ended at --max-requests ({best.requests} requests in "
            f"{best.elapsed_s:.1f} s): raise it too, for a steadier figure"
            if best.hit_max_requests
            else ""
        )
        note = (
            f". Concurrency {highest} was the highest level offered, so the knee was not reached "
            "(throughput may still rise within the p99 target): this target may be too low; raise "
            f"the concurrency, e.g. --concurrency {highest},{highest * 2},{highest * 4}{capped}"
        )
    return Recommendation(
        p99_target_ms,
        margin,
        instances,
        max_error_rate,
        best,
        per_instance,
        target,
        f"concurrency {best.concurrency} sustained {per_instance:.0f} invocations per minute "
        f"per instance with p99 {best.p99_ms:.0f} ms (target {p99_target_ms:g} ms); less a "
        f"{margin:.0%} safety margin: {target}{note}",
        knee,
    )


def resource_id(endpoint_name: str, variant: str) -> str:
    return f"endpoint/{endpoint_name}/variant/{variant}"


def scaling_policy(
    target_value: int, *, scale_in_cooldown: int = 300, scale_out_cooldown: int = 60
) -> dict[str, Any]:
    """`TargetTrackingScalingPolicyConfiguration` for `put_scaling_policy`."""
    return {
        "TargetValue": float(target_value),
        "PredefinedMetricSpecification": {"PredefinedMetricType": PREDEFINED_METRIC},
        "ScaleInCooldown": scale_in_cooldown,
        "ScaleOutCooldown": scale_out_cooldown,
    }


def apply_calls(
    recommendation: Recommendation,
    *,
    endpoint_name: str,
    variant: str,
    min_capacity: int,
    max_capacity: int,
) -> str:
    """Python that applies the policy with boto3: printed for a person to run, never run here."""
    if recommendation.target_value is None:
        return "# no target value: no level met the objective (see the reason above)\n"
    rid = resource_id(endpoint_name, variant)
    policy = json.dumps(scaling_policy(recommendation.target_value), indent=4)
    policy = policy.replace("\n", "\n    ")
    return (
        "import boto3\n\n"
        'autoscaling = boto3.client("application-autoscaling")\n'
        "autoscaling.register_scalable_target(\n"
        f'    ServiceNamespace="{SERVICE_NAMESPACE}",\n'
        f'    ResourceId="{rid}",\n'
        f'    ScalableDimension="{SCALABLE_DIMENSION}",\n'
        f"    MinCapacity={min_capacity},\n"
        f"    MaxCapacity={max_capacity},\n"
        ")\n"
        "autoscaling.put_scaling_policy(\n"
        f'    PolicyName="{endpoint_name}-{variant}-invocations-per-instance",\n'
        f'    ServiceNamespace="{SERVICE_NAMESPACE}",\n'
        f'    ResourceId="{rid}",\n'
        f'    ScalableDimension="{SCALABLE_DIMENSION}",\n'
        '    PolicyType="TargetTrackingScaling",\n'
        f"    TargetTrackingScalingPolicyConfiguration={policy},\n"
        ")\n"
    )
