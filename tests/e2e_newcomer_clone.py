"""A newcomer's first model, from a clean clone of this commit, through every Pants goal.

Issue 11's "done means": `mmepack new` scaffolds a model that passes `./pants tailor`, `lint`,
`check`, `package` and `test` untouched. This clones the commit it sits in (so commit first),
follows the README's "Start a model" steps the Pants way, and asserts each one succeeds, that
the artifact exists and that its test really ran against the server (pytest's passed count).
On the way it checks two more promises:

- the CLI (`dist/src.mmepack/cli.pex package`) and `./pants package` write the same bytes;
- a `./pants package` that fails leaves no earlier artifact of the model in `dist/`.

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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
MODEL = "tiny_adder"
# `mmepack new` with the user's steps and tensors (the checks below use preprocess and model).
NEW = "--step preprocess:python --step model:onnx --step post:python --input TEXT:TYPE_STRING:1 --output LABEL:TYPE_STRING:1".split()  # noqa: E501
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
        "new (./pants run cli)", "run", "src/mmepack:cli", "--", "new", f"models/{MODEL}", *NEW
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


def test_newcomer_model_passes_every_goal_in_a_clean_clone(tmp_path: Path) -> None:
    steps = newcomer_path(tmp_path)
    print(steps.report())


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="mmepack-newcomer-") as workdir:
        print(newcomer_path(Path(workdir)).report())
