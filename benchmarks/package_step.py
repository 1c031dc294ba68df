"""One model's package step, this checkout against a baseline, in the same run.

What `./pants package models/screen_detector:` runs once its environment is built: `mmepack
package models/screen_detector --pull --env=... --stub=...` in a sandbox that holds the model's
files without its DVC-tracked working copies, `.dvc/config`, the repository's local DVC remote
and the built environment. The benchmark makes that sandbox once (the environment from
mmepack's environment cache, built by this checkout), then times the command in a fresh copy of
it per run, alternating between this checkout's `src/` and the baseline's on PYTHONPATH, both
with this interpreter and its packages. Wall and CPU seconds are printed: on a shared machine
the CPU seconds (the process and the children it waited for) are the steadier figure. The weights come from the warm DVC cache, as for every
package after the first. Each run is a new process, as in Pants, so imports count.

The baseline is a folder holding a checkout (its `src/` is used) or a git revision of this
repository (`git archive` of its `src/` into a temporary folder). The artifacts both write are
compared by sha256: they must be the same bytes.

Run from the repository root: `./pants run benchmarks/package_step.py -- [--baseline main]
[--runs 5]`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

MODEL = "models/screen_detector"
PYTHON = "3.12"  # the example's BUILD python_version
OUT = "__mmepack_out"
ENV = "python_env.tar.gz"
STUB = "triton_python_backend_stub"


def _repo() -> Path:
    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
    )
    return Path(top.stdout.strip())


def _baseline_src(baseline: str, repo: Path, scratch: Path) -> tuple[Path, str]:
    """The baseline's `src/` folder and a label for it."""
    folder = Path(baseline)
    if (folder / "src" / "mmepack").is_dir():
        return (folder / "src").resolve(), str(folder)
    rev = subprocess.run(
        ["git", "rev-parse", "--verify", f"{baseline}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = scratch / "baseline"
    target.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "src"], cwd=repo, capture_output=True, check=True
    )
    archive_path = scratch / "baseline.tar"
    archive_path.write_bytes(archive.stdout)
    with tarfile.open(archive_path) as tar:
        tar.extractall(target, filter="data")
    return target / "src", f"{baseline} ({rev[:12]})"


def _env(src: Path) -> dict[str, str]:
    """This interpreter's packages, with `src` first so its `mmepack` is the one imported."""
    here = {str(_repo() / "src"), str(_repo())}
    inherited = [p for p in sys.path if p and p not in here and not p.endswith("/src")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), *inherited])}


def _tracked_copies(model: Path) -> set[Path]:
    """Working copies of DVC-tracked files: Pants leaves them out of the sandbox."""
    return {dvc.with_suffix("") for dvc in model.rglob("*.dvc")}


def _make_sandbox(repo: Path, src: Path, template: Path) -> None:
    """The package process's inputs, as the plugin lays them out."""
    skipped = _tracked_copies(repo / MODEL)
    for source in sorted((repo / MODEL).rglob("*")):
        if source.is_dir() or any(s == source or s in source.parents for s in skipped):
            continue
        if source.name == "BUILD" or "__pycache__" in source.parts:
            continue
        target = template / source.relative_to(repo)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    (template / ".dvc").mkdir()
    shutil.copyfile(repo / ".dvc" / "config", template / ".dvc" / "config")
    shutil.copytree(repo / "dvc-remote", template / "dvc-remote")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mmepack",
            "build-env",
            f"--requirements={repo / MODEL / 'requirements.txt'}",
            f"--output={template / ENV}",
            f"--stub-output={template / STUB}",
            f"--python={PYTHON}",
        ],
        env=_env(src),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _supports(src: Path, flag: str) -> bool:
    shown = subprocess.run(
        [sys.executable, "-m", "mmepack", "package", "--help"],
        env=_env(src),
        capture_output=True,
        text=True,
        check=True,
    )
    return flag in shown.stdout


def _cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _package(src: Path, template: Path, run_dir: Path, report: bool) -> tuple[float, float, str]:
    """Wall and CPU seconds of one package process (its own children included) in a fresh
    sandbox, and its artifact's sha256."""
    shutil.copytree(template, run_dir)
    argv = [
        sys.executable,
        "-m",
        "mmepack",
        "package",
        MODEL,
        "--pull",
        "--repo-root=.",
        f"--output-dir={OUT}",
        f"--python={PYTHON}",
        f"--env={ENV}",
        *([f"--stub={STUB}"] if (template / STUB).is_file() else []),
        *(["--report=package-report.json"] if report else []),
    ]
    started, cpu = time.monotonic(), _cpu_seconds()
    done = subprocess.run(argv, cwd=run_dir, env=_env(src), capture_output=True, text=True)
    seconds, cpu = time.monotonic() - started, _cpu_seconds() - cpu
    if done.returncode != 0:
        raise SystemExit(f"package failed with {src}:\n{done.stderr}")
    (artifact,) = (run_dir / OUT).glob("*.tar.gz")
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    shutil.rmtree(run_dir)
    return seconds, cpu, digest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline", default="main", help="a checkout folder or a git revision (default main)"
    )
    parser.add_argument("--runs", type=int, default=5, help="runs of each, alternating")
    args = parser.parse_args()
    repo = _repo()
    current = repo / "src"
    with tempfile.TemporaryDirectory(prefix="mmepack-package-step-") as scratch_name:
        scratch = Path(scratch_name)
        base, label = _baseline_src(args.baseline, repo, scratch)
        template = scratch / "sandbox"
        template.mkdir()
        _make_sandbox(repo, current, template)
        sides = {"baseline": base, "this checkout": current}
        report = {name: _supports(src, "--report") for name, src in sides.items()}
        times: dict[str, list[float]] = {name: [] for name in sides}
        cpus: dict[str, list[float]] = {name: [] for name in sides}
        digests: dict[str, set[str]] = {name: set() for name in sides}
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        for name, src in sides.items():  # one untimed run each: DVC cache and page cache warm
            _package(src, template, scratch / "warm", report[name])
        for run in range(args.runs):
            for name, src in sides.items():
                seconds, cpu, digest = _package(src, template, scratch / f"run-{run}", report[name])
                times[name].append(seconds)
                cpus[name].append(cpu)
                digests[name].add(digest)
    print(f"{MODEL}: `mmepack package --pull --env ...` in a fresh sandbox, {args.runs} runs each")
    print(f"baseline: {label}; this checkout: {repo}; load average before: {load}")
    print(f"{'':<15}{'wall s: median':>15}{'min':>7}{'max':>7}{'CPU s: median':>15}{'min':>7}")
    for name in sides:
        wall, used = times[name], cpus[name]
        print(
            f"{name:<15}{statistics.median(wall):>15.2f}{min(wall):>7.2f}{max(wall):>7.2f}"
            f"{statistics.median(used):>15.2f}{min(used):>7.2f}"
        )
    for name in sides:
        print(f"{name} artifact sha256: {', '.join(sorted(digests[name]))}")
    for what, numbers in (("wall", times), ("CPU", cpus)):
        ratio = statistics.median(numbers["this checkout"]) / statistics.median(numbers["baseline"])
        print(f"this checkout / baseline, {what} medians: {ratio:.2f}")
    same = digests["baseline"] == digests["this checkout"] and len(digests["baseline"]) == 1
    print("artifacts: " + ("byte-identical" if same else "DIFFERENT"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
