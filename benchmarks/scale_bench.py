"""Dozens of models in one repository: how Pants' caching holds up as the model count grows.

In a fresh `git clone` of this checkout's HEAD (commit first), it generates N copies of the
example model with distinct names (`models/screen_detector_s000/`, ...: every folder, Triton
model name and file that names the model renamed), commits them, and times with pantsd on:

- `./pants package ::`: first, no-op (nothing changed), and after editing one copy's ensemble
  `config.pbtxt` (which models were repackaged is counted from Pants' "Completed: Package" log
  lines: a process answered from the cache logs none);
- `./pants lint ::`: first and no-op;
- `./pants test` on the first K copies' tests (`--test-models K`; 0 skips it, since every model
  test starts a real Triton server);
- the disk used by `dist/` and the growth of Pants' local store;
- two floors for the no-op `package`: `./pants --version` (the client's round trip to pantsd)
  and re-copying dist/'s bytes the way Pants' package goal writes them on every run (it deletes
  each artifact and copies it again from its store with copy_file_range, even when unchanged).

Each timed command is printed with the 1-minute load average when it ended: the machine is
shared, and no figure means much without it.

The copies share the example's requirements, so they share one environment build, as models
with identical requirements do; the clone shares this user's Pants caches (named caches and
store), as a developer's second checkout does. Run from the repository root:

    PYTHONPATH=src python benchmarks/scale_bench.py [--models 50] [--test-models 0] [--rev HEAD]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = "screen_detector"
_COMPLETED_PACKAGE = re.compile(r"Completed: Package (\S+) for SageMaker MME")


def copy_model(repo: Path, source: str, name: str) -> Path:
    """Copy `models/<source>` (its git-tracked files) to `models/<name>`, renaming every folder,
    file and text that names the model, so the copy is a model of its own."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", f"models/{source}"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.decode()
    destination = repo / "models" / name
    for relative in filter(None, listed.split("\0")):
        inside = Path(relative).relative_to(Path("models") / source)
        target = destination / Path(*(part.replace(source, name) for part in inside.parts))
        target.parent.mkdir(parents=True, exist_ok=True)
        data = (repo / relative).read_bytes()
        try:
            target.write_text(data.decode("utf-8").replace(source, name), encoding="utf-8")
        except UnicodeDecodeError:
            target.write_bytes(data)
    return destination


@dataclass
class Timed:
    seconds: float
    output: str


def run(cmd: list[str], cwd: Path, timeout: float, check: bool = True) -> Timed:
    """Run and time `cmd`, after flushing earlier writes to disk; `check=False` for a goal
    whose verdict is not what is measured (lint reports the copies' formatting, and does the
    same work either way)."""
    # Flush what earlier steps wrote (the first package writes GBs into dist/ and Pants' store),
    # so each step is not charged for the previous one's writeback.
    os.sync()
    started = time.monotonic()
    done = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    seconds = time.monotonic() - started
    print(
        f"scale_bench: {' '.join(cmd)}: {seconds:.1f} s (exit {done.returncode}, load "
        f"{os.getloadavg()[0]:.1f})",
        flush=True,
    )
    if check and done.returncode != 0:
        sys.exit(
            f"mmepack: error: {' '.join(cmd)} failed (exit {done.returncode}) in {cwd}:\n"
            f"{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
        )
    return Timed(seconds, done.stdout + done.stderr)


def copy_file(source: Path, destination: Path) -> None:
    """Copy with copy_file_range, as Pants' store materialises a file (Rust's std::fs::copy)."""
    size = source.stat().st_size
    with source.open("rb") as src, destination.open("wb") as dst:
        copied = 0
        while copied < size:
            done = os.copy_file_range(src.fileno(), dst.fileno(), size - copied)
            if done == 0:
                break
            copied += done


