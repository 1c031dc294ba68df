"""A newcomer's first model, from a clean clone of this commit, as the getting-started page says.

Issue 26: the page's commands are the test. `run_getting_started` reads every ```` ```bash ````
block of `docs/getting-started/first-model.md` (the docs' convention: exactly those blocks are
the newcomer's steps, in page order), runs them as written in one `bash -euo pipefail` session
from the root of a fresh clone, times each command (bash's xtrace, with `$EPOCHREALTIME`, on a
separate file descriptor) and checks the outcome: the model the page created is packaged and its
test passed against the server (pytest's passed count). Nothing of the page is copied here:
change the page and this test runs the new commands.

Further phases follow the page's, each in its own function, on the same clone:

- the CLI (`dist/src.mmepack/cli.pex package`) and `./pants package` write the same bytes;
- a `./pants package` that fails leaves no earlier artifact of the model in `dist/`;
- issue 27 (`drift_and_tested_publish`): a weight rewritten without recording it is reported by
  `lint` and `package`; recorded, the test fails readably; `./pants publish` on main refuses
  the untested artifact and uploads the tested one once (a moto S3 server on loopback).

Cost: minutes (Pants runs in a fresh build root), so it is not part of `./pants test ::`;
`ci/newcomer.sh` runs it on every CI run. It keeps to the machine's named caches
(`~/.cache/pants`, mmepack's environment and DVC caches under `~/.cache/mmepack`), so CI's
cached runs are warm; `MMEPACK_NEWCOMER_CACHE=<empty folder>` points `XDG_CACHE_HOME` (Pants,
pip, mmepack, the ./pants launcher) and `PEX_ROOT` (where the CLI PEX unpacks on its first run,
`~/.pex` otherwise) there instead, for a cold measurement that leaves the machine's caches
alone. The page runs with the PATH of the shell that started the test, without the entries a
pyenv shim (`python3.11`) put in front of it: Pants keys its process cache on PATH, so with them
no `./pants` run from a shell would share a cache entry with the test (`newcomer_env`). It
needs only the standard library and Python 3.11 (the CLI PEX's):

    python3.11 tests/e2e_newcomer_clone.py      # or: python -m pytest -s <this file>
    MMEPACK_NEWCOMER_KEEP=/tmp/nc python3.11 tests/e2e_newcomer_clone.py   # keeps logs/
    MMEPACK_NEWCOMER_PAGE_ONLY=1 ...            # stops once the page's model is green

Every subprocess is bounded by STEP_TIMEOUT_S (the page's whole session by PAGE_TIMEOUT_S). It
prints how long each command took, and the total from `git clone` to the page's last command.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
PAGE = "docs/getting-started/first-model.md"
CLI_PEX = "dist/src.mmepack/cli.pex"
STEP_TIMEOUT_S = 900
PAGE_TIMEOUT_S = 2400
# The bound, from `git clone` to the page's last command green (reported, not asserted:
# a shared machine's load decides much of it).
GOAL_S = 600
_PASSED_RE = re.compile(r"=+ (?:.*?, )?(\d+) passed")
_FENCE_RE = re.compile(r"^```bash[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*")
_PANTSD_START_TIMEOUT = "seconds while waiting for pantsd to start"
_NEW_MODEL_RE = re.compile(r"\bnew (?:\S+/)?models/([A-Za-z0-9_]+)")


class Steps:
    """Runs each command in the clone, bounded in time, and keeps how long it took."""

    def __init__(self, clone: Path, env: dict[str, str]) -> None:
        self.clone = clone
        self.env = env
        self.seconds: list[tuple[str, float]] = []

    def log(self, name: str, output: str) -> None:
        logs = self.clone.parent / "logs"
        logs.mkdir(exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]
        (logs / f"{len(self.seconds):02d}-{slug}.log").write_text(output)

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
        self.log(name, output)
        print(f"--- {name}: exit {done.returncode}, {self.seconds[-1][1]:.1f} s", flush=True)
        if ok:
            assert done.returncode == 0, f"{name}: {argv} failed:\n{output[-8000:]}"
        else:
            assert done.returncode != 0, f"{name}: {argv} should have failed:\n{output[-4000:]}"
        return output

    def pants(self, name: str, *args: str, ok: bool = True) -> str:
        return self.run(name, ["./pants", "--no-pantsd", *args], ok=ok)

    def total(self, first: int = 0, last: int | None = None) -> float:
        return sum(seconds for _, seconds in self.seconds[first:last])

    def report(self) -> str:
        lines = [f"{seconds:8.1f} s  {name}" for name, seconds in self.seconds]
        return "\n".join([*lines, f"{self.total():8.1f} s  total"])


def _python311() -> str:
    """The CLI PEX is built for CPython 3.11 (pants.toml's interpreter constraints)."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    assert found, "the CLI PEX needs python3.11 on PATH"
    return found


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages: on a shared 2-core machine they decide
    much of every figure this test prints, so they are printed with them."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=True
    ).stdout.strip()


