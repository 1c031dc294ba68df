"""Crafted model folders and interrupted runs: package and validate refuse, never crash or hang.

Each test builds the hostile input for real (links, FIFOs, non-UTF-8 bytes, killed processes)
and runs the library or the CLI on it; none of them mocks the file system.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from mmepack.artifact.writer import read_members
from mmepack.build import package_model
from mmepack.cli import main
from mmepack.environment.cache import ARCHIVE, EnvCache, EnvKey
from mmepack.environment.requirements import read_requirements, requirement_names
from mmepack.errors import MmepackError
from mmepack.files import clean_stale_scratch, scratch_dir
from mmepack.testing import unpack_like_mme
from mmepack.validate import validate_model_directory
from tests.demo_models import ENSEMBLE_CONFIG, write_ensemble_model

# The CLI in a child process, as a user runs it (`-c` rather than `-m mmepack`, whose
# __main__ module Pants does not put in a test's sandbox).
CLI = [
    sys.executable,
    "-c",
    "import sys; from mmepack.cli import main; sys.exit(main(sys.argv[1:]))",
]


def _model(tmp_path: Path, *, env: bool = False) -> Path:
    return write_ensemble_model(tmp_path / "demo", env=env)


def _env(tmp_path: Path) -> Path:
    env = tmp_path / "python_env.tar.gz"
    env.write_bytes(b"stand-in: these tests never load the environment")
    return env


def _package(model_dir: Path, tmp_path: Path, **kwargs: object) -> list[str]:
    result = package_model(model_dir, tmp_path / "dist", **kwargs)  # type: ignore[arg-type]
    return read_members(result.path)


def _refused(model_dir: Path, tmp_path: Path, needle: str, **kwargs: object) -> None:
    """package refuses naming `needle`, validate reports it as an error, nothing is written."""
    with pytest.raises(MmepackError) as info:
        _package(model_dir, tmp_path, **kwargs)
    assert needle in str(info.value), str(info.value)
    errors = [str(p) for p in validate_model_directory(model_dir) if p.severity == "error"]
    assert any(needle in e for e in errors), errors
    assert not list((tmp_path / "dist").glob("*")) if (tmp_path / "dist").exists() else True


# ------------------------------------------------------------------ 2. only safe files ship


def test_link_out_of_the_model_folder_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = planted\n")
    model_dir = _model(tmp_path)
    link = model_dir / "demo_double" / "1" / "extra.txt"
    link.symlink_to(secret)
    _refused(model_dir, tmp_path, str(link))


def test_linked_model_folder_and_config_are_refused(tmp_path: Path) -> None:
    outside = write_ensemble_model(tmp_path / "elsewhere")
    model_dir = _model(tmp_path)
    config = model_dir / "demo_double" / "config.pbtxt"
    config.unlink()
    config.symlink_to(outside / "demo_double" / "config.pbtxt")
    _refused(model_dir, tmp_path, str(config))

    model_dir2 = write_ensemble_model(tmp_path / "two" / "demo")
    step = model_dir2 / "demo_double"
    os.rename(step, tmp_path / "moved_step")
    step.symlink_to(tmp_path / "moved_step")
    _refused(model_dir2, tmp_path / "two", str(step))


def test_link_inside_the_folder_ships_as_a_regular_file(tmp_path: Path) -> None:
    model_dir = _model(tmp_path)
    version = model_dir / "demo_double" / "1"
    (version / "labels.txt").write_text("cat\ndog\n")
    (version / "labels_link.txt").symlink_to("labels.txt")
    members = _package(model_dir, tmp_path)
    assert "demo_double/1/labels_link.txt" in members
    with tarfile.open(tmp_path / "dist" / "demo_1.tar.gz") as tar:
        member = tar.getmember("demo_double/1/labels_link.txt")
        assert member.isreg()
        handle = tar.extractfile(member)
        assert handle is not None and handle.read() == b"cat\ndog\n"


@pytest.mark.parametrize("hidden", [".env", ".git/config", ".secrets/key"])
def test_hidden_files_are_refused(tmp_path: Path, hidden: str) -> None:
    model_dir = _model(tmp_path)
    path = model_dir / "demo_double" / hidden
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("TOKEN=planted\n")
    shown = model_dir / "demo_double" / hidden.split("/")[0]
    _refused(model_dir, tmp_path, f"{shown}: file: hidden files are not shipped")


def test_allowed_hidden_and_build_files_never_ship(tmp_path: Path) -> None:
    model_dir = _model(tmp_path)
    step = model_dir / "demo_double"
    (step / ".gitignore").write_text("*.onnx\n")
    (step / "BUILD").write_text("python_sources()\n")
    (step / "1" / "BUILD.pants").write_text("python_sources()\n")
    (step / "1" / "sub").mkdir()
    (step / "1" / "sub" / "BUILD").write_text("files()\n")
    (step / "1" / "sub" / "data.bin").write_bytes(b"\x00\x01")
    members = _package(model_dir, tmp_path)
    assert "demo_double/1/sub/data.bin" in members
    assert not [m for m in members if m.rsplit("/", 1)[-1].startswith(("BUILD", ".git"))]


def test_fifo_in_a_model_folder_is_refused(tmp_path: Path) -> None:
    model_dir = _model(tmp_path)
    fifo = model_dir / "demo_double" / "1" / "pipe"
    os.mkfifo(fifo)
    _refused(model_dir, tmp_path, f"{fifo}: file: is a FIFO")


@pytest.mark.parametrize(
    "path, needle",
    [("/etc/passwd", "must be a relative path"), ("../../../outside.bin", "must be a relative")],
)
def test_dvc_paths_must_stay_inside(tmp_path: Path, path: str, needle: str) -> None:
    model_dir = _model(tmp_path)
    dvc = model_dir / "demo_double" / "1" / "weights.bin.dvc"
    dvc.write_text(f"outs:\n- md5: 0123456789abcdef0123456789abcdef\n  path: {path}\n")
    _refused(model_dir, tmp_path, needle)


# ------------------------------------------------------------------ 6. package validates first


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    "case, needle",
    [
        ("ensemble pattern in a comment", "matches SageMaker's ensemble pattern"),
        ("step names a missing model", "which is not a model folder"),
        ("max_batch_size out of range", "Triton refuses to load it"),
    ],
)
def test_package_refuses_what_validate_refuses(tmp_path: Path, case: str, needle: str) -> None:
    model_dir = _model(tmp_path)
    step_config = model_dir / "demo_double" / "config.pbtxt"
    ensemble_config = model_dir / "demo" / "config.pbtxt"
    if case == "ensemble pattern in a comment":
        step_config.write_text(step_config.read_text() + '# was platform: "ensemble" once\n')
    elif case == "step names a missing model":
        _edit(ensemble_config, 'model_name: "demo_double"', 'model_name: "demo_gone"')
    else:
        _edit(ensemble_config, "max_batch_size: 4", "max_batch_size: 64")
    _refused(model_dir, tmp_path, needle)


@pytest.mark.parametrize("existing", ["python_env.tar.gz", "triton_python_backend_stub"])
def test_env_path_colliding_with_a_model_file_is_refused(tmp_path: Path, existing: str) -> None:
    model_dir = _model(tmp_path, env=True)
    (model_dir / "demo_double" / existing).write_bytes(b"the author's own file")
    stub = tmp_path / "stub"
    stub.write_bytes(b"stub")
    _refused(
        model_dir, tmp_path, "would be silently replaced", env_archive=_env(tmp_path), stub=stub
    )


# ------------------------------------------------------------------ 7. no crash, no hang


def _long_ensemble(root: Path, steps: int, *, cycle: bool = False) -> Path:
    """An ensemble of `steps` chained steps, all running one Python model."""
    model_dir = write_ensemble_model(root)
    lines = []
    for index in range(steps):
        source = "IN" if index == 0 else f"T{index}"
        if cycle and index == 0:
            source = f"T{steps}"
        target = "OUT" if index == steps - 1 and not cycle else f"T{index + 1}"
        lines.append(
            f'  step {{ model_name: "demo_double" model_version: -1\n'
            f'    input_map {{ key: "IN" value: "{source}" }}\n'
            f'    output_map {{ key: "OUT" value: "{target}" }} }}'
        )
    header = ENSEMBLE_CONFIG.split("ensemble_scheduling")[0].format(name="demo")
    body = "ensemble_scheduling {\n" + "\n".join(lines) + "\n}\n"
    (model_dir / "demo" / "config.pbtxt").write_text(header + body)
    return model_dir


@pytest.mark.parametrize("steps, budget", [(1000, 10.0), (5000, 30.0)])
def test_long_ensembles_validate_fast_without_recursion(
    tmp_path: Path, steps: int, budget: float
) -> None:
    model_dir = _long_ensemble(tmp_path / "chain", steps)
    started = time.monotonic()
    problems = validate_model_directory(model_dir)
    elapsed = time.monotonic() - started
    assert [p for p in problems if p.severity == "error"] == []
    assert elapsed < budget, f"{steps} steps took {elapsed:.1f} s"

    cyclic = _long_ensemble(tmp_path / "cycle", steps, cycle=True)
    problems = validate_model_directory(cyclic)
    assert any("steps form a cycle" in p.message for p in problems)


def _cli(args: list[str], timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), **env},
    )


def test_fifo_named_config_does_not_hang(tmp_path: Path) -> None:
    model_dir = _model(tmp_path)
    config = model_dir / "demo_double" / "config.pbtxt"
    config.unlink()
    os.mkfifo(config)
    for args in (
        ["package", str(model_dir), "--output-dir", str(tmp_path / "d")],
        ["validate", str(model_dir)],
    ):
        done = _cli(args)  # a hang would raise TimeoutExpired
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert f"{config}: file: is a FIFO" in done.stdout + done.stderr


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Model directories each broken in one way, and the text the error must contain."""
    cases: dict[str, tuple[Path, str]] = {}

    def make(name: str) -> Path:
        return write_ensemble_model(tmp_path / name / "demo")

    d = make("version_latin1")
    (d / "model_version.txt").write_bytes(b"\xff\xfe1\n")
    cases["non-UTF-8 version"] = (d, "model_version.txt: the version file is not UTF-8")
    d = make("dvc_latin1")
    (d / "demo_double" / "1" / "w.bin.dvc").write_bytes(b"outs:\n- path: \xff\n")
    cases["non-UTF-8 .dvc"] = (d, "w.bin.dvc: the DVC file is not UTF-8")
    d = make("dvc_dir")
    (d / "demo_double" / "1" / "w.bin.dvc").mkdir()
    cases[".dvc is a folder"] = (d, "w.bin.dvc: is a folder")
    d = make("config_dir")
    (d / "demo_double" / "config.pbtxt").unlink()
    (d / "demo_double" / "config.pbtxt").mkdir()
    cases["config is a folder"] = (d, "config.pbtxt: file: is a folder")
    d = make("config_latin1")
    (d / "demo_double" / "config.pbtxt").write_bytes(b'name: "demo_double" \xff\n')
    cases["non-UTF-8 config"] = (d, "not UTF-8")
    d = make("long_version")
    (d / "model_version.txt").write_text("7" * 250 + "\n")
    cases["250-digit version"] = (d, "longer than 255 bytes")
    return cases


