"""The figures of one artifact's load on the local endpoint, read from the host side.

Host memory is PSS (proportional set size, /proc/<pid>/smaps_rollup): a page shared by N
processes counts 1/N in each, so the server and its Python stubs sum without counting shared
libraries twice. The model's cost is the PSS of the server and every process under it after the
load minus the server's PSS before it. The server runs in its own PID and mount namespaces
(`mmepack.endpoint.sandbox`), so its processes are found by walking the host's /proc from the
sandbox's first process; its private /dev/shm is read through /proc/<server>/root.

Shared memory: each Python-backend instance (one stub process) gets its own region, created at
`shm-default-byte-size` and grown by `shm-growth-byte-size` (the SageMaker serve script's
defaults: 16 MB and 1 MB). What the model needs is the regions its stubs hold after the load
and the first answers; with the regions unreadable, instances x the default.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from mmepack.endpoint.server import children_by_scan

# The SageMaker serve script's defaults (SAGEMAKER_TRITON_SHM_DEFAULT_BYTE_SIZE / _GROWTH_).
SHM_DEFAULT_BYTES = 16 * 1024 * 1024
SHM_GROWTH_BYTES = 1024 * 1024
STUB_SUFFIX = "triton_python_backend_stub"
MEMORY_METHOD = "PSS from /proc/<pid>/smaps_rollup (server growth + its stub processes)"


def _children(pid: int) -> list[int]:
    """Host PIDs whose parent is `pid` (from /proc/<pid>/task/*/children when the kernel has
    it, else a scan of /proc)."""
    found: list[int] = []
    task_dir = Path("/proc") / str(pid) / "task"
    try:
        for task in task_dir.iterdir():
            text = (task / "children").read_text()
            found.extend(int(p) for p in text.split())
        return found
    except (OSError, ValueError):
        # A thread ended mid-read: count from a full scan instead.
        return children_by_scan(pid)


def descendants(pid: int, depth: int = 4) -> list[int]:
    """Every process under `pid`, `depth` levels down (bounded: a stub starts no children)."""
    found: list[int] = []
    level = [pid]
    for _ in range(depth):
        level = [child for parent in level for child in _children(parent)]
        found.extend(level)
        if not level:
            break
    return found


def pss_bytes(pid: int) -> int | None:
    """The process's PSS, or None when it is gone or unreadable."""
    try:
        for line in (Path("/proc") / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def is_stub(pid: int) -> bool:
    try:
        argv0 = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return argv0.decode(errors="replace").endswith(STUB_SUFFIX)


def shm_regions(server_pid: int, prefix: str | None) -> dict[str, int] | None:
    """Name -> size of the Python backend's shared-memory regions in the server's /dev/shm
    (through /proc/<pid>/root, which shows its private mount), or None when unreadable."""
    folder = Path("/proc") / str(server_pid) / "root" / "dev" / "shm"
    try:
        entries = list(folder.iterdir())
    except OSError:
        return None
    sizes: dict[str, int] = {}
    for entry in entries:
        if prefix is not None and not entry.name.startswith(prefix):
            continue
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_file():
                sizes[entry.name] = entry.stat().st_size
        except OSError:
            continue
    return sizes


def tree_bytes(folder: Path) -> int:
    """Bytes the files under `folder` take on disk (apparent sizes; links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue
    return total


def gpu_memory_bytes(pids: list[int]) -> int | None:
    """GPU memory the processes hold (nvidia-smi's per-process figure), None without a GPU."""
    out = _nvidia_smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
    if out is None:
        return None
    wanted, total = set(pids), 0
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) in wanted:
            try:
                total += int(float(parts[1]) * 1024 * 1024)
            except ValueError:
                continue
    return total


def machine() -> dict[str, Any]:
    """What the figures were measured on: they mean little without it."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "kernel": platform.release(),
        "gpu": _gpu_name(),
    }


def _nvidia_smi(*query: str) -> str | None:
    """nvidia-smi's output for `query`, or None where there is no GPU or it fails."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = subprocess.run(
            [smi, *query], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _gpu_name() -> str | None:
    out = _nvidia_smi("--query-gpu=name,memory.total", "--format=csv,noheader")
    return out.strip().splitlines()[0] if out and out.strip() else None


class ServerSnapshot:
    """The server's processes and their PSS at one moment."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.taken = time.monotonic()
        self.server_pss = pss_bytes(server_pid) or 0
        self.stubs = [pid for pid in descendants(server_pid) if is_stub(pid)]
        self.stub_pss = {pid: pss_bytes(pid) or 0 for pid in self.stubs}

    @property
    def total(self) -> int:
        return self.server_pss + sum(self.stub_pss.values())


def summarize(samples: list[float]) -> dict[str, Any]:
    """min / median / max and the samples: the spread says how far to trust one number."""
    ordered = sorted(samples)
    middle = len(ordered) // 2
    median = (
        ordered[middle]
        if len(ordered) % 2
        else (ordered[middle - 1] + ordered[middle]) / 2 if ordered else None
    )
    return {
        "samples": [round(s, 4) for s in samples],
        "min": round(ordered[0], 4) if ordered else None,
        "median": round(median, 4) if median is not None else None,
        "max": round(ordered[-1], 4) if ordered else None,
    }


def _shm_settings() -> tuple[int, int]:
    """The region sizes the endpoint's server was started with (the same variables and
    defaults as `mmepack.endpoint.server.sagemaker_arguments`)."""

    def read(name: str, default: int) -> int:
        try:
            return int(os.environ.get(name) or default)
        except ValueError:
            return default

    return (
        read("SAGEMAKER_TRITON_SHM_DEFAULT_BYTE_SIZE", SHM_DEFAULT_BYTES),
        read("SAGEMAKER_TRITON_SHM_GROWTH_BYTE_SIZE", SHM_GROWTH_BYTES),
    )


class LoadMeasurement:
    """Measures one TargetModel's loads on a started `LocalEndpoint` (see the module doc).

    `loads` > 1 unloads and loads it again that many times in all for the spread of the cold
    load; memory, shared memory and disk are read after the first load."""

    def __init__(self, endpoint: Any, target_model: str, artifact: Path, loads: int = 1):
        self.endpoint = endpoint
        self.target_model = target_model
        self.artifact = artifact
        self.loads = max(1, loads)
        self.load_seconds: list[float] = []
        self.first_answer_s: float | None = None
        self._before: ServerSnapshot | None = None
        self._after: ServerSnapshot | None = None
        self._regions_before: dict[str, int] | None = None
        self._regions_after: dict[str, int] | None = None
        self._gpu_before: int | None = None
        self._gpu_after: int | None = None
        self.disk_bytes = 0
        self.measure_seconds = 0.0

    def _timed(self, func: Any) -> Any:
        started = time.monotonic()
        try:
            return func()
        finally:
            self.measure_seconds += time.monotonic() - started

    def load(self, wait: float) -> None:
        """Load (and for `loads` > 1, reload) the model; raises what `endpoint.load` raises."""
        server = self.endpoint.server
        pid = server.server_pid
        prefix = getattr(server, "shm_prefix", None)
        gpu = self.endpoint.device != "CPU"

        def before() -> None:
            self._before = ServerSnapshot(pid)
            self._regions_before = shm_regions(pid, prefix)
            self._gpu_before = gpu_memory_bytes([pid]) if gpu else None

        self._timed(before)
        started = time.monotonic()
        self.endpoint.load(self.target_model, wait=wait)
        self.load_seconds.append(time.monotonic() - started)
        self._load_started = started

        def after() -> None:
            self._after = ServerSnapshot(pid)
            self._regions_after = shm_regions(pid, prefix)
            if gpu:
                self._gpu_after = gpu_memory_bytes([pid, *self._after.stubs])
            self.disk_bytes = tree_bytes(self.endpoint.cache.folder_of(self.target_model))

        self._timed(after)
        for _ in range(self.loads - 1):
            self.endpoint.unload(self.target_model)
            started = time.monotonic()
            self.endpoint.load(self.target_model, wait=wait)
            self.load_seconds.append(time.monotonic() - started)

    def answered(self, invoke_seconds: float) -> None:
        """The first answer after the load: cold load to first answer is load + this invoke."""
        if self.first_answer_s is None and self.load_seconds:
            self.first_answer_s = self.load_seconds[0] + invoke_seconds

    def figures(self) -> dict[str, Any]:
        """The capacity figures of this model (the `capacity` block's content)."""
        default, growth = _shm_settings()
        before, after = self._before, self._after
        stubs = after.stubs if after is not None else []
        server_growth = (
            after.server_pss - before.server_pss if before is not None and after else None
        )
        stub_bytes = sum(after.stub_pss.values()) if after is not None else None
        host = after.total - before.total if before is not None and after is not None else None
        if self._regions_after is not None:
            new = {
                name: size
                for name, size in self._regions_after.items()
                if name not in (self._regions_before or {})
            }
            regions = sorted(new.values())
            shm_source = "measured: regions in the server's /dev/shm after the load"
        else:
            regions = [default] * len(stubs)
            shm_source = "estimated: python instances x the default region"
        gpu_bytes = (
            self._gpu_after - (self._gpu_before or 0) if self._gpu_after is not None else None
        )
        return {
            "cold_load_s": summarize(self.load_seconds),
            "first_answer_s": (
                round(self.first_answer_s, 4) if self.first_answer_s is not None else None
            ),
            "host_memory_bytes": host,
            "host_memory": {
                "method": MEMORY_METHOD,
                "server_growth_bytes": server_growth,
                "stub_bytes": stub_bytes,
                "stub_processes": len(stubs),
                "server_baseline_bytes": before.server_pss if before is not None else None,
            },
            "shm": {
                "python_instances": len(stubs),
                "default_byte_size": default,
                "growth_byte_size": growth,
                "region_bytes": regions,
                "needed_bytes": sum(regions),
                "source": shm_source,
            },
            "disk_bytes": self.disk_bytes,
            "archive_bytes": self.artifact.stat().st_size,
            "gpu_memory_bytes": gpu_bytes,
            "gpu_note": (
                "nvidia-smi per-process memory after the load"
                if gpu_bytes is not None
                else f"no GPU measured: the server ran on {self.endpoint.device}"
            ),
            "measure_overhead_s": round(self.measure_seconds, 4),
        }


def describe(figures: dict[str, Any]) -> str:
    """One line of the figures for a test's summary."""
    mb = 1024 * 1024
    loads = figures["cold_load_s"]
    host = figures["host_memory_bytes"]
    gpu = figures["gpu_memory_bytes"]
    return (
        f"cold load {loads['median']} s (min {loads['min']}, max {loads['max']}, "
        f"{len(loads['samples'])} load(s)), first answer {figures['first_answer_s']} s; host "
        f"memory {'?' if host is None else f'{host / mb:.1f}'} MB PSS; shm "
        f"{figures['shm']['needed_bytes'] / mb:.1f} MB for {figures['shm']['python_instances']} "
        f"python instance(s); disk {figures['disk_bytes'] / mb:.1f} MB; GPU "
        + ("n/a (no GPU)" if gpu is None else f"{gpu / mb:.1f} MB")
    )