def _passed(output: str) -> int:
    """pytest's passed count from the summary lines Pants shows (`[test].output = "all"`)."""
    return sum(int(count) for count in _PASSED_RE.findall(output))


def page_blocks(page: Path) -> list[str]:
    """The text of every block the page opens with exactly ```` ```bash ````, in page order."""
    blocks = _FENCE_RE.findall(page.read_text())
    assert blocks, f"{page}: no ```bash block; the newcomer's commands live there"
    return [block.rstrip("\n") for block in blocks]


def page_model(blocks: list[str]) -> str:
    """The model the page creates (`... new models/<name>`): what the later checks look at."""
    found = _NEW_MODEL_RE.search("\n".join(blocks))
    assert found, f"{PAGE}: no `mmepack new models/<name>` command in its bash blocks"
    return found.group(1)


def _timed_commands(trace: str, ended: float) -> list[tuple[str, float]]:
    """(command, seconds) for each top-level command of an xtrace written with PS4='+ <time> '.

    Nested commands (`++`, command substitutions) count toward the command that runs them.
    """
    started: list[tuple[str, float]] = []
    for line in trace.splitlines():
        if not line.startswith("+ "):
            continue
        stamp, _, command = line[2:].partition(" ")
        try:
            started.append((command, float(stamp)))
        except ValueError:
            continue
    # `PEX_SCRIPT=dvc python3.11 ...`: bash traces the assignment on a line of its own; name the
    # command with it.
    joined: list[tuple[str, float]] = []
    for command, at in started:
        if joined and _ASSIGNMENT.fullmatch(joined[-1][0]):
            joined[-1] = (f"{joined[-1][0]} {command}", joined[-1][1])
        else:
            joined.append((command, at))
    stops = [at for _, at in joined[1:]] + [ended]
    return [(command, stop - at) for (command, at), stop in zip(joined, stops)]


def run_getting_started(steps: Steps) -> str:
    """The getting-started page's commands as written, one bash session; returns their output.

    Each top-level command's time goes into `steps`, named by the command as bash ran it.
    """
    blocks = page_blocks(steps.clone / PAGE)
    trace = steps.clone.parent / "page.xtrace"
    script = steps.clone.parent / "page.sh"
    # xtrace on fd 9 (its own file), each line stamped with bash's clock; then the page.
    script.write_text(
        f"exec 9>\"{trace}\"\nBASH_XTRACEFD=9\nPS4='+ $EPOCHREALTIME '\nset -x\n"
        + "\n".join(blocks)
        + "\n"
    )
    print(f"--- {PAGE}: {sum(len(b.splitlines()) for b in blocks)} lines", flush=True)
    print(f"--- load average before the page: {load_average()}", flush=True)
    started = time.time()
    done = subprocess.run(
        ["bash", "-euo", "pipefail", str(script)],
        cwd=steps.clone,
        env=steps.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=PAGE_TIMEOUT_S,
        check=False,
    )
    ended = time.time()
    print(f"--- load average after the page: {load_average()}", flush=True)
    commands = _timed_commands(trace.read_text() if trace.is_file() else "", ended)
    for command, seconds in commands:
        steps.seconds.append((f"page: {command}", seconds))
        print(f"--- page: {command}: {seconds:.1f} s", flush=True)
    steps.log("page", done.stdout)
    assert done.returncode == 0, (
        f"{PAGE}: the command `{commands[-1][0] if commands else '?'}` failed (exit "
        f"{done.returncode}); the page's commands must work as written in a fresh clone:\n"
        f"{done.stdout[-8000:]}"
    )
    return done.stdout


def clone_checkout(workdir: Path, env: dict[str, str]) -> Steps:
    """`git clone` of this commit (what the page's reader starts from), timed."""
    commit = _git("rev-parse", "HEAD", cwd=CHECKOUT)
    clone = workdir / "clone"
    steps = Steps(clone, env)
    steps.clone = workdir
    steps.run("git clone", ["git", "clone", "-q", str(CHECKOUT), str(clone)])
    steps.clone = clone
    _git("checkout", "-q", "-B", "newcomer", commit, cwd=clone)
    assert _git("status", "--porcelain", cwd=clone) == "", "a clean clone has no changes"
    return steps


