"""A newcomer's first model, from a clean clone of this commit, through every Pants goal.

Issue 11's "done means": `mmepack new` scaffolds a model that passes `./pants tailor`, `lint`,
`check`, `package` and `test` untouched. This clones the commit it sits in (so commit first),
follows the README's "Start a model" steps the Pants way, and asserts each one succeeds, that
the artifact exists and that its test really ran against the server (pytest's passed count).
On the way it checks two more promises:

- the CLI (`dist/src.mmepack/cli.pex package`) and `./pants package` write the same bytes;
- a `./pants package` that fails leaves no earlier artifact of the model in `dist/`;
- issue 27 (`drift_and_tested_publish`): a weight rewritten without recording it is reported by
  `lint` and `package`; recorded, the test fails readably; `./pants publish` on main refuses
  the untested artifact and uploads the tested one once (a moto S3 server on loopback).

Cost: minutes (about ten Pants runs without pantsd in a fresh build root), so it is not part of
`./pants test ::`; `ci/newcomer.sh` runs it on every CI run. It keeps to the machine's named
caches (`~/.cache/pants`, mmepack's environment and DVC caches under `~/.cache/mmepack`), so
CI's cached runs are warm. It needs only the standard library and Python 3.11 (the CLI PEX's):

    python3.11 tests/e2e_newcomer_clone.py      # or: python -m pytest -s <this file>

Every subprocess is bounded by STEP_TIMEOUT_S. It prints how long each step took.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
MODEL = "tiny_adder"
ARTIFACT = f"dist/mme/{MODEL}_1.tar.gz"
CLI_PEX = "dist/src.mmepack/cli.pex"
STEP_TIMEOUT_S = 900
_PASSED_RE = re.compile(r"=+ (?:.*?, )?(\d+) passed")


class Steps:
    """Runs each command in the clone, bounded in time, and keeps how long it took."""

    def __init__(self, clone: Path, env: dict[str, str]) -> None:
        self.clone = clone
        self.env = env
        self.seconds: list[tuple[str, float]] = []

    def run(
        self, name: str, argv: list[str], *, ok: bool = True, env: dict[str, str] | None = None
    ) -> str:
        started = time.monotonic()
        done = subprocess.run(
            argv,
            cwd=self.clone,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )
        self.seconds.append((name, time.monotonic() - started))
        output = f"{done.stdout}\n{done.stderr}"
        logs = self.clone.parent / "logs"
        logs.mkdir(exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        (logs / f"{len(self.seconds):02d}-{slug}.log").write_text(output)
        print(f"--- {name}: exit {done.returncode}, {self.seconds[-1][1]:.1f} s", flush=True)
        if ok:
            assert done.returncode == 0, f"{name}: {argv} failed:\n{output[-8000:]}"
        else:
            assert done.returncode != 0, f"{name}: {argv} should have failed:\n{output[-4000:]}"
        return output

    def pants(self, name: str, *args: str, ok: bool = True) -> str:
        return self.run(name, ["./pants", "--no-pantsd", *args], ok=ok)

    def report(self) -> str:
        lines = [f"{name:<28} {seconds:8.1f} s" for name, seconds in self.seconds]
        total = sum(seconds for _, seconds in self.seconds)
        return "\n".join([*lines, f"{'total':<28} {total:8.1f} s"])


def _python311() -> str:
    """The CLI PEX is built for CPython 3.11 (pants.toml's interpreter constraints)."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    assert found, "the CLI PEX needs python3.11 on PATH"
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=True
    ).stdout.strip()


def _passed(output: str) -> int:
    """pytest's passed count from the summary lines Pants shows (`[test].output = "all"`)."""
    return sum(int(count) for count in _PASSED_RE.findall(output))


