"""Prove a packed environment loads before anything ships it.

Environment failures (wrong Python, no numpy, a missing shared library, an import that crashes)
otherwise surface only when an endpoint first loads the model. The proof runs the same thing the
endpoint will: a real Triton server unpacks the archive through EXECUTION_ENV_PATH and starts
its Python stub in it, and a probe model imports numpy and every requirement the model named.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mmepack.environment.requirements import canonical_name
from mmepack.errors import MmepackError, model_prefix
from mmepack.files import scratch_dir
from mmepack.triton.target import STUB_NAME

Log = Callable[[str], None]
PROBE_MODEL = "mmepack_env_probe"
_OK_MARK = "MMEPACK_PROBE_OK"

# The probe runs inside the environment under test, so it uses only the standard library.
_PROBE_SOURCE = (
    '''\
import importlib
import json
import os
import sys


class TritonPythonModel:
    def initialize(self, args):
        parameters = json.loads(args["model_config"]).get("parameters", {})
        expected = parameters["MMEPACK_EXPECT_PYTHON"]["string_value"]
        modules = json.loads(parameters["MMEPACK_IMPORTS"]["string_value"])
        running = "%d.%d" % sys.version_info[:2]
        if running != expected:
            raise RuntimeError(
                "the stub runs Python %s, the environment was built for %s" % (running, expected)
            )
        if not os.path.isdir(os.path.join(sys.prefix, "conda-meta")):
            raise RuntimeError(
                "the stub runs the Python at %s, not the unpacked environment" % sys.prefix
            )
        failed = []
        for module in modules:
            try:
                importlib.import_module(module)
            except BaseException as exc:
                failed.append("%s (%s: %s)" % (module, type(exc).__name__, exc))
        if failed:
            raise RuntimeError("cannot import " + "; ".join(failed))
        versions = {}
        for module in modules:
            versions[module] = str(getattr(sys.modules[module], "__version__", "?"))
        print("%s Python %s at %s imported %s" % (
            "'''
    + _OK_MARK
    + """", sys.version.split()[0], sys.prefix, json.dumps(versions)),
            flush=True)
        self.count = len(json.loads(args["model_config"]).get("input", []))

    def execute(self, requests):
        # Echo each input back: the same bytes must come back through the stub, which is where
        # numpy 2 under an older stub loses them.
        import triton_python_backend_utils as pb_utils

        responses = []
        for request in requests:
            outputs = []
            for index in range(self.count):
                data = pb_utils.get_input_tensor_by_name(request, "IN_%d" % index).as_numpy()
                outputs.append(pb_utils.Tensor("OUT_%d" % index, data))
            responses.append(pb_utils.InferenceResponse(outputs))
        return responses
