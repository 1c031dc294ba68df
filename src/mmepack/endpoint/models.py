"""Which TargetModels the endpoint holds: load on first invoke, least-recently-used unload.

Owns the MME control plane's side of the conversation with Triton: the load request
(`POST /models` with `{"model_name": <hash>, "url": <folder>}` and the TargetModel header),
checked here before it is sent because a malformed one aborts the 2.51 server; the unload
(`DELETE /models/<hash>` with the header; without it 2.51 blocks and keeps the model); the
capacity (a number of models and/or resident megabytes of the server and its stubs), enforced
by unloading the least recently used model that no invoke is using; and what a caller sees
while a model loads (it waits up to a bound, then gets SageMaker's "not ready" answer while the
load carries on).
"""

from __future__ import annotations

import json
import re
import tarfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmepack.endpoint.artifacts import (
    ArtifactSource,
    ArtifactUnreadable,
    TargetModelNotFound,
    model_hash,
    remove_unpacked,
    unpack,
)
from mmepack.endpoint.metrics import EndpointMetrics, ModelEvent
from mmepack.endpoint.server import TARGET_MODEL_HEADER, MmeServer
from mmepack.errors import MmepackError
from mmepack.triton.local_backends import refuse_unavailable_backends

_HASH_RE = re.compile(r"^[0-9a-f]{1,64}$")
_LOAD_KEYS = {"model_name", "url"}


class LoadFailed(Exception):
    """A load the endpoint or Triton refused: SageMaker's status and the server's own text."""

    def __init__(self, target_model: str, status: int, message: str):
        super().__init__(f"{target_model}: HTTP {status}: {message}")
        self.target_model = target_model
        self.status = status
        self.message = message


class NotReady(Exception):
    """The model is still loading after the caller's wait bound; the load goes on."""


def check_load_request(body: Any) -> dict[str, str]:
    """The load request, or ValueError saying what is wrong with it.

    Triton 2.51 aborts (std::out_of_range) on a malformed body, which would take down every
    model the endpoint holds, so nothing reaches it that does not pass this check.
    """
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise ValueError(f"load request is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError(f"load request must be a JSON object, got {type(body).__name__}")
    if set(body) != _LOAD_KEYS:
        raise ValueError(
            f"load request must have exactly the keys model_name and url, got {sorted(body)}"
        )
    name, url = body["model_name"], body["url"]
    if not isinstance(name, str) or not _HASH_RE.match(name):
        raise ValueError(f"model_name must be a lowercase hex hash, got {name!r}")
    if not isinstance(url, str) or not url.startswith("/") or not Path(url).is_dir():
        raise ValueError(f"url must be an existing absolute folder, got {url!r}")
    return {"model_name": name, "url": url}


@dataclass
class _Entry:
    target_model: str
    hash: str
    folder: Path
    in_use: int = 0
    loaded_at: float = field(default_factory=time.monotonic)


@dataclass
class _Pending:
    """A load under way and how many invokes wait for it.

    The load hands its model over already held once per waiter, in the same step that makes it
    visible, so another load cannot evict it before those waiters have used it (with capacity 1
    and two callers, that would otherwise go on until one of them gives up).
    """

    future: Future[_Entry] | None = None
    waiters: int = 1


class UnloadFailed(Exception):
    """Triton did not unload a model: it stays registered, so its folder is kept."""


def _resident_bytes(root_pid: int) -> int:
    """RSS of a process and all its descendants (the server and its Python stubs)."""
    total, queue, seen = 0, [root_pid], set()
    parents: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(proc.name))
    while queue:
        pid = queue.pop()
        if pid in seen:
            continue
        seen.add(pid)
        queue.extend(parents.get(pid, []))
        try:
            for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return total


