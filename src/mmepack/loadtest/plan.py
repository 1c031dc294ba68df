"""What a sweep sends: the levels of offered load, their bounds, and the traffic mix.

Owns the limits every loop obeys. Each level stops at whichever comes first, its time or its
request count, and both are capped here, so no option combination can start an unbounded run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from mmepack.errors import MmepackError

# Hard caps: a load test from a laptop or a CI runner must stay small and stop by itself.
MAX_CONCURRENCY = 64
MAX_LEVELS = 16
MAX_SECONDS_PER_LEVEL = 600.0
MAX_REQUESTS_PER_LEVEL = 100_000


@dataclass(frozen=True)
class Share:
    """One TargetModel and its relative share of the traffic."""

    target: str
    weight: float


@dataclass(frozen=True)
class LoadPlan:
    """A sweep: each concurrency level runs until `seconds_per_level` or `max_requests` ends it."""

    levels: tuple[int, ...]
    seconds_per_level: float
    max_requests: int
    mix: tuple[Share, ...]
    request_timeout: float = 60.0

    def __post_init__(self) -> None:
        if not self.levels or len(self.levels) > MAX_LEVELS:
            raise MmepackError(
                f"--concurrency: expected 1 to {MAX_LEVELS} levels, got {len(self.levels)}"
            )
        for level in self.levels:
            if not 1 <= level <= MAX_CONCURRENCY:
                raise MmepackError(
                    f"--concurrency: level {level} is outside 1..{MAX_CONCURRENCY}; a load "
                    "test from one machine stays small (use more instances of the test instead)"
                )
        if not 0 < self.seconds_per_level <= MAX_SECONDS_PER_LEVEL:
            raise MmepackError(
                f"--seconds: expected more than 0 and at most {MAX_SECONDS_PER_LEVEL:.0f}, got "
                f"{self.seconds_per_level}"
            )
        if not 1 <= self.max_requests <= MAX_REQUESTS_PER_LEVEL:
            raise MmepackError(
                f"--max-requests: expected 1 to {MAX_REQUESTS_PER_LEVEL}, got {self.max_requests}"
            )
        if not self.mix:
            raise MmepackError("no TargetModel to load: give artifacts, --target-model or --mix")
        if self.request_timeout <= 0:
            raise MmepackError(
                f"--request-timeout: expected seconds > 0, got {self.request_timeout}"
            )


def parse_levels(text: str) -> tuple[int, ...]:
    """`1,2,4,8` -> (1, 2, 4, 8), sorted and without repeats."""
    try:
        levels = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise MmepackError(
            f"--concurrency: expected comma-separated whole numbers such as 1,2,4,8, got {text!r}"
        ) from None
    return tuple(levels)


def parse_mix(items: list[str]) -> tuple[Share, ...]:
    """`["a_1.tar.gz=3", "b_1.tar.gz=1"]` -> shares 3:1; a bare name has weight 1."""
    shares: dict[str, float] = {}
    for item in items:
        target, _, weight_text = item.partition("=")
        target = target.strip()
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            weight = -1.0
        if not target or not weight > 0:
            raise MmepackError(
                f"--mix: expected TARGET_MODEL=SHARE with a share above 0 (e.g. "
                f"screen_detector_1.tar.gz=3), got {item!r}"
            )
        if target in shares:
            raise MmepackError(f"--mix: {target!r} is given twice")
        shares[target] = weight
    return tuple(Share(t, w) for t, w in shares.items())


class MixPicker:
    """Picks the next request's TargetModel so that counts follow the shares exactly.

    Smooth weighted round robin rather than random draws: a short, bounded level still sends
    each model its share (3:1 gives 3 and 1 of every 4), so a test can check the counts.
    """

    def __init__(self, mix: tuple[Share, ...]):
        self._mix = mix
        self._total = sum(s.weight for s in mix)
        self._current = [0.0] * len(mix)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            for i, share in enumerate(self._mix):
                self._current[i] += share.weight
            best = max(range(len(self._mix)), key=lambda i: self._current[i])
            self._current[best] -= self._total
            return self._mix[best].target
