"""Fuzz: 10,000 mutated configs and crafted model folders through validate and package.

Each case is one model directory state: a config mutated at the byte or token level, or a
folder with one crafted entry (a link out, a FIFO, a hidden file, a folder where a file belongs,
broken `.dvc` or version files). Both `validate_model_directory` and `package_model` must answer
every case with Problems or an MmepackError; anything else escaping is a traceback a user would
see. Cases come from a seeded generator, so a failure names a case that can be replayed, and the
run is bounded in count and time.
"""

from __future__ import annotations

import os
import random
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from mmepack.build import package_model
from mmepack.errors import MmepackError
from mmepack.validate import Problem, validate_model_directory
from tests.demo_models import write_env_archive

CASES = 10_000
# The bound is on this process's CPU time (about 25 s on an idle core), so it holds the same on a
# machine shared with other jobs; the wall-clock cap only stops a run that hangs.
CPU_LIMIT_S = 60.0
WALL_LIMIT_S = 300.0
SEED = 13

# A small single-model directory keeps each case cheap: most of validation's cost is protobuf's
# text parser, which grows with the config.
CONFIG = b"""name: "fz"
backend: "python"
max_batch_size: 2
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 2 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] } ]
parameters: { key: "EXECUTION_ENV_PATH" value: { string_value: "$$TRITON_MODEL_DIRECTORY/e.tar.gz" } }
"""

TOKENS = [
    b"{", b"}", b"[", b"]", b"<", b">", b":", b",", b'"', b"#", b"\n", b"\\", b"-1", b"0",
    b"99999999999999999999", b"1e400", b"nan", b"name", b"dims", b"input", b"output",
    b"platform", b'"ensemble"', b'platform: "ensemble"', b"backend", b'"onnxruntime"',
    b"max_batch_size", b"ensemble_scheduling { step [ { model_name: \"x\" } ] }",
    b"instance_group [ { kind: KIND_GPU } ]", b"version_policy { specific { versions: 7 } }",
    b"EXECUTION_ENV_PATH", b"$$TRITON_MODEL_DIRECTORY/../x.tar.gz", b"/etc/passwd",
    b"\xff\xfe", b"\x00", "\u00e9".encode(), b"TYPE_STRING", b"reshape { shape: [ ] }",
]  # fmt: skip


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """One to four byte- or token-level edits."""
    for _ in range(rng.randint(1, 4)):
        if not data:
            data = rng.choice(TOKENS)
        at = rng.randrange(len(data) + 1)
        op = rng.randrange(6)
        if op == 0:  # delete a span
            data = data[:at] + data[at + rng.randint(1, 20) :]
        elif op == 1:  # insert a token
            data = data[:at] + rng.choice(TOKENS) + data[at:]
        elif op == 2:  # flip a byte
            if at < len(data):
                data = data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
        elif op == 3:  # duplicate a span
            end = min(len(data), at + rng.randint(1, 60))
            data = data[:end] + data[at:end] + data[end:]
        elif op == 4:  # replace a number with a huge or negative one
            data = data.replace(b"2", rng.choice([b"-5", b"4294967296", b"0"]), 1)
        else:  # truncate
            data = data[:at]
    return data


