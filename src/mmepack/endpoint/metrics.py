"""What CloudWatch would report for a multi-model endpoint, per invoke and in a summary.

Owns the figures and their names. The names are CloudWatch's own (AWS/SageMaker namespace,
multi-model endpoint metrics), so a number seen locally can be compared with a dashboard:
ModelCacheHit (1 when the model was already loaded), ModelLoadingWaitTime (how long an invoke
waited for its model to load), LoadedModelCount, ModelLoadingTime, ModelDownloadingTime (here:
unpacking), ModelUnloadingTime and ModelLatency. CloudWatch publishes times in microseconds;
they are kept in microseconds here too.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from typing import Any


def micros(seconds: float) -> int:
    return int(round(seconds * 1_000_000))


@dataclass(frozen=True)
class InvokeMetrics:
    """One invoke, as the endpoint's response headers and log line report it."""

    target_model: str
    status: int
    ModelCacheHit: int
    ModelLoadingWaitTime: int
    ModelLatency: int
    LoadedModelCount: int

    def headers(self) -> dict[str, str]:
        """Response headers (boto3 shows them under ResponseMetadata.HTTPHeaders)."""
        return {
            "X-Mmepack-ModelCacheHit": str(self.ModelCacheHit),
            "X-Mmepack-ModelLoadingWaitTime": str(self.ModelLoadingWaitTime),
            "X-Mmepack-ModelLatency": str(self.ModelLatency),
            "X-Mmepack-LoadedModelCount": str(self.LoadedModelCount),
        }

    def log_line(self) -> str:
        return "mmepack: invoke " + json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class ModelEvent:
    """A load or an unload of one TargetModel."""

    target_model: str
    kind: str  # "load", "load-failed", "unload" or "unload-failed"
    seconds: float
    unpack_seconds: float = 0.0
    reason: str = ""


@dataclass
class EndpointMetrics:
    """Everything the endpoint observed; thread-safe, read by tests and the CLI's summary."""

    invokes: list[InvokeMetrics] = field(default_factory=list)
    events: list[ModelEvent] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_invoke(self, metrics: InvokeMetrics) -> None:
        with self._lock:
            self.invokes.append(metrics)

    def record_event(self, event: ModelEvent) -> None:
        with self._lock:
            self.events.append(event)

    def load_failures(self) -> dict[str, str]:
        """TargetModel -> the whole text of its latest failed load (what the load test reports
        when a model never loaded)."""
        with self._lock:
            events = list(self.events)
        return {e.target_model: e.reason for e in events if e.kind == "load-failed"}

    def summary(self, loaded_model_count: int) -> dict[str, Any]:
        """CloudWatch-style statistics over the endpoint's life."""
        with self._lock:
            invokes, events = list(self.invokes), list(self.events)
        waits = [i.ModelLoadingWaitTime for i in invokes if not i.ModelCacheHit]
        loads = [e for e in events if e.kind == "load"]
        unloads = [e for e in events if e.kind == "unload"]
        return {
            "Invocations": len(invokes),
            "Invocation4XXErrors": sum(1 for i in invokes if 400 <= i.status < 500),
            "Invocation5XXErrors": sum(1 for i in invokes if i.status >= 500),
            "ModelCacheHit": {
                "Sum": sum(i.ModelCacheHit for i in invokes),
                "Average": (
                    round(sum(i.ModelCacheHit for i in invokes) / len(invokes), 3)
                    if invokes
                    else None
                ),
            },
            "ModelLoadingWaitTime": {
                "SampleCount": len(waits),
                "Average": round(sum(waits) / len(waits)) if waits else None,
                "Maximum": max(waits) if waits else None,
            },
            "ModelLoadingTime": {
                "SampleCount": len(loads),
                "Average": (micros(sum(e.seconds for e in loads) / len(loads)) if loads else None),
            },
            "ModelDownloadingTime": {
                "Average": (
                    micros(sum(e.unpack_seconds for e in loads) / len(loads)) if loads else None
                ),
            },
            "ModelUnloadingTime": {
                "SampleCount": len(unloads),
                "Average": (
                    micros(sum(e.seconds for e in unloads) / len(unloads)) if unloads else None
                ),
            },
            "LoadFailures": sum(1 for e in events if e.kind == "load-failed"),
            "LoadedModelCount": loaded_model_count,
        }
