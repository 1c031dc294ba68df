"""Per-level figures from the samples: throughput, latency percentiles, errors by kind.

Cold requests (a model loading on its first invoke, or again after an eviction) are counted
apart: their wait is a property of the model's size and the endpoint's cache, not of the load
offered, and one 20 s load inside a level of a hundred requests would otherwise be its p99.

Beside the client's latency stands the server's (the endpoint's ModelLatency, where it reports
it): a p50 that stays put at every level while the server's own time is a fraction of it is
time spent in the client, the connection or a relay, not in the model.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from mmepack.loadtest.driver import LevelRun, Sample


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks.

    The same definition as numpy's default, written out so the report's numbers can be checked
    by hand from the raw CSV. NaN for no values.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class LevelStats:
    """One level of offered load, summarised. Latencies in milliseconds, over warm successes."""

    concurrency: int
    requests: int
    ok: int
    errors: dict[str, int]
    elapsed_s: float
    throughput_per_s: float  # successful invocations per second, cold ones included
    warm: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cold: int
    cold_max_ms: float
    by_target: dict[str, int] = field(default_factory=dict)
    stuck_callers: int = 0
    # The endpoint's own time for the same warm successes (NaN when it does not report it).
    server_p50_ms: float = math.nan
    server_p99_ms: float = math.nan
    hit_max_requests: bool = False  # the level ended at --max-requests, before its time bound

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def error_rate(self) -> float:
        return self.error_count / self.requests if self.requests else 0.0

    @property
    def invocations_per_minute(self) -> float:
        return self.throughput_per_s * 60.0


def summarize(run: LevelRun) -> LevelStats:
    samples = run.samples
    ok = [s for s in samples if s.ok]
    warm_ms = [s.latency_s * 1000 for s in ok if not s.cold]
    server_ms = [
        s.server_latency_s * 1000 for s in ok if not s.cold and s.server_latency_s is not None
    ]
    cold_ms = [s.latency_s * 1000 for s in samples if s.cold]
    return LevelStats(
        concurrency=run.level,
        requests=len(samples),
        ok=len(ok),
        errors=dict(sorted(Counter(s.outcome for s in samples if not s.ok).items())),
        elapsed_s=run.elapsed_s,
        throughput_per_s=len(ok) / run.elapsed_s if run.elapsed_s > 0 else 0.0,
        warm=len(warm_ms),
        p50_ms=percentile(warm_ms, 50),
        p90_ms=percentile(warm_ms, 90),
        p99_ms=percentile(warm_ms, 99),
        max_ms=max(warm_ms) if warm_ms else math.nan,
        cold=len(cold_ms),
        cold_max_ms=max(cold_ms) if cold_ms else math.nan,
        by_target=dict(sorted(Counter(s.target for s in samples).items())),
        stuck_callers=run.stuck_callers,
        server_p50_ms=percentile(server_ms, 50),
        server_p99_ms=percentile(server_ms, 99),
        hit_max_requests=run.hit_max_requests,
    )


@dataclass(frozen=True)
class ColdLoad:
    """A model's first request: the wait a caller sees while the endpoint loads it."""

    target: str
    outcome: str
    latency_ms: float
    load_wait_ms: float | None  # what the endpoint itself reported, when it reports it


def cold_loads(samples: Sequence[Sample]) -> list[ColdLoad]:
    return [
        ColdLoad(
            s.target,
            s.outcome,
            s.latency_s * 1000,
            None if s.load_wait_s is None else s.load_wait_s * 1000,
        )
        for s in samples
    ]