def rewrite_floor(dist: Path, scratch: Path) -> float:
    """Seconds to do what Pants' package goal does to dist/ on a no-op run, on the same
    filesystem: delete every file, then copy the same bytes back, all files at once as Pants'
    store does (pants/engine/fs `write_digest`, the store's `materialize_directory`, at
    release_2.17.1). The copies are made once untimed (the "previous run"), then deleted and
    copied again, timed; `scratch` is removed."""
    files = [p for p in dist.rglob("*") if p.is_file() and not p.is_symlink()]
    targets = [scratch / p.relative_to(dist) for p in files]
    for source, target in zip(files, targets):
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_file(source, target)
    os.sync()  # as before each timed Pants run (see `run`)
    started = time.monotonic()
    for target in targets:  # Pants clears every artifact's path first, one by one
        target.unlink()
    # then materialises the files concurrently (one blocking task per file)
    with ThreadPoolExecutor(max_workers=len(files) or 1) as pool:
        list(pool.map(copy_file, files, targets))
    seconds = time.monotonic() - started
    shutil.rmtree(scratch)
    total = sum(p.stat().st_size for p in files)
    print(
        f"scale_bench: delete and copy again {len(files)} files of dist/ "
        f"({total / 2**30:.2f} GiB): {seconds:.1f} s (load {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    return seconds


def du_bytes(path: Path) -> int:
    if not path.exists():
        return 0
    # Allocated blocks, not sizes: LMDB files are sparse.
    return sum(
        p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file() and not p.is_symlink()
    )


def pants_store() -> Path:
    configured = os.environ.get("PANTS_LOCAL_STORE_DIR")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "pants" / "lmdb_store"


def stop_pantsd(clone: Path) -> None:
    """Stop the pantsd this benchmark started in its clone (by its own pid file)."""
    for pid_file in clone.glob(".pids/*/pantsd/pid"):
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        except (ValueError, ProcessLookupError):
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50, help="copies of the example (50)")
    parser.add_argument(
        "--test-models", type=int, default=0, help="run the tests of this many copies (0: skip)"
    )
    parser.add_argument(
        "--rev",
        default="HEAD",
        help="commit of this checkout to clone and measure (HEAD); another one, e.g. main, "
        "gives a baseline on the same machine and caches",
    )
    parser.add_argument("--workdir", type=Path, help="where to clone (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the clone afterwards")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per Pants command, s")
    args = parser.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="mmepack-scale-"))
    clone = work / "repo"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    revision = subprocess.run(
        ["git", "rev-parse", "--verify", f"{args.rev}^{{commit}}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(["git", "checkout", "--quiet", "--detach", revision], cwd=clone, check=True)
    names = [f"{EXAMPLE}_s{i:03d}" for i in range(args.models)]
    for name in names:
        copy_model(clone, EXAMPLE, name)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "add", "models"], cwd=clone, check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "scale_bench models"], cwd=clone, check=True)
    total = args.models + 1  # the copies and the example itself
    store = pants_store()
    store_before = du_bytes(store)
    pants = ["./pants", "--pantsd"]
    results: dict[str, float | int | str] = {"models": total, "revision": revision[:12]}
    try:
        first = run([*pants, "package", "::"], clone, args.timeout)
        results["package_first_s"] = first.seconds
        results["package_first_ran"] = len(_COMPLETED_PACKAGE.findall(first.output))
        noop = run([*pants, "package", "::"], clone, args.timeout)
        results["package_noop_s"] = noop.seconds
        results["package_noop_ran"] = len(_COMPLETED_PACKAGE.findall(noop.output))
        results["pants_version_s"] = run([*pants, "--version"], clone, args.timeout).seconds
        results["dist_rewrite_floor_s"] = rewrite_floor(clone / "dist", work / "dist-floor")
        edited = clone / "models" / names[0] / names[0] / "config.pbtxt"
        # A new text each run: an edit seen before would be answered from Pants' cache.
        edited.write_text(edited.read_text() + f"# scale_bench: one edit {time.time_ns()}\n")
        one = run([*pants, "package", "::"], clone, args.timeout)
        results["package_one_edit_s"] = one.seconds
        repackaged = sorted(set(_COMPLETED_PACKAGE.findall(one.output)))
        results["package_one_edit_ran"] = ", ".join(repackaged) or "none"
        lint = [*pants, "lint", "::"]
        results["lint_first_s"] = run(lint, clone, args.timeout, check=False).seconds
        results["lint_noop_s"] = run(lint, clone, args.timeout, check=False).seconds
        if args.test_models:
            targets = [f"models/{n}/tests:" for n in names[: args.test_models]]
            results["test_models"] = len(targets)
            results["test_s"] = run([*pants, "test", *targets], clone, args.timeout).seconds
        results["dist_bytes"] = du_bytes(clone / "dist")
        results["dist_mme_artifacts"] = len(list((clone / "dist" / "mme").glob("*.tar.gz")))
        results["store_growth_bytes"] = du_bytes(store) - store_before
        results["store_bytes"] = du_bytes(store)
    finally:
        stop_pantsd(clone)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(f"scale_bench: {total} models (the example and {args.models} copies), pantsd on")
    for key, value in results.items():
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        if key.endswith("_bytes") and isinstance(value, int):
            shown = f"{value / 2**30:.2f} GiB"
        print(f"  {key:24} {shown}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