"""
)


# Sample values per Triton data type (struct format, values): distinct, non-zero-heavy bytes so
# a tensor that comes back empty, truncated or reinterpreted is noticed. BF16 is left out: the
# stub's `as_numpy()` cannot hold it (numpy has no bfloat16), so a Python step cannot use it.
_SAMPLES: dict[str, tuple[str, tuple[object, ...]]] = {
    "TYPE_BOOL": ("?", (True, False, True, True)),
    "TYPE_UINT8": ("B", (1, 2, 254, 255)),
    "TYPE_UINT16": ("H", (1, 2, 65534, 3)),
    "TYPE_UINT32": ("I", (1, 2, 4294967294, 3)),
    "TYPE_UINT64": ("Q", (1, 2, 18446744073709551614, 3)),
    "TYPE_INT8": ("b", (1, -2, 127, -128)),
    "TYPE_INT16": ("h", (1, -2, 32767, -32768)),
    "TYPE_INT32": ("i", (1, -2, 2147483647, -2147483648)),
    "TYPE_INT64": ("q", (1, -2, 9223372036854775807, -9223372036854775808)),
    "TYPE_FP16": ("e", (1.5, -2.0, 0.25, 3.0)),
    "TYPE_FP32": ("f", (1.5, -2.0, 0.25, 3.0)),
    "TYPE_FP64": ("d", (1.5, -2.0, 0.25, 3.0)),
    "TYPE_STRING": ("", (b"mmepack", b"", b"\x00\xff", b"probe")),
}
# The probe always moves FP32, the type nearly every step uses.
DEFAULT_TENSOR_TYPES = ("TYPE_FP32",)


def probe_tensor_types(types: Iterable[str]) -> list[str]:
    """The Triton data types the probe moves: FP32 plus every type it can sample, in order."""
    chosen = list(DEFAULT_TENSOR_TYPES)
    chosen.extend(t for t in types if t in _SAMPLES and t not in chosen)
    return chosen


def _sample_bytes(data_type: str) -> bytes:
    fmt, values = _SAMPLES[data_type]
    if not fmt:  # BYTES: each element is a 4-byte little-endian length, then its bytes
        return b"".join(struct.pack("<I", len(v)) + v for v in values if isinstance(v, bytes))
    return struct.pack(f"<{len(values)}{fmt}", *values)


def _wire_type(data_type: str) -> str:
    name = data_type.removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name


def echo_tensors(url: str, model: str, types: list[str], timeout: float = 60.0) -> list[str]:
    """Send one tensor of each type to `model` (the probe, which returns its inputs) over
    KServe v2 HTTP with binary data, and say what did not come back byte for byte."""
    payloads = [_sample_bytes(t) for t in types]
    header = {
        "inputs": [
            {
                "name": f"IN_{i}",
                "shape": [len(_SAMPLES[t][1])],
                "datatype": _wire_type(t),
                "parameters": {"binary_data_size": len(payload)},
            }
            for i, (t, payload) in enumerate(zip(types, payloads))
        ],
        "outputs": [
            {"name": f"OUT_{i}", "parameters": {"binary_data": True}} for i in range(len(types))
        ],
    }
    head = json.dumps(header).encode()
    request = urllib.request.Request(
        f"http://{url}/v2/models/{model}/infer",
        data=head + b"".join(payloads),
        headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(head)),
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            head_length = int(response.headers.get("Inference-Header-Content-Length") or len(body))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace").strip()
        return [f"the inference request failed (HTTP {exc.code}): {detail}"]
    except (urllib.error.URLError, OSError) as exc:
        return [f"the inference request failed: {exc}"]
    answer = json.loads(body[:head_length])
    received: dict[str, bytes] = {}
    offset = head_length
    for output in answer.get("outputs", []):
        size = int(output.get("parameters", {}).get("binary_data_size", 0))
        received[output["name"]] = body[offset : offset + size]
        offset += size
    lost = []
    for i, (data_type, sent) in enumerate(zip(types, payloads)):
        got = received.get(f"OUT_{i}")
        if got is None:
            lost.append(f"{data_type}: no output came back")
        elif got != sent:
            lost.append(f"{data_type}: sent {len(sent)} bytes, got {len(got)} different bytes")
    return lost


@dataclass(frozen=True)
class ProofResult:
    modules: tuple[str, ...]
    triton_version: str
    tensor_types: tuple[str, ...] = ()


def _dist_info_dirs(site_packages: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in site_packages.glob("*.dist-info"):
        name = path.name[: -len(".dist-info")].split("-")[0]
        found[canonical_name(name)] = path
    return found


def _top_level_from_record(dist_info: Path) -> list[str]:
    record = dist_info / "RECORD"
    if not record.is_file():
        return []
    return top_level_from_record(record.read_text(encoding="utf-8", errors="replace"))


def top_level_from_record(text: str) -> list[str]:
    """Top-level modules a distribution installs, from its RECORD's paths (for wheels without
    top_level.txt)."""
    names: set[str] = set()
    for line in text.splitlines():
        path = line.split(",", 1)[0]
        head, _, tail = path.partition("/")
        if tail == "__init__.py" and head.isidentifier():
            names.add(head)
        elif not tail and re.fullmatch(r"[A-Za-z_]\w*(\.py|\..*\.so|\.so)", head):
            names.add(head.split(".", 1)[0])
    return sorted(names)


def import_names(site_packages: Path, requirement_names: Iterable[str]) -> list[str]:
    """Modules to import for each requirement, from what pip actually installed (`pillow` is
    imported as `PIL`); numpy first, since Triton's own utilities need it."""
    dists = _dist_info_dirs(site_packages)
    modules = ["numpy"]
    for requirement in requirement_names:
        dist_info = dists.get(canonical_name(requirement))
        if dist_info is None:
            continue
        top_level = dist_info / "top_level.txt"
        names = (
            [n.strip() for n in top_level.read_text(encoding="utf-8").split() if n.strip()]
            if top_level.is_file()
            else _top_level_from_record(dist_info)
        )
        public = [n for n in names if not n.startswith("_") and "/" not in n] or names
        modules.extend(n for n in public if n not in modules)
    return modules


