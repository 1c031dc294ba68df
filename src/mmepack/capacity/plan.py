"""How many models fit an instance resident, which go first, and the shm settings they need.

Inputs are capacity records (`<artifact>.capacity.json`) or manifests with a `capacity` block.
A model's cost: host memory (PSS growth of its load), GPU memory (when measured on a GPU), disk
(its archive plus its unpacked copy: SageMaker downloads the tar, then unpacks it) and the
shared memory of its Python instances. The instance gives `USABLE_FRACTION` of its memory and GPU
memory to models, minus the server's own baseline once (the OS and SageMaker's agents take the
rest). SageMaker evicts the least recently used model under pressure; under a steady traffic mix
the model with the smallest share is the least recently used most often, so models are kept in
order of share (largest first) and evicted in the reverse order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmepack.capacity.instances import InstanceType
from mmepack.capacity.measure import SHM_DEFAULT_BYTES, SHM_GROWTH_BYTES

USABLE_FRACTION = 0.9
MB = 1024 * 1024


@dataclass(frozen=True)
class ModelCost:
    target: str
    host_bytes: int
    gpu_bytes: int | None
    disk_bytes: int
    shm_bytes: int
    largest_region: int
    baseline_bytes: int

    @classmethod
    def of(cls, record: dict[str, Any]) -> ModelCost:
        shm = record.get("shm") or {}
        regions = shm.get("region_bytes") or []
        return cls(
            target=str(record["artifact"]),
            host_bytes=int(record.get("host_memory_bytes") or 0),
            gpu_bytes=record.get("gpu_memory_bytes"),
            disk_bytes=int(record.get("disk_bytes") or 0) + int(record.get("archive_bytes") or 0),
            shm_bytes=int(shm.get("needed_bytes") or 0),
            largest_region=max(regions) if regions else 0,
            baseline_bytes=int((record.get("host_memory") or {}).get("server_baseline_bytes") or 0),
        )


@dataclass
class Plan:
    instance: InstanceType
    order: list[str]  # by share, largest first
    resident: list[str]
    fits: dict[str, int]  # resource -> how many (in share order) fit on it alone
    evicted_first: list[str]  # eviction order under pressure: smallest share first
    shm_default: int
    shm_growth: int
    shm_total: int
    usable: dict[str, int | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _prefix_fit(costs: list[int], capacity: int | None) -> int:
    if capacity is None:
        return len(costs)
    total, count = 0, 0
    for cost in costs:
        if total + cost > capacity:
            break
        total, count = total + cost, count + 1
    return count


def plan(
    records: list[dict[str, Any]], instance: InstanceType, mix: dict[str, float] | None = None
) -> Plan:
    costs = [ModelCost.of(r) for r in records]
    weights = {c.target: (mix or {}).get(c.target, 1.0 if not mix else 0.0) for c in costs}
    ordered = sorted(costs, key=lambda c: (-weights[c.target], c.target))
    baseline = max((c.baseline_bytes for c in costs), default=0)
    host_cap = int(instance.memory_bytes * USABLE_FRACTION) - baseline
    gpu_cap = (
        int(instance.gpu_memory_bytes * USABLE_FRACTION) if instance.gpu_memory_bytes else None
    )
    notes = []
    if gpu_cap is not None and any(c.gpu_bytes is None for c in costs):
        notes.append(
            "GPU memory was not measured for "
            + ", ".join(c.target for c in costs if c.gpu_bytes is None)
            + " (tested without a GPU): GPU counts treat them as 0"
        )
    fits = {
        "host_memory": _prefix_fit([c.host_bytes for c in ordered], host_cap),
        "gpu_memory": (
            _prefix_fit([c.gpu_bytes or 0 for c in ordered], gpu_cap) if gpu_cap is not None else 0
        ),
        "disk": _prefix_fit([c.disk_bytes for c in ordered], instance.disk_bytes),
    }
    if instance.disk_bytes is None:
        notes.append(f"{instance.name} has no disk figure (EBS-only): disk not counted")
    resident: list[str] = []
    used = {"host": 0, "gpu": 0, "disk": 0}
    for cost in ordered:
        host = used["host"] + cost.host_bytes
        gpu = used["gpu"] + (cost.gpu_bytes or 0)
        disk = used["disk"] + cost.disk_bytes
        if host > host_cap or (gpu_cap is not None and gpu > gpu_cap):
            break
        if instance.disk_bytes is not None and disk > instance.disk_bytes:
            break
        used = {"host": host, "gpu": gpu, "disk": disk}
        resident.append(cost.target)
    largest = max((c.largest_region for c in costs), default=0)
    default = max(SHM_DEFAULT_BYTES, -(-largest // MB) * MB)
    by_target = {c.target: c for c in costs}
    return Plan(
        instance=instance,
        order=[c.target for c in ordered],
        resident=resident,
        fits=fits,
        evicted_first=[c.target for c in reversed(ordered)],
        shm_default=default,
        shm_growth=SHM_GROWTH_BYTES,
        shm_total=sum(by_target[t].shm_bytes for t in resident),
        usable={"host_memory": host_cap, "gpu_memory": gpu_cap, "disk": instance.disk_bytes},
        notes=notes,
    )


def format_plan(p: Plan, mix: dict[str, float] | None) -> str:
    def mb(value: int | None) -> str:
        return "n/a" if value is None else f"{value / MB:.0f} MB"

    lines = [
        f"mmepack: {len(p.order)} model(s) on {p.instance.name} (usable: host "
        f"{mb(p.usable['host_memory'])}, GPU {mb(p.usable['gpu_memory'])}, disk "
        f"{mb(p.usable['disk'])})",
        f"  resident at once: {len(p.resident)} of {len(p.order)}"
        + (f" ({', '.join(p.resident)})" if p.resident else ""),
        f"  fit by host memory: {p.fits['host_memory']}, by GPU memory: "
        + (str(p.fits["gpu_memory"]) if p.instance.gpu_memory_bytes else "n/a (no GPU)")
        + f", by disk: {p.fits['disk']}",
        "  evicted first under "
        + ("this traffic mix" if mix else "equal traffic")
        + ": "
        + ", ".join(p.evicted_first),
        f"  endpoint shared memory: SAGEMAKER_TRITON_SHM_DEFAULT_BYTE_SIZE={p.shm_default} "
        f"SAGEMAKER_TRITON_SHM_GROWTH_BYTE_SIZE={p.shm_growth} ({mb(p.shm_total)} for the "
        "resident models' Python instances)",
    ]
    lines += [f"  note: {n}" for n in p.notes]
    return "\n".join(lines)
