"""`pip install 'mmepack[serve]'` from the built wheel, in a fresh venv, serves and load-tests the
example's artifact (its ONNX step included) on the local endpoint.

This is the installation a team outside this repository gets, so everything runs from the
venv's own `bin/mmepack`, with a bare PATH (no activated venv, nothing of this checkout on
sys.path). pip uses the machine's own configuration (its index, find-links and certificates),
not the `PIP_CONFIG_FILE=/dev/null` Pants gives its subprocesses, and its cache.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmepack import __version__
from mmepack.extras import SERVE_MODULES
from mmepack.testing import find_artifact
from tests.cli_serving import COMMAND_SECONDS, EXAMPLE, all_answered, endpoint_process, loadtest

REPO_ROOT = Path(__file__).resolve().parents[1]
PIP_SECONDS = 1500
START_SECONDS = 120
BARE_PATH = "/usr/bin:/bin"


def _wheel() -> Path:
    """The `mmepack` wheel: in the sandbox root under Pants (runtime_package_dependencies), else
    in dist/ after `./pants package src/mmepack:dist`."""
    for root in (Path.cwd(), REPO_ROOT / "dist"):
        found = sorted(root.glob("mmepack-*-py3-none-any.whl"))
        if found:
            assert len(found) == 1, f"several mmepack wheels in {root}: {found}"
            return found[0]
    raise AssertionError("no mmepack wheel: run `./pants package src/mmepack:dist` first")


def _base_python() -> Path:
    """The interpreter under the test's own venv (a venv made from a venv would share it)."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    path = Path(sys.base_prefix) / "bin" / name
    assert path.is_file(), f"{path}: expected the base interpreter of {sys.executable}"
    return path


def _pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PIP_CONFIG_FILE"}
    env["PATH"] = BARE_PATH
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run_env() -> dict[str, str]:
    keep = ("HOME", "TMPDIR", "LANG", "MMEPACK_TEST_SLOTS_DIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PATH"] = BARE_PATH
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([str(_base_python()), "-m", "venv", str(root)], check=True, timeout=120)
    started = time.monotonic()
    # `mmepack-contract==<version>`, which the wheel requires, is built beside it (the plugin's
    # wheel requires it too); the rest comes from the machine's index.
    pip = subprocess.run(
        [
            str(root / "bin" / "pip"),
            "install",
            "--quiet",
            f"--find-links={_wheel().parent}",
            f"{_wheel()}[serve]",
        ],
        env=_pip_env(),
        capture_output=True,
        text=True,
        timeout=PIP_SECONDS,
    )
    assert pip.returncode == 0, pip.stdout[-4000:] + pip.stderr[-4000:]
    print(f"pip install 'mmepack[serve]' took {time.monotonic() - started:.0f} s")
    return root


def test_wheel_metadata_names_the_serve_extra() -> None:
    with zipfile.ZipFile(_wheel()) as wheel:
        wheel_names = wheel.namelist()
        (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        text = wheel.read(metadata).decode("utf-8")
        entry_points = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
        assert entry_points and "mmepack = mmepack.cli:main" in wheel.read(entry_points[0]).decode()
    assert f"\nVersion: {__version__}\n" in text
    # The one contract with the plugin is its own distribution, at the same version, not a copy.
    assert f"\nRequires-Dist: mmepack-contract (=={__version__})\n" in text
    assert not [n for n in wheel_names if n.startswith("mmepack_contract/")]
    serve = set(re.findall(r"^Requires-Dist: ([A-Za-z0-9_.\-\[\]]+).*extra == .serve.", text, re.M))
    base = {
        line.split()[1] for line in text.splitlines() if line.startswith("Requires-Dist: ")
    } - serve
    # Every module the commands check for comes with the extra, and not with every install.
    assert set(SERVE_MODULES.values()) <= serve
    assert not {"nvidia-pytriton", "onnxruntime-gpu", "onnxruntime"} & base


def test_installed_version_is_the_package_version(venv: Path) -> None:
    out = subprocess.run(
        [str(venv / "bin" / "mmepack"), "--version"],
        env=_run_env(),
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=True,
    )
    assert out.stdout.strip() == f"mmepack {__version__}"
    assert _wheel().name.startswith(f"mmepack-{__version__}-")


@pytest.fixture()
def endpoint(venv: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`mmepack endpoint ARTIFACT --port 0` from the venv: (runtime URL, its process)."""
    command = [
        str(venv / "bin" / "mmepack"),
        "endpoint",
        str(find_artifact(EXAMPLE)),
        "--port",
        "0",
    ]
    with endpoint_process(command, _run_env(), tmp_path / "endpoint.err", START_SECONDS) as running:
        yield running


def test_endpoint_serves_the_example_to_a_loadtest(
    venv: Path, endpoint: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    url, owner = endpoint
    target = find_artifact(EXAMPLE).name
    summary = loadtest(
        [str(venv / "bin" / "mmepack")],
        _run_env(),
        tmp_path / "report",
        "--endpoint-url",
        url,
        "--endpoint-name",
        "local",
        "--target-model",
        target,
    )
    sent = all_answered(summary)
    # The endpoint itself counted the same invokes, none failed.
    owner.send_signal(signal.SIGINT)
    owner.wait(timeout=60)
    assert owner.returncode == 0
    log = (tmp_path / "endpoint.err").read_text()
    served = json.loads(log.split("mmepack: summary ", 1)[1].splitlines()[0])
    assert served["Invocations"] == sent
    assert served["Invocation4XXErrors"] == served["Invocation5XXErrors"] == 0


def test_loadtest_on_the_artifact_starts_its_own_endpoint(venv: Path, tmp_path: Path) -> None:
    summary = loadtest(
        [str(venv / "bin" / "mmepack")],
        _run_env(),
        tmp_path / "report",
        str(find_artifact(EXAMPLE)),
    )
    assert all_answered(summary) >= 2