def _write_probe_model(
    repository: Path,
    archive: Path,
    stub: Path | None,
    python: str,
    modules: list[str],
    types: list[str],
) -> None:
    folder = repository / PROBE_MODEL
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text(_PROBE_SOURCE, encoding="utf-8")
    shutil.copy2(archive, folder / "python_env.tar.gz")
    if stub is not None:
        shutil.copy2(stub, folder / STUB_NAME)
    parameters = {
        "EXECUTION_ENV_PATH": "$$TRITON_MODEL_DIRECTORY/python_env.tar.gz",
        "MMEPACK_EXPECT_PYTHON": python,
        "MMEPACK_IMPORTS": json.dumps(modules),
    }
    parameter_text = "\n".join(
        f"parameters: {{ key: {json.dumps(k)} value: {{ string_value: {json.dumps(v)} }} }}"
        for k, v in parameters.items()
    )
    (folder / "config.pbtxt").write_text(
        f'name: "{PROBE_MODEL}"\nbackend: "python"\nmax_batch_size: 0\n'
        + "".join(
            f'input [{{ name: "IN_{i}" data_type: {t} dims: [ -1 ] }}]\n'
            f'output [{{ name: "OUT_{i}" data_type: {t} dims: [ -1 ] }}]\n'
            for i, t in enumerate(types)
        )
        + "instance_group [{ kind: KIND_CPU count: 1 }]\n"
        + parameter_text
        + "\n",
        encoding="utf-8",
    )


def _imported_versions(log_text: str) -> str:
    """`numpy 2.1.3, tomli_w 1.0.0` from the probe's confirmation line, for messages."""
    for line in reversed(log_text.splitlines()):
        if _OK_MARK in line and "{" in line:
            try:
                versions = json.loads(line[line.index("{") :])
            except ValueError:
                break
            return ", ".join(f"{name} {version}" for name, version in versions.items())
    return "unknown package versions"


def prove_environment(
    archive: Path,
    python: str,
    modules: list[str],
    *,
    tensor_types: Iterable[str] = (),
    server_stub_python: str | None = None,
    label: str = "",
    log: Log | None = None,
) -> ProofResult:
    """Load `archive` in a real Triton server under the stub for `python`, import `modules`,
    and send a tensor of each of `tensor_types` (plus FP32) through the stub and back.

    Importing is not enough: numpy 2 imports under Triton 2.51's stub and then returns empty
    tensors, so the proof moves data the way the model's Python steps will. The server's own
    stub is `server_stub_python`'s (default: the environment's); when they differ the probe
    model carries the environment's stub beside its config, exactly as the artifact will.
    """
    from mmepack.triton.install import find_triton
    from mmepack.triton.server import TritonServer

    who = model_prefix(label)
    types = probe_tensor_types(tensor_types)
    server_python = server_stub_python or python
    if not (find_triton().stubs / server_python).is_dir():
        server_python = python
    with scratch_dir("proof") as workdir:
        repository = workdir / "models"
        server = TritonServer(repository, workdir, python_minor=server_python)
        stub = server.install.stub_for(python) if python != server_python else None
        _write_probe_model(repository, archive, stub, python, modules, types)
        if log is not None:
            log(
                f"{who}proving the environment: Triton loads it, imports {', '.join(modules)} "
                f"and echoes {', '.join(types)} tensors through the stub"
            )
        try:
            server.start(timeout=300)
        except MmepackError as exc:
            raise MmepackError(
                f"{who}the Python {python} environment does not start under Triton's Python "
                f"backend stub, so it would fail on the endpoint too:\n{exc}"
            ) from None
        try:
            version = str(server.metadata().get("version", "?"))
            lost = echo_tensors(server.url, PROBE_MODEL, types)
        finally:
            server.stop()
        log_text = server.log_tail(400)
        if _OK_MARK not in log_text:
            raise MmepackError(
                f"{who}Triton reported the probe model ready but it never confirmed its imports; "
                f"server log:\n{server.log_tail()}"
            )
        if lost:
            raise MmepackError(
                f"{who}tensors were lost moving through Triton {version}'s Python backend stub "
                f"(Python {python}, {_imported_versions(log_text)}), so every request to this "
                "model's Python steps would fail the same way on the endpoint:\n  "
                + "\n  ".join(lost)
                + "\nIf numpy is 2.x, allow numpy<2 in requirements.txt (Triton's Python backend "
                "does not support numpy 2; see mmepack.triton.target.NUMPY_BY_TRITON)"
            )
    return ProofResult(tuple(modules), version, tuple(types))
