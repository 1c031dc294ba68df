"""Environment builds for real: pip, conda-pack, the proof under Triton's stub, the cache, and a
model whose Python differs from the server's own stub, served by the real server."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from mmepack.build import package_model
from mmepack.environment.build import BuiltEnv, build_environment
from mmepack.environment.cache import EnvCache
from mmepack.environment.request import EnvOptions, EnvRequest
from mmepack.errors import MmepackError
from mmepack.names import PROGRESS_LOG
from mmepack.testing import python_stub_files, serve_artifact
from mmepack.triton.target import STUB_NAME, TargetServer
from tests.demo_models import write_ensemble_model

# The server's own stub in these tests runs the test interpreter's Python (3.11); the target
# server of the artifacts runs 3.10 (the default). The model environment below uses 3.12.
ENV_PYTHON = "3.12"

PYTHON_REPORTING_MODEL = """
import sys

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy()
            minor = np.full_like(data, sys.version_info.minor, dtype=np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", minor)]))
        return responses
"""


@pytest.fixture(autouse=True)
def machine_pip_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pants hides the machine's pip configuration from its processes; the builder is meant to
    # use it (index, certificates), as it does when the plugin runs it.
    monkeypatch.delenv("PIP_CONFIG_FILE", raising=False)


def _request(requirements: Path, python: str = ENV_PYTHON, label: str = "demo") -> EnvRequest:
    return EnvRequest(requirements=requirements, python=python, label=label)


PORTABLE = EnvOptions(builder="portable")


def _cache_entries(cache: EnvCache) -> list[str]:
    """What the builds left in the cache: entries, staging folders, anything but the lock files
    and the progress log every build appends to (for `tail -f` while Pants hides pip)."""
    return sorted(
        p.name
        for p in cache.root.iterdir()
        if not p.name.endswith(".lock") and p.name != PROGRESS_LOG
    )


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("env-cache")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, cache_root: Path) -> Iterator[BuiltEnv]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PIP_CONFIG_FILE", raising=False)
        work = tmp_path_factory.mktemp("env")
        requirements = work / "requirements.txt"
        requirements.write_text("numpy<2\n")
        yield build_environment(
            _request(requirements),
            work / "out" / "python_env.tar.gz",
            options=PORTABLE,
            stub_output=work / "out" / STUB_NAME,
            cache=EnvCache(cache_root),
        )


def test_first_build_is_proven_and_ships_the_stub_for_its_python(built: BuiltEnv) -> None:
    assert not built.cached
    assert built.python_version.startswith(f"{ENV_PYTHON}.")
    assert built.manifest["proven_imports"] == ["numpy"]
    assert built.manifest["proven_with_triton"] == "2.51.0"
    assert built.stub is not None and built.stub.name == STUB_NAME
    assert built.stub.stat().st_mode & 0o111


def test_identical_requirements_elsewhere_reuse_the_cached_build(
    built: BuiltEnv, cache_root: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other_model" / "requirements.txt"
    other.parent.mkdir()
    other.write_text("# same packages, written differently\nNumPy < 2\n")
    again = build_environment(
        _request(other, label="other"), tmp_path / "python_env.tar.gz", cache=EnvCache(cache_root)
    )
    assert again.cached
    assert again.archive.read_bytes() == built.archive.read_bytes()
    assert len(_cache_entries(EnvCache(cache_root))) == 1


def _infer_minor(url: str, model: str) -> float:
    client = httpclient.InferenceServerClient(url=url)
    try:
        tensor = httpclient.InferInput("IN", [1, 2], "FP32")
        tensor.set_data_from_numpy(np.zeros((1, 2), dtype=np.float32))
        result = client.infer(model, inputs=[tensor])
        return float(result.as_numpy("OUT")[0, 0])
    finally:
        client.close()


def _demo_model(root: Path) -> Path:
    model_dir = write_ensemble_model(root, env=True)
    (model_dir / "demo_double" / "1" / "model.py").write_text(PYTHON_REPORTING_MODEL)
    return model_dir


def test_model_with_another_python_than_the_server_runs_in_its_environment(
    built: BuiltEnv, tmp_path: Path
) -> None:
    model_dir = _demo_model(tmp_path / "demo")
    assert built.stub is not None
    result = package_model(model_dir, tmp_path / "dist", env_archive=built.archive, stub=built.stub)
    assert f"demo_double/{STUB_NAME}" in result.members
    with serve_artifact(result.path, route="repository") as served:
        assert _infer_minor(served.url, served.model_name) == int(ENV_PYTHON.split(".")[1])
        mapped = python_stub_files(served.server_pid)["demo_double"]
    libpython = [f for f in mapped if "libpython3" in f]
    assert libpython and all(f"libpython{ENV_PYTHON}" in f for f in libpython)
    assert all("python_env" in f for f in libpython), libpython
    # Triton unpacked the environment to /tmp/python_env_*; mmepack removes it with the server.
    unpacked = {f.split("/lib/")[0] for f in libpython}
    assert unpacked and not [u for u in unpacked if Path(u).exists()], unpacked


def test_same_model_without_the_stub_does_not_run_its_environment(
    built: BuiltEnv, tmp_path: Path
) -> None:
    """Why the stub ships: the server's own stub cannot run a 3.12 environment."""
    model_dir = _demo_model(tmp_path / "demo")
    target = TargetServer(stub_python=ENV_PYTHON)  # claims no stub is needed: wrong here
    result = package_model(
        model_dir,
        tmp_path / "dist",
        env_archive=built.archive,
        python=ENV_PYTHON,
        env_options=EnvOptions(target=target),
    )
    assert f"demo_double/{STUB_NAME}" not in result.members
    outcome: float | str
    try:
        with serve_artifact(result.path, route="repository") as served:
            outcome = _infer_minor(served.url, served.model_name)
    except (MmepackError, InferenceServerException, ValueError) as exc:
        # Seen here: the 3.11 stub answers with an empty tensor. On a host without this test's
        # Python it fails to load or hangs instead.
        outcome = f"failed: {exc}"
    assert outcome != int(ENV_PYTHON.split(".")[1])


def _wheel(directory: Path, name: str, init_source: str) -> Path:
    """A minimal pure-Python wheel, so the test needs no build backend."""
    files = {
        f"{name}/__init__.py": init_source.encode(),
        f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{name}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{name}-1.0.dist-info/RECORD,,")
    wheel = directory / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{name}-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def test_environment_that_cannot_import_a_requirement_is_neither_shipped_nor_cached(
    tmp_path: Path,
) -> None:
    wheel = _wheel(
        tmp_path,
        "needs_libfoo",
        'raise ImportError("libfoo.so.1: cannot open shared object file")\n',
    )
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"needs_libfoo @ {wheel.as_uri()}\nnumpy<2\n")
    cache = EnvCache(tmp_path / "cache")
    out = tmp_path / "out"
    with pytest.raises(MmepackError) as caught:
        build_environment(
            _request(requirements, python="3.11"), out / "env.tar.gz", options=PORTABLE, cache=cache
        )
    message = str(caught.value)
    assert message.startswith("model 'demo': the Python 3.11 environment does not start")
    assert "needs_libfoo" in message and "libfoo.so.1: cannot open shared object file" in message
    assert _cache_entries(cache) == []
    assert not out.exists() or list(out.iterdir()) == []


def test_uninstallable_requirement_fails_with_pip_reason_and_leaves_nothing(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("mmepack-no-such-package-for-tests==1.0\n")
    cache = EnvCache(tmp_path / "cache")
    out = tmp_path / "out"
    with pytest.raises(MmepackError) as caught:
        build_environment(
            _request(requirements, python="3.11"), out / "env.tar.gz", options=PORTABLE, cache=cache
        )
    message = str(caught.value)
    assert message.startswith(f"model 'demo': installing {requirements} failed")
    assert "mmepack-no-such-package-for-tests" in message
    assert "No matching distribution" in message
    assert _cache_entries(cache) == []
    assert not out.exists()


def test_missing_requirements_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(MmepackError, match=r"model 'demo': .*requirements.txt is missing"):
        build_environment(
            _request(tmp_path / "requirements.txt"),
            tmp_path / "env.tar.gz",
            options=PORTABLE,
            cache=EnvCache(tmp_path / "cache"),
        )


def test_unknown_python_version_explains_how_to_get_one(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy\n")
    target = TargetServer(stub_dir=tmp_path)  # so the stub check does not fail first
    (tmp_path / "3.4").mkdir()
    (tmp_path / "3.4" / STUB_NAME).write_bytes(b"")
    with pytest.raises(
        MmepackError, match=r"no shared-library CPython 3.4 found.*MMEPACK_PYTHON_3_4"
    ):
        build_environment(
            EnvRequest(requirements, "3.4"),
            tmp_path / "env.tar.gz",
            options=EnvOptions(builder="portable", target=target),
            cache=EnvCache(tmp_path / "cache"),
        )


def test_a_cache_hit_proves_tensor_types_the_cached_build_was_not_proven_with(
    built: BuiltEnv, cache_root: Path, tmp_path: Path
) -> None:
    assert "TYPE_STRING" not in built.manifest["proven_tensor_types"]
    requirements = tmp_path / "strings" / "requirements.txt"
    requirements.parent.mkdir()
    requirements.write_text("numpy<2\n")
    request = EnvRequest(
        requirements=requirements, python=ENV_PYTHON, label="strings", tensor_types=("TYPE_STRING",)
    )
    lines: list[str] = []
    again = build_environment(
        request, tmp_path / "python_env.tar.gz", cache=EnvCache(cache_root), log=lines.append
    )
    assert again.cached
    assert any("proving TYPE_STRING" in line for line in lines), lines
    assert "TYPE_STRING" in again.manifest["proven_tensor_types"]
    # Remembered: the next hit with the same types proves nothing again.
    lines.clear()
    third = build_environment(
        request, tmp_path / "third.tar.gz", cache=EnvCache(cache_root), log=lines.append
    )
    assert third.cached and not any("proving" in line for line in lines), lines
    assert third.archive.read_bytes() == built.archive.read_bytes()