class ModelCache:
    """The endpoint's loaded models, in least-recently-used order."""

    def __init__(
        self,
        server: MmeServer,
        source: ArtifactSource,
        models_root: Path,
        metrics: EndpointMetrics,
        *,
        max_models: int | None = None,
        max_resident_mb: float | None = None,
        load_timeout: float = 600.0,
        unload_timeout: float = 120.0,
    ):
        if max_models is not None and max_models < 1:
            raise ValueError(f"max_models must be at least 1, got {max_models}")
        self.server = server
        self.source = source
        self.models_root = models_root
        self.metrics = metrics
        self.max_models = max_models
        self.max_resident_mb = max_resident_mb
        self.load_timeout = load_timeout
        self.unload_timeout = unload_timeout
        self._loaded: OrderedDict[str, _Entry] = OrderedDict()
        self._loading: dict[str, _Pending] = {}
        self._lock = threading.RLock()  # the two tables above
        self._control = threading.Lock()  # one load or unload at a time (see below)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mmepack-load")
        self._closed = threading.Event()
        self._active = 0  # loads running now (under `_lock`); stop waits for them
        self._idle = threading.Condition(self._lock)

    # --- what is loaded ----------------------------------------------------------------------

    def loaded(self) -> list[str]:
        """TargetModels loaded now, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def folder_of(self, target_model: str) -> Path:
        """The unpacked `<hash>/model` folder of a loaded TargetModel."""
        with self._lock:
            entry = self._loaded.get(target_model)
        if entry is None:
            raise KeyError(f"{target_model} is not loaded")
        return entry.folder

    def resident_mb(self) -> float:
        return _resident_bytes(self.server.server_pid) / 1e6

    # --- acquire / release around an invoke ----------------------------------------------------

    def acquire(self, target_model: str, wait: float) -> tuple[str, bool, float]:
        """(hash, cache hit, seconds waited for the load). Loads on a miss; raises LoadFailed,
        or NotReady when the load takes longer than `wait` (it carries on in the background)."""
        started = time.monotonic()
        with self._lock:
            entry = self._loaded.get(target_model)
            if entry is not None:
                self._loaded.move_to_end(target_model)
                entry.in_use += 1
                return entry.hash, True, 0.0
            pending = self._loading.get(target_model)
            if pending is None:
                pending = _Pending()
                pending.future = self._pool.submit(self._load, target_model, pending)
                self._loading[target_model] = pending
            else:
                pending.waiters += 1
            future = pending.future
        assert future is not None  # set under the lock before anyone else can see `pending`
        try:
            entry = future.result(timeout=wait)
        except FutureTimeout:
            with self._lock:
                if self._loading.get(target_model) is pending:
                    pending.waiters -= 1  # the load will not hold the model for this caller
                    raise NotReady(target_model) from None
            # It finished meanwhile (or is finishing its memory check), holding it for us.
            entry = future.result()
        return entry.hash, False, time.monotonic() - started

    def release(self, target_model: str) -> None:
        with self._lock:
            entry = self._loaded.get(target_model)
            if entry is not None and entry.in_use > 0:
                entry.in_use -= 1

    # --- load and unload ----------------------------------------------------------------------
    #
    # Triton's SageMaker front end (r24.10, src/sagemaker_server.cc) keeps a model's repository
    # registered until its DELETE has waited for the unload to finish; a load of the same folder
    # meanwhile is refused with 409 ("has already been registered"), and unpacking over that
    # folder pulls files from under a model Triton still serves. Its table of registered models
    # is also read without a lock by unload. So every load and unload here holds `_control`: one
    # control request at a time, each eviction finished before the next load starts. Invokes
    # never take it. The choice of a victim and its removal from `_loaded` happen in one step
    # under `_lock`, so no invoke can be handed a model that is being unloaded.

    def _take_idle(self, keep: str) -> _Entry | None:
        """Remove and return the least recently used model no invoke holds (under `_lock`)."""
        victim = next((e for t, e in self._loaded.items() if e.in_use == 0 and t != keep), None)
        if victim is not None:
            del self._loaded[victim.target_model]
        return victim

    def _make_room(self, keep: str) -> None:
        if self.max_models is None:
            return
        while True:
            with self._lock:
                if len(self._loaded) < self.max_models:
                    return
                victim = self._take_idle(keep)
            if victim is None:
                return  # everything is in use: load anyway, as SageMaker waits rather than fails
            try:
                self._unload_entry(victim, reason="capacity")
            except UnloadFailed as exc:
                raise LoadFailed(keep, 500, f"could not make room for it: {exc}") from None

    def _relieve_memory(self, keep: str) -> None:
        if self.max_resident_mb is None:
            return
        while self.resident_mb() > self.max_resident_mb:
            with self._lock:
                victim = self._take_idle(keep)
            if victim is None:
                return
            try:
                self._unload_entry(victim, reason="memory")
            except UnloadFailed:
                return  # the load itself worked; the failed unload is in the metrics events

    def _load(self, target_model: str, pending: _Pending) -> _Entry:
        with self._lock:
            self._active += 1
        try:
            try:
                artifact = self.source.find(target_model)
            except TargetModelNotFound as exc:
                raise LoadFailed(target_model, 404, str(exc)) from None
            with self._control:
                if self._closed.is_set():
                    raise LoadFailed(target_model, 503, "the endpoint is stopping")
                self._make_room(target_model)
                started = time.monotonic()
                try:
                    folder = unpack(
                        artifact, self.models_root, target_model, cancelled=self._closed.is_set
                    )
                    try:  # before Triton sees it: a backend this server lacks (FIL)
                        refuse_unavailable_backends(folder, target_model)
                    except MmepackError as exc:
                        raise LoadFailed(target_model, 400, str(exc)) from None
                    unpacked = time.monotonic()
                    if self._closed.is_set():
                        remove_unpacked(self.models_root, target_model)
                        raise LoadFailed(target_model, 503, "the endpoint is stopping")
                    body = {"model_name": model_hash(target_model), "url": str(folder)}
                    self.send_load(target_model, json.dumps(body).encode())
                except ArtifactUnreadable as exc:
                    raise LoadFailed(target_model, 400, str(exc)) from None
                except (OSError, tarfile.TarError) as exc:
                    remove_unpacked(self.models_root, target_model)
                    raise LoadFailed(target_model, 500, f"cannot unpack {artifact}: {exc}")
                except LoadFailed as failure:
                    if failure.status != 409:  # 409: Triton still has this folder registered
                        remove_unpacked(self.models_root, target_model)
                    raise
                entry = _Entry(target_model, body["model_name"], folder)
                with self._lock:
                    entry.in_use = pending.waiters  # held for each caller waiting on this load
                    self._loaded[target_model] = entry
                    del self._loading[target_model]
                self.metrics.record_event(
                    ModelEvent(target_model, "load", time.monotonic() - started, unpacked - started)
                )
                self.server.claim_unpacked_environments()
                self._relieve_memory(target_model)
            return entry
        except LoadFailed as failure:
            self.metrics.record_event(
                ModelEvent(target_model, "load-failed", 0.0, 0.0, failure.message)
            )
            raise
        finally:
            with self._lock:
                if self._loading.get(target_model) is pending:
                    del self._loading[target_model]
                self._active -= 1
                self._idle.notify_all()

    def send_load(self, target_model: str, raw_body: bytes) -> None:
        """`POST /models` after checking the body; LoadFailed with SageMaker's status."""
        try:
            check_load_request(raw_body)
        except ValueError as exc:
            raise LoadFailed(target_model, 400, f"load request refused before Triton: {exc}")
        offset = len(self.server.log_text())
        try:
            reply = self.server.request(
                "POST",
                "/models",
                body=raw_body,
                headers={"Content-Type": "application/json", TARGET_MODEL_HEADER: target_model},
                timeout=self.load_timeout,
            )
        except OSError as exc:
            raise LoadFailed(
                target_model, 500, f"the server did not answer the load: {exc}"
            ) from None
        if reply.status != 200:
            text = reply.body.decode("utf-8", errors="replace").strip()
            try:
                text = str(json.loads(text).get("error", text))
            except (ValueError, AttributeError):
                pass
            logged = self.server.log_errors(offset)
            message = text if not logged or logged in text else f"{text}\n{logged}"
            raise LoadFailed(target_model, reply.status, message)

    def unload(self, target_model: str, reason: str = "request") -> None:
        """Unload a TargetModel now, whether or not an invoke holds it; UnloadFailed if Triton
        would not."""
        with self._control:
            with self._lock:
                entry = self._loaded.pop(target_model, None)
            if entry is not None:
                self._unload_entry(entry, reason)

    def _unload_entry(self, entry: _Entry, reason: str) -> None:
        """`DELETE /models/<hash>` with the TargetModel header, then drop the unpacked folder.

        The caller holds `_control` and has taken the entry out of `_loaded`. Triton answers
        only once the model is unloaded and its repository unregistered (404: it was not
        loaded). Otherwise the repository may still be registered, so the folder stays and the
        entry goes back (least recently used first) for a later eviction to try again.
        """
        started = time.monotonic()
        try:
            reply = self.server.request(
                "DELETE",
                f"/models/{entry.hash}",
                headers={TARGET_MODEL_HEADER: entry.target_model},
                timeout=self.unload_timeout,
            )
            problem = (
                None
                if reply.status in (200, 404)
                else f"HTTP {reply.status}: {reply.body.decode('utf-8', errors='replace')}"
            )
        except OSError as exc:
            problem = str(exc)
        if problem is not None:
            with self._lock:
                self._loaded[entry.target_model] = entry
                self._loaded.move_to_end(entry.target_model, last=False)
            self.metrics.record_event(
                ModelEvent(entry.target_model, "unload-failed", 0.0, reason=problem)
            )
            raise UnloadFailed(f"unloading {entry.target_model}: {problem}")
        remove_unpacked(self.models_root, entry.target_model)
        self.metrics.record_event(
            ModelEvent(entry.target_model, "unload", time.monotonic() - started, reason=reason)
        )

    def forget_all(self) -> None:
        """The server died: nothing it held is loaded any more."""
        with self._lock:
            self._loaded.clear()

    def close(self) -> None:
        """No load starts from now on; a load under way stops at its next step."""
        self._closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def wait_loads(self, timeout: float) -> bool:
        """Wait until no load runs (after close() and the server's stop, they end quickly);
        False if one still ran after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._active > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True