def shell_path(path: str, pyenv_root: str | None) -> str:
    """PATH without the entries a pyenv shim puts in front of it before running Python.

    `python3.11` through pyenv's shim runs with `<root>/versions/<v>/bin`, `<root>/libexec` and
    each `<root>/plugins/<p>/bin` prepended. A reader's shell has none of them, and Pants puts
    PATH into its pex processes' keys (`--python-path`, their PATH), so with them the page's
    `./pants` runs miss every process-cache entry a shell made, and the reverse: the CLI PEX's
    requirements were built again in each run of this test although the machine's cache held
    them. Only that leading run of entries goes; the rest stays as the user set it.
    """
    if not pyenv_root:
        return path
    root = pyenv_root.rstrip("/")
    added = re.compile(rf"{re.escape(root)}/(?:versions/[^/]+/bin|libexec|plugins/[^/]+/bin)/?")
    entries = path.split(os.pathsep)
    while entries and added.fullmatch(entries[0]):
        entries.pop(0)
    return os.pathsep.join(entries)


def newcomer_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PEX_")}
    env["PATH"] = shell_path(env.get("PATH", os.defpath), env.get("PYENV_ROOT"))
    cold = os.environ.get("MMEPACK_NEWCOMER_CACHE")
    if cold:
        cache = Path(cold).resolve()
        assert not cache.exists() or not any(cache.iterdir()), f"{cache}: not an empty folder"
        cache.mkdir(parents=True, exist_ok=True)
        env["XDG_CACHE_HOME"] = str(cache)
        # The CLI PEX unpacks itself under PEX_ROOT (~/.pex) on its first run: a newcomer's is
        # empty too.
        env["PEX_ROOT"] = str(cache / "pex")
        for variable in ("MMEPACK_ENV_CACHE", "MMEPACK_DVC_CACHE", "MMEPACK_CACHE_DIR"):
            env.pop(variable, None)
    return env


def stop_pantsd(clone: Path) -> None:
    """The page runs ./pants as a reader would, with pantsd; stop the clone's own daemon (by the
    pid file under its build root) so no process outlives the test."""
    for pid_file in clone.glob(".pids/*/pantsd/pid"):
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
        except (ValueError, OSError):
            continue
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.5)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)


def artifact_of(clone: Path, model: str) -> Path:
    version = (clone / "models" / model / "model_version.txt").read_text().strip()
    return clone / "dist" / "mme" / f"{model}_{version}.tar.gz"


def first_model(workdir: Path) -> tuple[Steps, str]:
    """From `git clone` to the page's first model green; returns the steps and the model.

    On a machine this busy, a pantsd can take longer to start than the 60 s Pants' client waits
    for it (a fixed bound in Pants 2.17), which says nothing about the page: then, and only
    then, the clone is made again and the page run once more, and the report says so.
    """
    env = newcomer_env(workdir)
    for attempt in (1, 2):
        steps = clone_checkout(workdir, env)
        try:
            output = run_getting_started(steps)
            break
        except AssertionError as failed:
            if attempt == 2 or _PANTSD_START_TIMEOUT not in str(failed):
                raise
            print("--- pantsd did not start within Pants' 60 s; page run again", flush=True)
            stop_pantsd(steps.clone)
            shutil.rmtree(steps.clone)
        finally:
            stop_pantsd(steps.clone)
    model = page_model(page_blocks(steps.clone / PAGE))
    artifact = artifact_of(steps.clone, model)
    assert artifact.is_file(), f"the page's commands wrote no {artifact.relative_to(steps.clone)}"
    assert _passed(output) > 0, f"no test passed against the server:\n{output[-4000:]}"
    # A count of failures or errors other than 0 (lint's summary says "0 errors").
    assert not re.search(r"\b[1-9]\d* (failed|errors?)\b", output), output[-4000:]
    return steps, model


def cli_and_pants_agree(steps: Steps, model: str, workdir: Path) -> None:
    """One build definition: the CLI reads the BUILD file's python_version and writes the same
    bytes as Pants."""
    if not (steps.clone / CLI_PEX).is_file():
        steps.pants("package cli.pex", "package", "src/mmepack:cli")
    cli_dist = workdir / "cli-dist"
    steps.run(
        "mmepack package (CLI)",
        [_python311(), CLI_PEX, "package", f"models/{model}", "--pull", f"--output-dir={cli_dist}"],
    )
    artifact = artifact_of(steps.clone, model)
    cli_artifact = cli_dist / artifact.name
    assert _sha256(cli_artifact) == _sha256(artifact), "the CLI and Pants built different bytes"


