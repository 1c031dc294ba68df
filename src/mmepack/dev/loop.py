"""`mmepack dev`: edit a step of a model, see its cases answer in seconds.

`./pants test` proves the shipped artifact: it packs the tar, starts a SageMaker-style endpoint,
loads every step and runs the cases, which takes 10-15 s for the example on a busy laptop. A
data scientist editing one Python step does not need all of that each time. This loop builds
what the model needs once (the environment from mmepack's environment cache, the weights from
DVC), starts one Triton server in explicit model-control mode, and on each save:

1. runs the same static checks as `mmepack validate` and `mmepack check-cases` (a syntax error
   is shown at its line, and nothing is reloaded until it is fixed);
2. copies only the changed step folders into its staged repository and reloads them through
   Triton's repository API (requirements: the environment is rebuilt, then the Python steps);
3. runs the model's JSON cases with the test runner's invoke and compare code, so a failing
   case reads the same as under `./pants test`.

What it does not prove, said on every run's last line: the packed artifact, the SageMaker front
end, TargetModel loading and the environment's packing are not exercised; `./pants test` stays
the production-faithful route.
"""

from __future__ import annotations

import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from mmepack.build import python_tensor_types
from mmepack.cases.invoke import invoke, judge
from mmepack.cases.load import Case, CaseError, load_cases
from mmepack.cases.signature import read_signature
from mmepack.dev.changes import Plan, Snapshot, changed_paths, plan_changes, scan
from mmepack.dev.server import DevServer, LoadResult, loaded_models
from mmepack.dev.stage import StagedRepository, unpack_environment
from mmepack.environment.build import build_environment
from mmepack.environment.cache import EnvCache
from mmepack.environment.lock import lock_path, requirements_digest
from mmepack.environment.request import DEFAULT_PYTHON, EnvOptions, EnvRequest
from mmepack.errors import MmepackError
from mmepack.model.repository import ModelDirectory, read_model_directory
from mmepack.model.weights import pull_weights, tracked_files, verify_weights
from mmepack.names import CASES_GLOB, ENV_ARCHIVE, REQUIREMENTS_FILE, STUB_NAME
from mmepack.validate import validate_model_directory

Out = Callable[[str], None]
# How often the model directory is scanned, and how long a change must hold still before the
# loop acts on it (an editor's save is several writes).
POLL_SECONDS = 0.25
SETTLE_SECONDS = 0.05
# The server's own lines worth showing when a load fails: error records and Python errors,
# less what every CPU-only server prints.
_ERROR_RECORD_RE = re.compile(r"^E[0-9]{4} ")
_CPU_NOISE = ("CUDA driver version is insufficient", "CudaDriverHelper has not been initialized")
_PY_LOCATION_RE = re.compile(r"\(([\w.-]+\.py), line ([0-9]+)\)")


def _source_file(folder: Path, name: str) -> str:
    """The step's file the stub means by a bare name (its version folders hold the code)."""
    found = sorted(folder.glob(f"[0-9]*/{name}"))
    return str(found[-1]) if found else str(folder / name)


def _print(line: str) -> None:
    print(line, flush=True)


def route_line(model_dir: Path, served: bool = True) -> str:
    """The last line of every run: which route answered, and which one proves the artifact."""
    if not served:
        route = "answered by the static checks alone (nothing was reloaded or run)"
    else:
        route = (
            "answered by a local Triton through its repository API (explicit load of the edited "
            "steps from a staged copy), not by the packed artifact on the SageMaker front end"
        )
    return f"mmepack dev: {route}; `./pants test {model_dir}::` is the production-faithful check"


def syntax_excerpt(path: Path) -> list[str]:
    """`file:line:col: SyntaxError: msg`, the line and a caret, or nothing if it compiles."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    try:
        compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        line = exc.lineno or 0
        column = exc.offset or 0
        lines = [f"{path}:{line}:{column}: SyntaxError: {exc.msg}"]
        text = source.splitlines()[line - 1] if 0 < line <= len(source.splitlines()) else ""
        if text:
            lines.append(f"    {text}")
            lines.append("    " + " " * max(column - 1, 0) + "^")
        return lines
    return []


@dataclass
class CycleResult:
    """One save's outcome, for the printout, the benchmark and the tests."""

    changed: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    server_loaded: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # True when the static checks stopped the cycle: no server was asked anything.
    static_only: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and not self.failed


