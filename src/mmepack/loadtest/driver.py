"""The load driver: a bounded pool of caller threads per level, one sample per request.

Why threads and not Locust: Locust runs its users on gevent, which monkey-patches sockets and
threading when it starts. boto3/botocore, the local endpoint's server threads and pytest all
live in the same process here, and patching them underneath is a known source of hangs and
"cannot switch to a different thread" errors. Locust's strengths (many thousands of users,
distributed workers, a web UI) are not what this test needs: a handful of concurrent callers
per level, each level bounded in time and count, with every sample kept (Locust keeps
bucketed response times, so its percentiles are approximate). A closed-loop pool of N threads
is exactly "concurrency N", the same offered load SageMaker's own load testing guidance uses.

Each request goes through boto3's `sagemaker-runtime` `invoke_endpoint`, so the local endpoint
(on loopback, by `endpoint_url`) and a real endpoint are driven by the same code.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mmepack.loadtest.payload import Request
from mmepack.loadtest.plan import LoadPlan, MixPicker

COLD_LEVEL = 0  # the level number of the first request per model, sent before the sweep
# The local endpoint reports CloudWatch's per-invoke figures as response headers; botocore
# lower-cases header names.
_CACHE_HIT_HEADER = "x-mmepack-modelcachehit"
_LOAD_WAIT_HEADER = "x-mmepack-modelloadingwaittime"
# The endpoint's own time for the invoke (CloudWatch's ModelLatency: from the endpoint's front to
# the model server and back, without the caller's client and connection): the report puts it
# beside the client's latency, so time spent outside the server shows as the difference.
_MODEL_LATENCY_HEADER = "x-mmepack-modellatency"
# What SageMaker answers while a model is still loading past its wait bound: the first request
# is sent again (a bounded number of times), since the load goes on.
NOT_READY = "ModelNotReadyException"
FIRST_REQUEST_TRIES = 10


@dataclass(frozen=True)
class Outcome:
    """What one invoke returned: "ok" or an error kind, and what the endpoint said of loading."""

    kind: str
    cache_hit: bool | None = None  # None: the endpoint does not say (SageMaker does not)
    load_wait_s: float | None = None
    detail: str = ""  # an error's own message, whole (the container's text for a ModelError)
    server_latency_s: float | None = None  # None: the endpoint does not say (SageMaker does not)


@dataclass(frozen=True)
class Sample:
    """One request: when it started (seconds since the run began), how long it took, result."""

    level: int
    target: str
    offset_s: float
    latency_s: float
    outcome: str
    cold: bool
    load_wait_s: float | None
    detail: str = ""
    server_latency_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass(frozen=True)
class LevelRun:
    level: int
    samples: tuple[Sample, ...]
    elapsed_s: float
    stuck_callers: int = 0  # threads still waiting on a reply after the level's bound
    hit_max_requests: bool = False  # ended by the request bound, not by the time bound


Invoke = Callable[[str, Request], Outcome]


def runtime_client(
    *,
    endpoint_url: str | None,
    region: str | None,
    timeout: float,
    local: bool,
    max_connections: int,
) -> Any:
    """boto3's `sagemaker-runtime` client: no retries (each error counts), bounded timeouts.

    For the local endpoint fixed credentials are given (it checks no signatures), so no real
    ones are looked up; for a real endpoint the standard AWS configuration applies.
    """
    import boto3
    import botocore.config

    config = botocore.config.Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=min(timeout, 10.0),
        read_timeout=timeout,
        max_pool_connections=max_connections,
    )
    if local:
        return boto3.client(
            "sagemaker-runtime",
            endpoint_url=endpoint_url,
            region_name=region or "us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=config,
        )
    return boto3.client(
        "sagemaker-runtime", endpoint_url=endpoint_url, region_name=region, config=config
    )


class RuntimeInvoker:
    """`invoke_endpoint` with a TargetModel, exactly as a production caller writes it."""

    def __init__(self, client: Any, endpoint_name: str):
        self.client = client
        self.endpoint_name = endpoint_name

    def __call__(self, target: str, request: Request) -> Outcome:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        try:
            reply = self.client.invoke_endpoint(
                EndpointName=self.endpoint_name,
                TargetModel=target,
                ContentType=request.content_type,
                Body=request.body,
            )
            reply["Body"].read()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            detail = exc.response.get("OriginalMessage") or error.get("Message") or ""
            return Outcome(str(error.get("Code") or "ClientError"), detail=str(detail))
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            return Outcome("Timeout", detail=str(exc))
        except (EndpointConnectionError, ConnectionClosedError) as exc:
            return Outcome("ConnectionError", detail=str(exc))
        except BotoCoreError as exc:
            return Outcome(type(exc).__name__, detail=str(exc))
        headers = reply.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        hit = headers.get(_CACHE_HIT_HEADER)
        wait = headers.get(_LOAD_WAIT_HEADER)
        latency = headers.get(_MODEL_LATENCY_HEADER)
        return Outcome(
            "ok",
            cache_hit=None if hit is None else hit == "1",
            load_wait_s=None if wait is None else int(wait) / 1e6,
            server_latency_s=None if latency is None else int(latency) / 1e6,
        )


def _short(detail: object, limit: int = 300) -> str:
    """A sweep's error text for its sample row (one per request: kept short); the first
    request's is kept whole, since it is what the user reads when a model never loaded."""
    text = " ".join(str(detail).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class FirstRequestFailed(Exception):
    """The first request to a model failed (after waiting out a load that was still going):
    every level would fail the same way, so none is run. `samples` are the first requests."""

    def __init__(self, samples: list[Sample]):
        super().__init__(", ".join(f"{s.target}: {s.outcome}" for s in samples if not s.ok))
        self.samples = samples


def stderr_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Driver:
    """Runs a plan against one endpoint through `invoke`; every loop ends by count and time."""

    def __init__(
        self,
        invoke: Invoke,
        requests: Mapping[str, Sequence[Request]],
        plan: LoadPlan,
        *,
        progress: Callable[[str], None] | None = stderr_progress,
        progress_every: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        missing = [s.target for s in plan.mix if not requests.get(s.target)]
        if missing:
            raise ValueError(f"no request body for {missing}")
        self.invoke = invoke
        self.requests = {target: tuple(bodies) for target, bodies in requests.items()}
        self._turn = {target: 0 for target in self.requests}
        self._turn_lock = threading.Lock()
        self.plan = plan
        self.progress = progress
        self.progress_every = progress_every
        self.clock = clock
        self.t0 = clock()

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    def _next_request(self, target: str) -> Request:
        """A model's requests (one per test case) take turns."""
        with self._turn_lock:
            bodies = self.requests[target]
            request = bodies[self._turn[target] % len(bodies)]
            self._turn[target] += 1
        return request

    def _one(self, level: int, target: str, first: bool) -> Sample:
        request = self._next_request(target)
        started = self.clock()
        outcome = self.invoke(target, request)
        latency = self.clock() - started
        detail = outcome.detail if first else _short(outcome.detail)
        # A successful first request per model paid for its load unless the endpoint says it
        # was a hit; later ones are cold only when the endpoint says the model loaded again.
        # A failed request is an error, whatever it waited for.
        if outcome.kind != "ok":
            cold = False
        elif first:
            cold = outcome.cache_hit is not True
        else:
            cold = outcome.cache_hit is False
        return Sample(
            level,
            target,
            started - self.t0,
            latency,
            outcome.kind,
            cold,
            outcome.load_wait_s,
            detail,
            outcome.server_latency_s,
        )

    def first_requests(self) -> list[Sample]:
        """One request per model, one at a time, before the sweep: the cold-load waits. A model
        still loading past the endpoint's wait bound is asked again, at most
        FIRST_REQUEST_TRIES times (each try bounded by the request timeout)."""
        samples = []
        for share in self.plan.mix:
            for _ in range(FIRST_REQUEST_TRIES):
                sample = self._one(COLD_LEVEL, share.target, first=True)
                if sample.outcome != NOT_READY:
                    break
                self._say(f"mmepack: loadtest: {share.target} is still loading; asking again")
            samples.append(sample)
            self._say(
                f"mmepack: loadtest: first request to {share.target}: {sample.outcome} in "
                f"{sample.latency_s:.2f} s"
                + (" (model load)" if sample.cold else "")
                + (f": {_short(sample.detail)}" if sample.detail else "")
            )
        return samples

    def run_level(self, level: int) -> LevelRun:
        """`level` callers in a closed loop until the level's time or request count is spent."""
        picker = MixPicker(self.plan.mix)
        lock = threading.Lock()
        samples: list[Sample] = []
        issued = 0
        start = self.clock()
        deadline = start + self.plan.seconds_per_level

        def caller() -> None:
            nonlocal issued
            while True:
                with lock:
                    if issued >= self.plan.max_requests or self.clock() >= deadline:
                        return
                    issued += 1
                sample = self._one(level, picker.next(), first=False)
                with lock:
                    samples.append(sample)

        threads = [
            threading.Thread(target=caller, name=f"mmepack-loadtest-{level}-{i}", daemon=True)
            for i in range(level)
        ]
        for thread in threads:
            thread.start()
        # A caller can overrun the deadline by at most one request, itself bounded by the
        # client's timeouts; past that, it is left behind (daemon) and counted as stuck.
        hard_stop = deadline + self.plan.request_timeout + 15.0
        next_report = start + self.progress_every
        while any(t.is_alive() for t in threads) and self.clock() < hard_stop:
            time.sleep(0.1)
            now = self.clock()
            if now >= next_report:
                next_report = now + self.progress_every
                with lock:
                    done, errors = len(samples), sum(1 for s in samples if not s.ok)
                self._say(
                    f"mmepack: loadtest: concurrency {level}: {done} requests, {errors} errors, "
                    f"{now - start:.0f}/{self.plan.seconds_per_level:.0f} s"
                )
        stuck = sum(1 for t in threads if t.is_alive())
        with lock:
            kept = tuple(samples)
            capped = issued >= self.plan.max_requests
        ends = [s.offset_s + s.latency_s for s in kept]
        elapsed = (max(ends) + self.t0 - start) if ends else self.clock() - start
        return LevelRun(level, kept, elapsed, stuck, capped)

    def sweep(self) -> tuple[list[Sample], list[LevelRun]]:
        """The first request per model, then every level in increasing order of load; raises
        FirstRequestFailed, running no level, when a model's first request failed."""
        cold = self.first_requests()
        if not all(sample.ok for sample in cold):
            raise FirstRequestFailed(cold)
        runs = []
        for level in self.plan.levels:
            run = self.run_level(level)
            runs.append(run)
            ok = sum(1 for s in run.samples if s.ok)
            self._say(
                f"mmepack: loadtest: concurrency {level} done: {len(run.samples)} requests "
                f"({ok} ok) in {run.elapsed_s:.1f} s"
                + (f"; {run.stuck_callers} callers still waiting" if run.stuck_callers else "")
            )
        return cold, runs