def failed_package_leaves_nothing(steps: Steps, model: str) -> None:
    """A failed build leaves no earlier artifact to publish: break the model, package again."""
    artifact = str(artifact_of(steps.clone, model).relative_to(steps.clone))
    config = steps.clone / "models" / model / f"{model}_preprocess" / "config.pbtxt"
    config.write_text(config.read_text().replace(f'name: "{model}_preprocess"', 'name: "wrong"'))
    failed = steps.pants("package (broken model)", "package", f"models/{model}:{model}", ok=False)
    assert "mmepack: error:" in failed, failed[-4000:]
    assert f"Removed {artifact}" in failed, failed[-4000:]
    assert not (steps.clone / artifact).exists(), "a failed ./pants package left the artifact"


def newcomer_path(workdir: Path) -> Steps:
    """The page's path, then every further phase on the same clone; returns the timings."""
    steps, model = first_model(workdir)
    page_done = len(steps.seconds)
    print(
        f"--- from git clone to {model} green: {steps.total(0, page_done):.1f} s "
        f"(goal {GOAL_S} s)",
        flush=True,
    )
    if os.environ.get("MMEPACK_NEWCOMER_PAGE_ONLY"):
        # The measurement alone (issue 26's bound); CI runs every phase.
        return steps
    cli_and_pants_agree(steps, model, workdir)
    failed_package_leaves_nothing(steps, model)
    drift_and_tested_publish(steps, workdir, model)
    return steps


# --------------------------------------------------------------------------- issue 27's phase
# Self-contained after the flow above: it needs only the clone, the model and the CLI PEX.

# The first floating-point weight, plus one, in its own type (an integer initializer such as a
# reduction's axes must stay as it is, or the graph no longer loads).
_BUMP_WEIGHT = """
import sys, onnx
from onnx import numpy_helper
model = onnx.load(sys.argv[1])
floats = [i for i in model.graph.initializer if numpy_helper.to_array(i).dtype.kind == "f"]
assert floats, sys.argv[1] + ": no floating-point initializer to change"
array = numpy_helper.to_array(floats[0])
floats[0].CopyFrom(numpy_helper.from_array((array + 1).astype(array.dtype), floats[0].name))
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


def drift_and_tested_publish(steps: Steps, workdir: Path, name: str) -> None:
    """Issue 27: a weight changed without recording it is reported by lint and package; once
    recorded, the model's test fails readably; production refuses the untested artifact and
    takes the tested one, once ("unchanged" the second time, never "published")."""
    clone = steps.clone
    model = clone / "models" / name
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
    linted = steps.pants("lint (drift)", "lint", f"models/{name}::", ok=False)
    assert f"{relative} differs from its DVC record" in linted, linted[-4000:]
    assert f"mmepack add-weights {relative}" in linted, linted[-4000:]
    packaged = steps.pants("package (drift)", "package", f"models/{name}:{name}", ok=False)
    assert f"{relative} differs from its DVC record" in packaged, packaged[-4000:]

    # Recorded (with mmepack alone, no dvc): the model's test now fails, readably.
    steps.run("add-weights", [*cli, "add-weights", str(relative)])
    steps.run("push-weights", [*cli, "push-weights", f"models/{name}"])
    failed = steps.pants("test (new weight)", "test", f"models/{name}::", ok=False)
    assert re.search(r"Mismatched elements|<- differs", failed), failed[-4000:]

    moto, url = _start_moto(workdir)
    try:
        for bucket in ("newcomer-staging", "newcomer-production"):
            assert _s3(url, "PUT", bucket) == 200
        publish = [
            "publish",
            f"models/{name}:{name}",
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
        key = f"newcomer-production/{name}_1.tar.gz"

        # Its last test run failed: production refuses these bytes and says how to test them.
        refused = steps.run(
            "publish (untested)", ["./pants", "--no-pantsd", *publish], ok=False, env=s3_env
        )
        assert "refusing to publish to production: " in refused, refused[-4000:]
        assert _puts(workdir, key) == 0

        # The original weight again, recorded; its test passes and records these bytes.
        onnx.write_bytes(original)
        steps.run("add-weights (original)", [*cli, "add-weights", str(relative)])
        tested = steps.pants("test (original weight)", "test", f"models/{name}::")
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
    print(newcomer_path(tmp_path).report())


if __name__ == "__main__":
    # MMEPACK_NEWCOMER_KEEP=<folder>: work there and keep it (each command's log is in logs/).
    kept = os.environ.get("MMEPACK_NEWCOMER_KEEP")
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=False)
        print(newcomer_path(Path(kept)).report())
    else:
        with tempfile.TemporaryDirectory(prefix="mmepack-newcomer-") as workdir:
            print(newcomer_path(Path(workdir)).report())