class DevLoop:
    """One model directory, one staged repository, one server."""

    def __init__(
        self,
        model_dir: Path,
        workdir: Path,
        *,
        cases_glob: str = CASES_GLOB,
        python: str = DEFAULT_PYTHON,
        env_options: EnvOptions | None = None,
        env_cache: EnvCache | None = None,
        repo_root: Path | None = None,
        out: Out = _print,
        isolate: bool = True,
    ) -> None:
        self.model_dir = model_dir
        self.workdir = workdir
        self.cases_glob = cases_glob
        self.python = python
        self.env_options = env_options or EnvOptions()
        self.env_cache = env_cache
        self.repo_root = repo_root
        self.out = out
        self.directory: ModelDirectory | None = None
        self.stage: StagedRepository | None = None
        self.server = DevServer(workdir / "repository", workdir, isolate=isolate)
        self.cases: list[Case] = []
        self.snapshot: Snapshot = {}
        self._env_generation = 0
        self._pending: set[str] = set()
        self._client: Any = None
        # The environment the staged steps use, what it was built from, and the one it replaced
        # (removed once the steps moved off it).
        self._env_key: tuple[str, bytes] | None = None
        self._retired_env: Path | None = None

    # ----- start-up -------------------------------------------------------------------------

    def _checked_directory(self) -> tuple[ModelDirectory | None, list[str]]:
        """The model re-read from disk, or the static problems that stop this cycle."""
        try:
            return self._read_checked()
        except (MmepackError, OSError) as exc:
            # Whatever a half-written folder makes the readers say, the loop goes on.
            return None, [str(exc)]

    def _read_checked(self) -> tuple[ModelDirectory | None, list[str]]:
        problems = [p for p in validate_model_directory(self.model_dir) if p.severity == "error"]
        if problems:
            lines = []
            for problem in problems:
                excerpt = syntax_excerpt(problem.file) if problem.file.suffix == ".py" else []
                # Python's own message, the line and a caret say more than the validator's.
                lines.append("\n".join(excerpt) if excerpt else str(problem))
            return None, list(dict.fromkeys(lines))
        directory = read_model_directory(self.model_dir)
        try:
            self.cases = load_cases(self.model_dir, self.cases_glob)
        except CaseError as exc:
            return None, [str(p) for p in exc.problems]
        return directory, []

    def _repo_root(self) -> Path:
        if self.repo_root is not None:
            return self.repo_root
        for folder in [self.model_dir.resolve(), *self.model_dir.resolve().parents]:
            if (folder / ".dvc").is_dir():
                return folder
        return Path.cwd()

    def _weights(self, directory: ModelDirectory) -> None:
        files = tracked_files(self.model_dir)
        if any(not f.path.exists() for f in files):
            self.out(f"mmepack dev: pulling the weights of '{directory.name}' (DVC)")
            pull_weights(directory.name, self._repo_root(), files)
        verify_weights(directory.name, files)

    def _environment(self, directory: ModelDirectory) -> None:
        """Build (or take from the cache) the environment and unpack it beside the repository."""
        assert self.stage is not None
        if not directory.python_env_models():
            self.stage.env_dir = None
            return
        started = time.monotonic()
        key = self._requirements_key()
        self._env_generation += 1
        scratch = self.workdir / f"env-build-{self._env_generation}"
        scratch.mkdir()
        request = EnvRequest(
            self.model_dir / REQUIREMENTS_FILE,
            self.python,
            directory.name,
            tensor_types=python_tensor_types(directory),
        )
        built = build_environment(
            request,
            scratch / ENV_ARCHIVE,
            options=self.env_options,
            stub_output=scratch / STUB_NAME,
            cache=self.env_cache,
            log=lambda message: self.out(f"mmepack dev: environment: {message}"),
        )
        unpacked = unpack_environment(built.archive, self.workdir / f"env-{self._env_generation}")
        previous = self.stage.env_dir
        self.stage.env_dir = unpacked
        self.stage.stub = built.stub
        self._env_key = key
        (scratch / ENV_ARCHIVE).unlink(missing_ok=True)
        how = "from the cache" if built.cached else "built"
        self.out(
            f"mmepack dev: environment for Python {built.python_version} {how} and unpacked in "
            f"{time.monotonic() - started:.1f} s"
        )
        if previous is not None:
            self._retired_env = previous

    def start(self, timeout: float = 300.0) -> CycleResult:
        """Check, build, stage, start the server, load the model and run its cases once."""
        started = time.monotonic()
        directory, problems = self._checked_directory()
        if directory is None:
            raise MmepackError(
                f"{self.model_dir}: fix these before the dev loop can start:\n  "
                + "\n  ".join(problems)
            )
        self.directory = directory
        self.stage = StagedRepository(self.workdir / "repository", directory)
        self._weights(directory)
        # After the pull, so weights put in place now are not taken for an edit.
        self.snapshot = scan(self.model_dir)
        self._environment(directory)
        self.stage.stage_all()
        self.server.start(timeout)
        offset = self.server.log_size()
        result = CycleResult(changed=[])
        loaded = self.server.load(directory.name, timeout)
        result.server_loaded = loaded_models(self.server.log_since(offset))
        if not loaded.ok:
            result.problems.append(self._load_error(loaded.error, offset))
        else:
            result.reloaded = [directory.name]
            self.out(
                f"mmepack dev: serving '{directory.name}' ({len(directory.models)} models) at "
                f"http://{self.server.url} on {self.server.device}, loaded in "
                f"{loaded.seconds:.1f} s"
            )
            self._run_cases(result)
        result.seconds = time.monotonic() - started
        self._report(result)
        return result

    # ----- one save -------------------------------------------------------------------------

    def _load_error(self, error: str, offset: int, name: str | None = None) -> str:
        """The server's reason, its own log lines about it, and file names the user edits."""
        assert self.stage is not None
        lines = [
            line
            for line in self.server.log_since(offset).splitlines()
            if (_ERROR_RECORD_RE.match(line) or "Traceback" in line or "Error" in line)
            and not any(noise in line for noise in _CPU_NOISE)
        ]
        text = error.strip()
        if lines:
            text += "\nserver log:\n  " + "\n  ".join(lines)
        if name is not None:
            folder = self.stage.model(name).folder
            # The stub names only the file: `SyntaxError: ... (model.py, line 14)`.
            text = _PY_LOCATION_RE.sub(
                lambda m: f"({_source_file(folder, m.group(1))}:{m.group(2)})", text
            )
        return self.stage.source_path(text)

    def _client_for_cases(self) -> Any:
        if self._client is None:
            import tritonclient.http as httpclient

            self._client = httpclient.InferenceServerClient(
                self.server.url, connection_timeout=60.0, network_timeout=120.0
            )
        return self._client

    def _run_cases(self, result: CycleResult) -> None:
        assert self.directory is not None and self.stage is not None
        if not self.cases:
            self.out(f"mmepack dev: no case files match {self.model_dir}/{self.cases_glob}")
            return
        signature = read_signature(self.model_dir)
        client = self._client_for_cases()
        for case in self.cases:
            answer = invoke(client, self.directory.name, case, signature)
            failure = judge(case, answer, self.server.device)
            if failure is None:
                result.passed.append(case.name)
            else:
                about = f" ({case.description})" if case.description else ""
                result.failed[case.name] = self.stage.source_path(f"{case.path}{about}:\n{failure}")

    def _requirements_key(self) -> tuple[str, bytes]:
        """What decides the environment: the requirements as pip reads them (comments and
        spacing left out) and the lock it installs from."""
        requirements = self.model_dir / REQUIREMENTS_FILE
        lock = lock_path(requirements)
        digest = requirements_digest(requirements) if requirements.is_file() else ""
        return digest, lock.read_bytes() if lock.is_file() else b""

    def _load_all(self, names: list[str]) -> list[LoadResult]:
        """Load several steps at once (Triton loads them in parallel), in the given order."""
        if len(names) == 1:
            return [self.server.load(names[0])]
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            return list(pool.map(self.server.load, names))

    def _reload(self, plan: Plan, result: CycleResult) -> None:
        """Stage and load what the plan names: the steps together, then the ensemble if its own
        config changed (Triton reloads an ensemble by itself when one of its steps reloads)."""
        assert self.directory is not None and self.stage is not None
        self.stage.directory = self.directory
        names = {m.name for m in self.directory.models}
        steps = set(plan.steps) | {n for n in plan.new_models if n in names}
        if plan.weights:
            self._weights(self.directory)
        if plan.environment:
            key = self._requirements_key()
            if key == self._env_key:
                self.out(
                    "mmepack dev: requirements changed only in comments or spacing: the "
                    "environment stays"
                )
            else:
                self.out("mmepack dev: requirements changed: rebuilding the Python environment")
                self._environment(self.directory)
                steps |= {m.name for m in self.directory.python_env_models()}
        ensemble = self.directory.ensemble
        order = sorted(s for s in steps if ensemble is None or s != ensemble.name)
        for name in order:
            self.stage.stage(name)
        if ensemble is not None and ensemble.name in steps:
            self.stage.stage(ensemble.name)
        offset = self.server.log_size()
        batches = [order] + ([[ensemble.name]] if ensemble and ensemble.name in steps else [])
        for batch in batches:
            if not batch:
                continue
            failed = False
            for loaded in self._load_all(batch):
                if loaded.ok:
                    result.reloaded.append(loaded.name)
                    continue
                failed = True
                result.problems.append(
                    f"reloading '{loaded.name}' failed; the server keeps serving its last good "
                    f"version:\n{self._load_error(loaded.error, offset, loaded.name)}"
                )
            if failed:
                break
        result.server_loaded = loaded_models(self.server.log_since(offset))
        retired, self._retired_env = self._retired_env, None
        if retired is not None and not result.problems:
            shutil.rmtree(retired, ignore_errors=True)

    def cycle(self, changed: list[str]) -> CycleResult:
        """Act on one batch of changed paths (relative to the model directory)."""
        if self.directory is None:
            raise MmepackError("the dev loop has not started; call start() first")
        started = time.monotonic()
        result = CycleResult(changed=list(changed))
        self.out(f"mmepack dev: saved {', '.join(changed)}")
        directory, problems = self._checked_directory()
        # A folder added since the last save is a model once it has a config.pbtxt.
        known = directory or self.directory
        # Saves that a failed check or load left unapplied are redone with this one: fixing a
        # typo in one step must not lose an earlier edit of another.
        pending = sorted(set(changed) | self._pending)
        plan = plan_changes(pending, {m.name for m in known.models}, self.cases_glob)
        if plan.ignored and not (plan.reloads or plan.cases or plan.new_models):
            self.out(
                "mmepack dev: nothing to reload: the dev loop does not serve "
                + ", ".join(plan.ignored)
            )
        if directory is None:
            result.problems.extend(problems)
            result.static_only = True
        else:
            self.directory = directory
            try:
                self._reload(plan, result)
            except (MmepackError, OSError) as exc:
                result.problems.append(str(exc))
            if not result.problems:
                self._run_cases(result)
        self._pending = set(pending) if result.problems else set()
        result.seconds = time.monotonic() - started
        self._report(result)
        return result

    def _report(self, result: CycleResult) -> None:
        for problem in result.problems:
            first, *rest = problem.splitlines() or [""]
            self.out("\n".join([f"mmepack dev: error: {first}", *(f"  {x}" for x in rest)]))
        if result.problems:
            self.out(
                "mmepack dev: FAILED before the cases ran; fix it and save again (the server "
                "keeps serving the last good version of each model)"
            )
        else:
            if result.reloaded:
                self.out(
                    f"mmepack dev: reloaded {', '.join(result.reloaded)} (the server's log: "
                    f"loaded {', '.join(result.server_loaded) or 'nothing'})"
                )
            for name in result.passed:
                self.out(f"PASS {name}")
            for name, failure in result.failed.items():
                self.out(f"FAIL {name}\n" + "\n".join(f"  {x}" for x in failure.splitlines()))
            verdict = "PASSED" if result.ok else "FAILED"
            self.out(
                f"mmepack dev: {verdict}: {len(result.passed)} passed, {len(result.failed)} "
                f"failed in {result.seconds:.2f} s"
            )
        self.out(route_line(self.model_dir, served=not result.static_only))

    # ----- watching -------------------------------------------------------------------------

    def poll(self) -> list[str]:
        """The files changed since the last poll, once they have held still."""
        current = scan(self.model_dir)
        changed = changed_paths(self.snapshot, current)
        while changed:
            time.sleep(SETTLE_SECONDS)
            settled = scan(self.model_dir)
            if settled == current:
                break
            current = settled
            changed = changed_paths(self.snapshot, current)
        self.snapshot = current
        return changed

    def watch(self, *, max_seconds: float | None = None, max_cycles: int | None = None) -> int:
        """Poll and act until interrupted (or a bound is reached); 0 if the last run passed."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        cycles = 0
        last_ok = True
        self.out(f"mmepack dev: watching {self.model_dir}; press Ctrl-C to stop")
        while deadline is None or time.monotonic() < deadline:
            if not self.server.running():
                raise MmepackError(
                    "the dev loop's Triton server stopped; its log ends:\n" + self.server.log_tail()
                )
            changed = self.poll()
            if changed:
                last_ok = self.cycle(changed).ok
                cycles += 1
                if max_cycles is not None and cycles >= max_cycles:
                    break
            else:
                time.sleep(POLL_SECONDS)
        return 0 if last_ok else 1

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()  # an open keep-alive connection would delay the server's exit
        self.server.stop()


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM ends the loop the way Ctrl-C does (server stopped, scratch removed)."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
