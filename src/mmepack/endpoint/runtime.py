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

What it refuses before Triton sees anything (Triton 2.51 dies on some of it, and a dead server
takes every loaded model with it): a body over InvokeEndpoint's 6 MB limit (413) or with a
Content-Length that is not a plain decimal number (400), neither read; a chunked body (411);
JSON nested deeper than MAX_JSON_DEPTH (400; in a binary+json body, its JSON header);
a binary+json body whose json-header-size is not a number within the body (400). It closes a
connection idle for IDLE_TIMEOUT_S seconds and serves at most MAX_CONNECTIONS at once (503
beyond that).
"""

from __future__ import annotations

import array
import errno
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import accumulate
from typing import Any
from urllib.parse import unquote

from mmepack.endpoint.metrics import EndpointMetrics, InvokeMetrics, micros
from mmepack.endpoint.models import LoadFailed, ModelCache, NotReady
from mmepack.endpoint.server import TARGET_MODEL_HEADER, MmeServer
from mmepack.errors import MmepackError

# Request headers the container sees, as SageMaker passes them on.
_FORWARDED = ("Content-Type", "Accept", "X-Amzn-SageMaker-Custom-Attributes")
MAX_BODY_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's payload limit
# Deepest JSON nesting passed on: Triton 2.51 parses recursively and died on 100,000 levels
# (20,000 were fine). A KServe request needs 3 levels plus one per tensor dimension.
MAX_JSON_DEPTH = 100
IDLE_TIMEOUT_S = 30.0  # a connection that sends nothing for this long is closed
MAX_CONNECTIONS = 64  # connections served at once; more are answered 503 and closed
LISTEN_BACKLOG = 128
_BINARY_JSON = "application/vnd.sagemaker-triton.binary+json"
_HEADER_SIZE_RE = re.compile(r"json-header-size\s*=\s*([^;\s]*)", re.IGNORECASE)
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_DEPTH_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")  # as signed bytes: +1, -1


def json_depth(data: bytes) -> int:
    """Deepest nesting of arrays and objects in JSON text, without parsing it: brackets inside
    strings do not count. Linear, and mostly bytes operations (0.3 s for 6 MB of brackets).

    Escapes pair up left to right, so dropping `\\\\` and then `\\"` leaves only the quotes that
    open and close strings; of the quotes and brackets left, a bracket is inside a string when
    an odd number of quotes precede it. Dropping adjacent quote pairs keeps every parity and
    bounds the quotes left by the brackets. Where the text stops being JSON, a parser stops
    too, so what follows does not matter."""
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    signs = unescaped.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    outside = b"".join(signs.split(b'"')[::2]) if b'"' in signs else signs
    steps = array.array("b", outside.translate(_DEPTH_STEPS))
    return max(accumulate(steps), default=0)


def invoke_body_problem(body: bytes, content_type: str) -> str | None:
    """Why an invoke body must not reach Triton, or None.

    Triton's SageMaker route reads the whole body as JSON, or, with the binary+json content
    type, its first json-header-size bytes."""
    json_part = body
    if content_type.split(";")[0].strip().lower() == _BINARY_JSON:
        match = _HEADER_SIZE_RE.search(content_type)
        if match is not None:
            raw = match.group(1)
            if not raw.isascii() or not raw.isdigit() or int(raw[:16]) > len(body):
                return (
                    f"json-header-size must be a byte count within the {len(body)}-byte body, "
                    f"got {raw[:40]!r}"
                )
            json_part = body[: int(raw)]
    if json_part.count(b"[") + json_part.count(b"{") <= MAX_JSON_DEPTH:
        return None  # no deeper than the number of its openers
    depth = json_depth(json_part)
    if depth > MAX_JSON_DEPTH:
        return (
            f"the request's JSON is nested {depth} levels deep; at most {MAX_JSON_DEPTH} are "
            "accepted (a tensor needs one level per dimension)"
        )
    return None


def bind_listener(port: int) -> socket.socket:
    """The runtime API's listening socket on 127.0.0.1, or an MmepackError naming the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise MmepackError(
                f"port {port} on 127.0.0.1 is already in use (another endpoint?); choose "
                "another with --port, or --port 0 for a free one"
            ) from None
        raise MmepackError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    return sock


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
        self.failure: str | None = None  # set when the server has died
        self.idle_timeout = IDLE_TIMEOUT_S
        self.stopping = threading.Event()  # no per-invoke lines once the endpoint stops


def _error_body(code: str, message: str, **extra: Any) -> bytes:
    return json.dumps({"__type": code, "message": message, "Message": message, **extra}).encode()