def newcomer_path(workdir: Path) -> Steps:
    """Every step the README gives a newcomer, asserted; returns the timings."""
    commit = _git("rev-parse", "HEAD", cwd=CHECKOUT)
    clone = workdir / "clone"
    _git("clone", "-q", str(CHECKOUT), str(clone), cwd=workdir)
    _git("checkout", "-q", "-B", "newcomer", commit, cwd=clone)
    assert _git("status", "--porcelain", cwd=clone) == "", "a clean clone has no changes"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PEX_")}
    steps = Steps(clone, env)
    model = clone / "models" / MODEL

    # README "Start a model", the Pants way.
    said = steps.pants(
        "new (./pants run cli)", "run", "src/mmepack:cli", "--", "new", f"models/{MODEL}"
    )
    assert f"created models/{MODEL}" in said and "tracked by DVC" in said, said[-3000:]
    onnx = model / f"{MODEL}_model" / "1" / "model.onnx"
    assert onnx.with_name("model.onnx.dvc").is_file()
    steps.pants("lock-envs", "lock-envs", f"models/{MODEL}:{MODEL}")
    assert "numpy==1." in (model / "requirements.lock").read_text()
    # `dvc push`: the build reads the weights from the DVC remote only. The DVC the newcomer
    # runs is the one the CLI PEX carries (the same pinned version as the build's).
    steps.pants("package cli.pex", "package", "src/mmepack:cli")
    steps.run(
        "dvc push",
        [_python311(), CLI_PEX, "push"],
        env={**env, "PEX_SCRIPT": "dvc"},
    )

    before = set(_git("status", "--porcelain", "--untracked-files=all", cwd=clone).splitlines())
    steps.pants("tailor", "tailor", "::")
    after = set(_git("status", "--porcelain", "--untracked-files=all", cwd=clone).splitlines())
    tailored = sorted(line[3:] for line in after - before if line.endswith("BUILD"))
    print(f"--- tailor wrote: {tailored or 'nothing'}")
    scope = [f"models/{MODEL}::"] + [
        f"{os.path.dirname(path)}:" for path in tailored if not path.startswith(f"models/{MODEL}/")
    ]
    steps.pants("lint", "lint", *scope)
    steps.pants("check", "check", *scope)
    steps.pants("package", "package", f"models/{MODEL}:{MODEL}")
    artifact = clone / ARTIFACT
    assert artifact.is_file(), f"./pants package wrote no {ARTIFACT}"
    tested = steps.pants("test", "test", f"models/{MODEL}/tests:")
    assert _passed(tested) > 0, f"no test passed against the server:\n{tested[-4000:]}"
    assert not re.search(r"\d+ (failed|errors?)\b", tested), tested[-4000:]

    # One build definition: the CLI reads the BUILD file's python_version and writes the same
    # bytes as Pants.
    cli_dist = workdir / "cli-dist"
    steps.run(
        "mmepack package (CLI)",
        [_python311(), CLI_PEX, "package", f"models/{MODEL}", "--pull", f"--output-dir={cli_dist}"],
    )
    cli_artifact = cli_dist / artifact.name
    assert _sha256(cli_artifact) == _sha256(artifact), "the CLI and Pants built different bytes"

    # A failed build leaves no earlier artifact to publish: break the model, package again.
    config = model / f"{MODEL}_preprocess" / "config.pbtxt"
    config.write_text(config.read_text().replace(f'name: "{MODEL}_preprocess"', 'name: "wrong"'))
    failed = steps.pants("package (broken model)", "package", f"models/{MODEL}:{MODEL}", ok=False)
    assert "mmepack: error:" in failed, failed[-4000:]
    assert f"Removed {ARTIFACT}" in failed, failed[-4000:]
    assert not artifact.exists(), "a failed ./pants package left the earlier artifact in dist/"
    return steps


# --------------------------------------------------------------------------- issue 27's phase
# Self-contained after the flow above: it needs only the clone, the model and the CLI PEX.

_BUMP_WEIGHT = """
import sys, onnx
from onnx import numpy_helper
model = onnx.load(sys.argv[1])
first = model.graph.initializer[0]
first.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(first) + 1.0, first.name))
onnx.save(model, sys.argv[1])
"""
_CONFTEST = (
    '"""Reports the served artifact and records the run (see mmepack.testing.pytest_plugin)."""\n'
    "\nfrom mmepack.testing.pytest_plugin import pytest_terminal_summary  # noqa: F401\n"
)