def _crafted(rng: random.Random, root: Path, outside: Path) -> Callable[[], object]:
    """Apply one crafted entry to the model directory; return how to undo it."""
    step = root / "fz"
    kind = rng.randrange(9)
    if kind == 0:
        link = step / "1" / rng.choice(["extra.txt", "model.py.bak", "weights.bin"])
        link.symlink_to(outside)
        return link.unlink
    if kind == 1:
        fifo = step / rng.choice(["1/pipe", "pipe", "1/model.onnx"])
        os.mkfifo(fifo)
        return fifo.unlink
    if kind == 2:
        hidden = step / rng.choice([".env", ".git", "1/.secret", ".gitignore"])
        hidden.write_bytes(b"TOKEN=x\n")
        return hidden.unlink
    if kind == 3:
        config = step / "config.pbtxt"
        config.unlink()
        config.mkdir()

        def restore() -> None:
            config.rmdir()
            config.write_bytes(CONFIG)

        return restore
    if kind == 4:
        dvc = step / "1" / "w.bin.dvc"
        body = rng.choice(
            [
                b"outs:\n- md5: abc\n  path: /etc/passwd\n",
                b"outs:\n- md5: abc\n  path: ../../../x\n",
                b"outs: 7\n",
                b"\xff\xfe\x00",
                b"outs:\n- md5: [1]\n  path: {a: b}\n  size: big\n",
                b": : :\n\t- [",
            ]
        )
        dvc.write_bytes(body)
        return dvc.unlink
    if kind == 5:
        dvc = step / "1" / "w.bin.dvc"
        dvc.mkdir()
        return dvc.rmdir
    if kind == 6:
        version = root / "model_version.txt"
        version.write_bytes(rng.choice([b"\xff\n", b"", b"1\n2\n", b"9" * 300, b"1.2.3.4", b"-1"]))
        return lambda: version.write_bytes(b"1\n")
    if kind == 7:
        requirements = root / "requirements.txt"
        requirements.unlink()
        return lambda: requirements.write_bytes(b"# numpy only\n")
    link = step / "1" / "loop"
    link.symlink_to(link)
    return link.unlink


def test_fuzz_validate_and_package(tmp_path: Path) -> None:
    root = tmp_path / "fz_model"
    (root / "fz" / "1").mkdir(parents=True)
    (root / "fz" / "1" / "model.py").write_text("import numpy\n")
    (root / "model_version.txt").write_text("1\n")
    (root / "requirements.txt").write_bytes(b"# numpy only\n")
    config = root / "fz" / "config.pbtxt"
    outside = tmp_path / "credentials"
    outside.write_text("secret\n")
    env = write_env_archive(tmp_path / "e.tar.gz")
    stub = tmp_path / "stub"
    stub.write_bytes(b"stand-in stub")
    out = tmp_path / "dist"

    rng = random.Random(SEED)
    started, cpu_started = time.monotonic(), time.process_time()
    outcomes = {"packaged": 0, "refused": 0, "crafted": 0}
    for case in range(CASES):
        config.write_bytes(_mutate(rng, CONFIG) if rng.random() < 0.9 else CONFIG)
        undo: Callable[[], object] | None = None
        if rng.random() < 0.15:
            undo = _crafted(rng, root, outside)
            outcomes["crafted"] += 1
        try:
            problems = validate_model_directory(root)
            assert all(isinstance(p, Problem) for p in problems)
            try:
                package_model(root, out, env_archive=env, stub=stub)
                outcomes["packaged"] += 1
            except MmepackError as exc:
                assert str(exc), f"case {case}: an empty error message"
                outcomes["refused"] += 1
        except Exception as exc:  # noqa: BLE001 - any other exception is the finding
            raise AssertionError(
                f"case {case} (seed {SEED}) escaped as a traceback:\n{config.read_bytes()!r}\n"
                + "".join(traceback.format_exception(exc))
            ) from None
        finally:
            if undo is not None:
                undo()
        cpu = time.process_time() - cpu_started
        assert cpu < CPU_LIMIT_S, f"over {CPU_LIMIT_S} s of CPU at case {case}"
        assert time.monotonic() - started < WALL_LIMIT_S, f"over {WALL_LIMIT_S} s at case {case}"
    shutil.rmtree(out, ignore_errors=True)
    print(
        f"fuzz: {CASES} cases in {time.monotonic() - started:.1f} s "
        f"({time.process_time() - cpu_started:.1f} s CPU): {outcomes}"
    )
    # The generator must reach both outcomes, or it is not exercising package.
    assert outcomes["packaged"] > 100 and outcomes["refused"] > 1000, outcomes
    assert outcomes["crafted"] > 1000, outcomes
