"""The SageMaker Runtime API in front of the endpoint: what `invoke_endpoint` talks to.

Owns the public HTTP side, on 127.0.0.1 only: `POST /endpoints/<name>/invocations` with the
`X-Amzn-SageMaker-Target-Model` header, answered the way SageMaker Runtime answers, so that
boto3's own `sagemaker-runtime` client (pointed here with `endpoint_url`) runs unchanged:

- 200 with the container's body and Content-Type, and `x-Amzn-Invoked-Production-Variant`;
- a container error, or a load that failed, as `ModelError` (HTTP 424) carrying the container's
  status (`OriginalStatusCode`: 400, 404, 409, 507, ...) and its own text (`OriginalMessage`);
- a model still loading after the wait bound as `ModelNotReadyException` (HTTP 429);
- a request SageMaker would reject (no TargetModel, wrong endpoint name) as `ValidationError`.

Request signatures are not checked: any credentials work. `GET /ping` answers the container's
ping, for scripts that wait for the endpoint.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from mmepack.endpoint.metrics import EndpointMetrics, InvokeMetrics, micros
from mmepack.endpoint.models import LoadFailed, ModelCache, NotReady
from mmepack.endpoint.server import TARGET_MODEL_HEADER, MmeServer

# Request headers the container sees, as SageMaker passes them on.
_FORWARDED = ("Content-Type", "Accept", "X-Amzn-SageMaker-Custom-Attributes")
_MAX_BODY = 6 * 1024 * 1024  # InvokeEndpoint's payload limit


class RuntimeFront:
    """What the handler needs, bundled (the handler class itself is built per endpoint)."""

    def __init__(
        self,
        name: str,
        server: MmeServer,
        cache: ModelCache,
        metrics: EndpointMetrics,
        *,
        not_ready_after: float,
        invoke_timeout: float,
        log: Callable[[str], None] | None,
    ):
        self.name = name
        self.server = server
        self.cache = cache
        self.metrics = metrics
        self.not_ready_after = not_ready_after
        self.invoke_timeout = invoke_timeout
        self.log = log


def _error_body(code: str, message: str, **extra: Any) -> bytes:
    return json.dumps({"__type": code, "message": message, "Message": message, **extra}).encode()


def make_handler(front: RuntimeFront) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "mmepack-local-endpoint"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
            pass  # per-invoke metrics lines say what happened; no access log

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str = "application/json",
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", f"local-{time.monotonic_ns()}")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, code: str, message: str, **extra: Any) -> None:
            self._send(
                status,
                _error_body(code, message, **extra),
                headers={"x-amzn-ErrorType": f"{code}:"},
            )

        def do_GET(self) -> None:  # noqa: N802 (stdlib naming)
            if self.path == "/ping":
                try:
                    reply = front.server.request("GET", "/ping", timeout=10)
                    self._send(reply.status, reply.body)
                except OSError as exc:
                    self._error(503, "ServiceUnavailable", f"server unreachable: {exc}")
                return
            self._error(404, "UnknownOperationException", f"no route GET {self.path}")

        def do_POST(self) -> None:  # noqa: N802 (stdlib naming)
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                self.rfile.read(length)
                self._error(413, "ValidationError", f"payload of {length} bytes exceeds 6 MB")
                return
            body = self.rfile.read(length)
            parts = self.path.split("?")[0].strip("/").split("/")
            if len(parts) != 3 or parts[0] != "endpoints" or parts[2] != "invocations":
                self._error(404, "UnknownOperationException", f"no route POST {self.path}")
                return
            name = unquote(parts[1])
            if name != front.name:
                self._error(
                    400,
                    "ValidationError",
                    f"Endpoint {name} of account local not found (this endpoint is "
                    f"{front.name!r})",
                )
                return
            target = self.headers.get(TARGET_MODEL_HEADER)
            if not target:
                self._error(
                    400,
                    "ValidationError",
                    f"a multi-model endpoint needs a TargetModel ({TARGET_MODEL_HEADER} header)",
                )
                return
            self._invoke(target, body)

        def _invoke(self, target: str, body: bytes) -> None:
            started = time.monotonic()
            try:
                model_hash, hit, waited = front.cache.acquire(target, front.not_ready_after)
            except NotReady:
                self._record(target, 429, False, time.monotonic() - started, 0.0)
                self._error(
                    429,
                    "ModelNotReadyException",
                    f"Model {target} is not ready yet; it is loading, retry the request",
                )
                return
            except LoadFailed as failure:
                self._record(target, 424, False, time.monotonic() - started, 0.0)
                self._error(
                    424,
                    "ModelError",
                    f"Received client error ({failure.status}) from model with message "
                    f'"{failure.message}"',
                    OriginalStatusCode=failure.status,
                    OriginalMessage=failure.message,
                    LogStreamArn=str(front.server.log_path),
                )
                return
            except Exception as exc:  # a bug here must not close the caller's connection
                self._record(target, 500, False, time.monotonic() - started, 0.0)
                self._error(500, "InternalFailure", f"loading {target} failed: {exc!r}")
                return
            try:
                headers = {TARGET_MODEL_HEADER: target}
                for key in _FORWARDED:
                    if self.headers.get(key):
                        headers[key] = str(self.headers.get(key))
                invoked = time.monotonic()
                try:
                    reply = front.server.request(
                        "POST",
                        f"/models/{model_hash}/invoke",
                        body=body,
                        headers=headers,
                        timeout=front.invoke_timeout,
                    )
                except OSError as exc:
                    self._record(target, 500, hit, waited, time.monotonic() - invoked)
                    self._error(500, "InternalFailure", f"the model server failed: {exc}")
                    return
                metrics = self._record(
                    target,
                    200 if reply.status == 200 else 424,
                    hit,
                    waited,
                    time.monotonic() - invoked,
                )
                if reply.status == 200:
                    self._send(
                        200,
                        reply.body,
                        reply.headers.get("content-type", "application/json"),
                        {"x-Amzn-Invoked-Production-Variant": "AllTraffic", **metrics.headers()},
                    )
                    return
                text = reply.body.decode("utf-8", errors="replace")
                self._error(
                    424,
                    "ModelError",
                    f"Received client error ({reply.status}) from model with message " f'"{text}"',
                    OriginalStatusCode=reply.status,
                    OriginalMessage=text,
                    LogStreamArn=str(front.server.log_path),
                )
            finally:
                front.cache.release(target)

        def _record(
            self, target: str, status: int, hit: bool, waited: float, latency: float
        ) -> InvokeMetrics:
            metrics = InvokeMetrics(
                target_model=target,
                status=status,
                ModelCacheHit=int(hit),
                ModelLoadingWaitTime=micros(waited),
                ModelLatency=micros(latency),
                LoadedModelCount=len(front.cache.loaded()),
            )
            front.metrics.record_invoke(metrics)
            if front.log is not None:
                front.log(metrics.log_line())
            return metrics

    return Handler


class RuntimeServer:
    """The runtime API on 127.0.0.1:<port>, served from a background thread."""

    def __init__(self, front: RuntimeFront, port: int = 0):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), make_handler(front))
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="mmepack-runtime", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)


def stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