def test_bad_inputs_give_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for case, (model_dir, needle) in _bad_inputs(tmp_path).items():
        for command in ("package", "validate"):
            args = [command, str(model_dir)]
            if command == "package":
                args += ["--output-dir", str(tmp_path / "dist")]
            assert main(args) == 1, f"{case}: {command}"
            captured = capsys.readouterr()
            text = captured.out + captured.err
            assert needle in text, f"{case}: {command}: {text}"
            assert "Traceback" not in text
        assert not list((tmp_path / "dist").glob("*")) if (tmp_path / "dist").exists() else True


def test_240_digit_version_packages(tmp_path: Path) -> None:
    """`demo_<240 digits>.tar.gz` is 252 bytes: a valid file name, so it must just work (its
    partial file used to exceed 255 bytes and crash)."""
    model_dir = _model(tmp_path)
    (model_dir / "model_version.txt").write_text("7" * 240 + "\n")
    assert package_model(model_dir, tmp_path / "dist").path.name == f"demo_{'7' * 240}.tar.gz"


def test_non_utf8_requirements_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_bytes(b"pillow\n\xff\xfe\n")
    args = ["build-env", "--requirements", str(requirements), "--output", str(tmp_path / "e")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"mmepack: error: {requirements}: the requirements file is not UTF-8" in err


def test_full_disk_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    """A write limit stands in for a full disk: the kernel fails the write (EFBIG) the same
    way it fails it with ENOSPC, at the same place in the writer."""
    model_dir = _model(tmp_path)
    (model_dir / "demo_double" / "1" / "big.bin").write_bytes(os.urandom(400_000))
    out = tmp_path / "dist"

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    done = subprocess.run(
        [*CLI, "package", str(model_dir), "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    assert done.returncode == 1, done.stderr
    assert "mmepack: error: " in done.stderr and "cannot write the artifact" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    "case, needle",
    [
        ("random", "cannot unpack it as a gzip tar"),
        ("truncated", "cannot unpack it as a gzip tar"),
        ("dotdot", "leaves the artifact's folder"),
        ("symlink", "is a link"),
    ],
)
def test_serve_refuses_malformed_tars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, needle: str
) -> None:
    good = package_model(_model(tmp_path), tmp_path / "dist").path
    bad = tmp_path / "bad" / "demo_1.tar.gz"
    bad.parent.mkdir()
    if case == "random":
        bad.write_bytes(os.urandom(3000))
    elif case == "truncated":
        bad.write_bytes(good.read_bytes()[:-200])
    else:
        with tarfile.open(bad, "w:gz") as tar:
            info = tarfile.TarInfo("demo/../../escape" if case == "dotdot" else "demo/link")
            if case == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info, None)
    with pytest.raises(MmepackError, match=needle):
        unpack_like_mme(bad, tmp_path / "unpacked")
    assert main(["serve", str(bad)]) == 1
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_serve_without_server_packages_says_where_to_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As from the CLI PEX, which leaves mmepack.testing and the server packages out.
    # None in sys.modules makes the import raise ImportError; typeshed types the values as modules.
    monkeypatch.setitem(sys.modules, "mmepack.testing", None)  # type: ignore[misc]
    artifact = tmp_path / "demo_1.tar.gz"
    assert main(["serve", str(artifact)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mmepack: error: `mmepack serve` needs nvidia-pytriton")
    assert f"./pants run src/mmepack/endpoint/__main__.py -- {artifact}" in err
    assert "test environment" not in err and "Traceback" not in err


# ------------------------------------------------------------------ 5. requirements includes


def test_requirements_includes_are_covered_and_imported(tmp_path: Path) -> None:
    main_file = tmp_path / "requirements.txt"
    main_file.write_text("pillow\n-r extra.txt\n-c constraints.txt\n")
    (tmp_path / "extra.txt").write_text("requests==2.31.0\n--requirement=more/deeper.txt\n")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "deeper.txt").write_text("PyYAML\n")
    (tmp_path / "constraints.txt").write_text("urllib3<2\n")

    def key() -> str:
        return EnvKey.of(read_requirements(main_file), "3.12", "b").digest

    text = read_requirements(main_file)
    assert requirement_names(text) == ["pillow", "requests", "pyyaml"]  # not urllib3
    before = key()
    (tmp_path / "extra.txt").write_text("requests==2.32.0\n--requirement=more/deeper.txt\n")
    assert key() != before, "an -r include changed: the cache key must change"
    middle = key()
    (tmp_path / "more" / "deeper.txt").write_text("PyYAML\nsix\n")
    assert key() != middle, "a nested include changed"
    last = key()
    (tmp_path / "constraints.txt").write_text("urllib3<1.27\n")
    assert key() != last, "a -c include changed"
    (tmp_path / "more" / "deeper.txt").unlink()
    with pytest.raises(MmepackError, match=r"extra.txt:2: included file .*deeper.txt is missing"):
        read_requirements(main_file)


# ------------------------------------------------------------------ 8. interrupted runs


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_killed_package_leaves_a_partial_the_next_run_removes(tmp_path: Path) -> None:
    model_dir = _model(tmp_path)
    (model_dir / "demo_double" / "1" / "big.bin").write_bytes(os.urandom(20_000_000))
    out = tmp_path / "dist"
    out.mkdir()
    child = subprocess.Popen(
        [*CLI, "package", str(model_dir), "--output-dir", str(out)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    deadline = time.monotonic() + 60
    while not list(out.glob(".*.partial-*")) and time.monotonic() < deadline:
        if child.poll() is not None:
            break
        time.sleep(0.005)
    child.kill()
    child.wait()
    partials = list(out.glob(".*.partial-*"))
    if not partials:  # the child finished before it could be killed: plant what a kill leaves
        partials = [out / f".demo_1.tar.gz.partial-{_dead_pid()}"]
        partials[0].write_bytes(b"half a tar")
    alive = out / ".demo_1.tar.gz.partial-1"  # pid 1 always runs
    alive.write_bytes(b"another packager still writing")
    package_model(model_dir, out)
    assert not any(p.exists() for p in partials)
    assert alive.exists(), "a live process's partial file is left alone"
    assert sorted(p.name for p in out.iterdir()) == sorted(["demo_1.tar.gz", alive.name])


def test_stale_cache_staging_is_listed_and_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = EnvCache(tmp_path / "cache")
    key = EnvKey.of("pillow\n", "3.12", "b")
    stale = tmp_path / "cache" / f".{key.digest}.building-{_dead_pid()}"
    (stale / "env").mkdir(parents=True)
    (stale / "env" / "lib.so").write_bytes(b"x" * 1000)
    live = tmp_path / "cache" / f".{'0' * 64}.building-{os.getpid()}"
    live.mkdir()
    assert cache.stale_staging() == [stale]
    assert main(["env-cache", "list", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "1 unfinished builds of processes that are gone" in capsys.readouterr().out
    assert main(["env-cache", "prune", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert not stale.exists()
    staging = cache.staging(key)  # a new build also clears what killed builds left
    (staging / ARCHIVE).write_bytes(b"packed")
    cache.store(key, staging / ARCHIVE, {})
    assert cache.lookup(key) is not None
    assert live.exists(), "a build still running is left alone"


def test_scratch_of_a_killed_run_and_its_claims_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMEPACK_SCRATCH", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    dead = tmp_path / "scratch" / f"serve-pid{_dead_pid()}-abc"
    dead.mkdir()
    claimed = Path(f"/tmp/python_env_mmepacktest{os.getpid()}")
    claimed.mkdir(exist_ok=True)
    (claimed / "lib").mkdir(exist_ok=True)
    (dead / ".mmepack-claims").write_text(f"{claimed}\n/etc\n")
    with scratch_dir("proof") as mine:
        assert mine.is_dir() and mine.parent == tmp_path / "scratch"
        assert not dead.exists() and not claimed.exists()
        assert Path("/etc").is_dir(), "only claimable paths are removed"
        assert clean_stale_scratch() == [], "a live run's folder is kept"
    assert not mine.exists()