def _start_moto(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A moto S3 server on loopback, from this interpreter (ci/newcomer.sh installs it)."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        raise AssertionError(
            f"the publish phase needs moto[server] for {sys.executable}; ci/newcomer.sh "
            "installs it"
        ) from None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (workdir / "moto.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
            return process, url
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "moto did not start"
            time.sleep(0.3)


def _s3(url: str, method: str, path: str) -> int:
    """An unsigned request to moto (which accepts it for creating a bucket)."""
    request = urllib.request.Request(f"{url}/{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _puts(workdir: Path, key: str) -> int:
    """How many uploads of `key` moto stored, from its request log (reading an object back
    would need signed requests)."""
    log = (workdir / "moto.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines() if f'"PUT /{key} HTTP' in line and '" 200 ' in line)


def drift_and_tested_publish(steps: Steps, workdir: Path) -> None:
    """Issue 27: a weight changed without recording it is reported by lint and package; once
    recorded, the model's test fails readably; production refuses the untested artifact and
    takes the tested one, once ("unchanged" the second time, never "published")."""
    clone = steps.clone
    model = clone / "models" / MODEL
    # The flow above ends with a broken config; put every model name back.
    for config in model.glob("*/config.pbtxt"):
        text = config.read_text()
        config.write_text(text.replace('name: "wrong"', f'name: "{config.parent.name}"'))
    tests = model / "tests"
    if not (tests / "conftest.py").exists():
        # What the example's tests have (its hook writes the test record publishing needs).
        (tests / "conftest.py").write_text(_CONFTEST)
        with (tests / "BUILD").open("a") as build:
            build.write('\npython_test_utils(name="test_utils")\n')
    [onnx] = [p for p in model.glob("*/1/model.onnx") if p.with_name("model.onnx.dvc").is_file()]
    relative = onnx.relative_to(clone)
    original = onnx.read_bytes()
    cli = [_python311(), CLI_PEX]

    # A weight rewritten without recording it: lint and package say which file and how.
    steps.run(
        "rewrite weight",
        [_python311(), CLI_PEX, "-c", _BUMP_WEIGHT, str(relative)],
        env={**steps.env, "PEX_INTERPRETER": "1"},
    )
    assert onnx.read_bytes() != original
    linted = steps.pants("lint (drift)", "lint", f"models/{MODEL}::", ok=False)
    assert f"{relative} differs from its DVC record" in linted, linted[-4000:]
    assert f"mmepack add-weights {relative}" in linted, linted[-4000:]
    packaged = steps.pants("package (drift)", "package", f"models/{MODEL}:{MODEL}", ok=False)
    assert f"{relative} differs from its DVC record" in packaged, packaged[-4000:]

    # Recorded (with mmepack alone, no dvc): the model's test now fails, readably.
    steps.run("add-weights", [*cli, "add-weights", str(relative)])
    steps.run("push-weights", [*cli, "push-weights", f"models/{MODEL}"])
    failed = steps.pants("test (new weight)", "test", f"models/{MODEL}::", ok=False)
    assert re.search(r"Mismatched elements|<- differs", failed), failed[-4000:]

    moto, url = _start_moto(workdir)
    try:
        for bucket in ("newcomer-staging", "newcomer-production"):
            assert _s3(url, "PUT", bucket) == 200
        publish = [
            "publish",
            f"models/{MODEL}:{MODEL}",
            "--mmepack-publish-branch=main",
            "--mmepack-publish-staging-bucket=newcomer-staging",
            "--mmepack-publish-production-bucket=newcomer-production",
        ]
        s3_env = {
            **steps.env,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": url,
        }
        key = f"newcomer-production/{MODEL}_1.tar.gz"

        # Its last test run failed: production refuses these bytes and says how to test them.
        refused = steps.run(
            "publish (untested)", ["./pants", "--no-pantsd", *publish], ok=False, env=s3_env
        )
        assert "refusing to publish to production: " in refused, refused[-4000:]
        assert _puts(workdir, key) == 0

        # The original weight again, recorded; its test passes and records these bytes.
        onnx.write_bytes(original)
        steps.run("add-weights (original)", [*cli, "add-weights", str(relative)])
        tested = steps.pants("test (original weight)", "test", f"models/{MODEL}::")
        assert _passed(tested) > 0, tested[-4000:]
        accepted = steps.run("publish (tested)", ["./pants", "--no-pantsd", *publish], env=s3_env)
        assert f"s3://{key} (uploaded)" in accepted, accepted[-4000:]
        assert _puts(workdir, key) == 1
        again = steps.run("publish (again)", ["./pants", "--no-pantsd", *publish], env=s3_env)
        assert "unchanged" in again and not re.search(r"published\.", again), again[-4000:]
        assert _puts(workdir, key) == 1
    finally:
        moto.terminate()
        moto.wait(timeout=30)


def test_newcomer_model_passes_every_goal_in_a_clean_clone(tmp_path: Path) -> None:
    steps = newcomer_path(tmp_path)
    drift_and_tested_publish(steps, tmp_path)
    print(steps.report())


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="mmepack-newcomer-") as workdir:
        steps = newcomer_path(Path(workdir))
        drift_and_tested_publish(steps, Path(workdir))
        print(steps.report())