def make_handler(front: RuntimeFront) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "mmepack-local-endpoint"
        # A malformed request line is answered with a status line, not HTTP/0.9's bare body.
        default_request_version = "HTTP/1.1"

        def setup(self) -> None:
            # Per socket operation: closes idle connections and stalled bodies.
            super().setup()
            self.connection.settimeout(front.idle_timeout)

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

        def _refuse(self, status: int, code: str, message: str) -> None:
            """An error after which the connection closes (its body was not read)."""
            self.close_connection = True
            self._send(
                status,
                _error_body(code, message),
                headers={"x-amzn-ErrorType": f"{code}:", "Connection": "close"},
            )

        def _read_body(self) -> bytes | None:
            """The request body, or None once a refusal has been sent. Nothing is read from a
            body whose length is missing, malformed or over the limit."""
            if self.headers.get("Transfer-Encoding"):
                self._refuse(
                    411,
                    "ValidationError",
                    "chunked or other Transfer-Encoding bodies are not accepted; send the body "
                    "with a Content-Length (boto3 does)",
                )
                return None
            values = self.headers.get_all("Content-Length") or []
            if len({v.strip() for v in values}) > 1:
                self._refuse(400, "ValidationError", "conflicting Content-Length headers")
                return None
            raw = values[0].strip() if values else "0"
            if not raw.isascii() or not raw.isdigit():
                self._refuse(
                    400,
                    "ValidationError",
                    f"Content-Length must be a decimal byte count, got {raw[:40]!r}",
                )
                return None
            if len(raw) > 16 or int(raw) > MAX_BODY_BYTES:
                self._refuse(
                    413,
                    "ValidationError",
                    f"payload of {raw[:40]} bytes exceeds InvokeEndpoint's limit of "
                    f"{MAX_BODY_BYTES} bytes (6 MB)",
                )
                return None
            length = int(raw)
            try:
                body = self.rfile.read(length)
            except OSError:  # idle past the timeout, or reset: nobody to answer
                self.close_connection = True
                return None
            if len(body) < length:
                self.close_connection = True
                return None
            return body

        def do_GET(self) -> None:  # noqa: N802 (stdlib naming)
            if (
                self.headers.get("Transfer-Encoding")
                or self.headers.get("Content-Length", "0") != "0"
            ):
                self.close_connection = True  # its body is not read, so it must not be parsed
            if self.path == "/ping":
                if front.failure is not None:
                    self._error(503, "ServiceUnavailable", front.failure)
                    return
                try:
                    reply = front.server.request("GET", "/ping", timeout=10)
                    self._send(reply.status, reply.body)
                except OSError as exc:
                    self._error(503, "ServiceUnavailable", f"server unreachable: {exc}")
                return
            self._error(404, "UnknownOperationException", f"no route GET {self.path}")

        def do_POST(self) -> None:  # noqa: N802 (stdlib naming)
            body = self._read_body()
            if body is None:
                return
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
            problem = invoke_body_problem(body, self.headers.get("Content-Type") or "")
            if problem is not None:
                self._error(400, "ValidationError", f"request refused before the model: {problem}")
                return
            self._invoke(target, body)

        def _invoke(self, target: str, body: bytes) -> None:
            if front.failure is not None:
                self._error(503, "ServiceUnavailable", front.failure)
                return
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
            if front.log is not None and not front.stopping.is_set():
                front.log(metrics.log_line())
            return metrics

    return Handler


_BUSY = _error_body(
    "ServiceUnavailable",
    f"the local endpoint serves at most {MAX_CONNECTIONS} connections at once; retry later",
)


class _BoundedHTTPServer(ThreadingHTTPServer):
    """One thread per connection, at most `max_connections` of them: beyond that a connection
    is answered 503 at once and closed, so idle or slow callers cannot pile up threads."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        listener: socket.socket,
        handler: type[BaseHTTPRequestHandler],
        max_connections: int,
    ):
        super().__init__(listener.getsockname(), handler, bind_and_activate=False)
        self.socket.close()
        self.socket = listener
        self.server_address = listener.getsockname()
        self.server_name, self.server_port = "127.0.0.1", int(self.server_address[1])
        self.slots = threading.BoundedSemaphore(max_connections)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A caller that vanished mid-answer is not the endpoint's problem; anything else is
        said in one line, not a traceback."""
        kind, value = sys.exc_info()[:2]
        if kind is not None and issubclass(kind, (ConnectionError, TimeoutError)):
            return
        print(f"mmepack: warning: runtime API: {value!r}", file=sys.stderr, flush=True)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(_BUSY)}\r\n".encode()
                    + b"x-amzn-ErrorType: ServiceUnavailable:\r\nConnection: close\r\n\r\n"
                    + _BUSY
                )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class RuntimeServer:
    """The runtime API on 127.0.0.1:<port>, served from a background thread."""

    def __init__(
        self,
        front: RuntimeFront,
        port: int = 0,
        *,
        listener: socket.socket | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ):
        self.front = front
        self.httpd = _BoundedHTTPServer(
            listener or bind_listener(port), make_handler(front), max_connections
        )
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
        self.front.stopping.set()
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread.ident is not None:  # started (a failed start stops it unstarted)
            self._thread.join(timeout=10)


def stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
