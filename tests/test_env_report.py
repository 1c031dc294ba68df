"""The builder's JSON report: the library's schema, its strict reader, and the Pants plugin's
reader of the same file (loaded by path: the plugin cannot import mmepack, nor mmepack it)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mmepack.environment.build import build_environment, progress_log
from mmepack.environment.cache import EnvCache, EnvKey
from mmepack.environment.command import main as build_env_main
from mmepack.environment.report import REPORT_SCHEMA, BuildReport
from mmepack.environment.request import EnvOptions, EnvRequest
from mmepack.errors import MmepackError
from mmepack.triton.target import TargetServer

PLUGIN_READER = Path(__file__).resolve().parents[1] / "pants-plugins/mmepack_pants/env_report.py"


def _plugin_reader() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mmepack_pants_env_report", PLUGIN_READER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _report(**changes: Any) -> BuildReport:
    report = BuildReport(
        schema=REPORT_SCHEMA,
        label="demo",
        python_version="3.12.1",
        archive="python_env.tar.gz",
        archive_bytes=53_200_000,
        stub="triton_python_backend_stub",
        triton_version="2.51.0",
        server_stub_python="3.10",
        cache_hit=False,
        cache_entry="d76a742e295c",
        builder="portable:cpython-3.12.1",
        proven_imports=["numpy", "PIL"],
        proven_with_triton="2.51.0",
        removed_bytes=28_000_000,
        largest_packages={"numpy.libs": 38_100_000, "numpy": 22_400_000},
    )
    return dataclasses.replace(report, **changes)


def test_report_round_trips_through_json_and_a_file(tmp_path: Path) -> None:
    report = _report()
    assert BuildReport.from_json(report.to_json()) == report
    report.write(tmp_path / "out" / "report.json")
    assert BuildReport.read(tmp_path / "out" / "report.json") == report
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.json"]  # no partial left


def test_unknown_or_missing_field_or_other_schema_is_an_error() -> None:
    data = json.loads(_report().to_json())
    with pytest.raises(MmepackError, match=r"r.json: .*unknown fields \['surprise'\]"):
        BuildReport.from_json(json.dumps({**data, "surprise": 1}), "r.json")
    del data["cache_hit"]
    with pytest.raises(MmepackError, match=r"lacks fields \['cache_hit'\]"):
        BuildReport.from_json(json.dumps(data))
    with pytest.raises(MmepackError, match=r"field 'schema' is 2, expected 1"):
        BuildReport.from_json(_report(schema=2).to_json())
    with pytest.raises(MmepackError, match=r"r.json:1: not JSON"):
        BuildReport.from_json("{", "r.json")


def test_plugin_reader_knows_exactly_the_library_schema() -> None:
    plugin = _plugin_reader()
    assert plugin.REPORT_SCHEMA == REPORT_SCHEMA
    library_fields = {f.name for f in dataclasses.fields(BuildReport)}
    assert {f.name for f in dataclasses.fields(plugin.EnvReport)} == library_fields
    parsed = plugin.EnvReport.from_json(_report().to_json())
    assert dataclasses.asdict(parsed) == dataclasses.asdict(_report())
    with pytest.raises(plugin.EnvReportError, match=r"unknown fields \['surprise'\]"):
        plugin.EnvReport.from_json(json.dumps({**dataclasses.asdict(_report()), "surprise": 1}))


def test_plugin_lines_say_where_the_environment_came_from() -> None:
    plugin = _plugin_reader()
    built = plugin.EnvReport.from_json(_report().to_json())
    assert built.lines(from_pants_cache=False) == [
        "slimmed: removed 28.0 MB; largest packages: numpy.libs 38.1 MB, numpy 22.4 MB",
        "proven: Triton 2.51.0 imported numpy, PIL",
        "environment ready: python_env.tar.gz (53.2 MB, Python 3.12.1, built now); ships the "
        "Python 3.12 stub (Triton 2.51.0's own runs 3.10)",
    ]
    hit = plugin.EnvReport.from_json(_report(cache_hit=True, stub=None).to_json())
    assert hit.lines(from_pants_cache=False)[-1].endswith(
        "(53.2 MB, Python 3.12.1, mmepack's cache d76a742e295c)"
    )
    # A warm Pants run replays the process result: it must not claim to have built anything.
    assert "built now" not in " ".join(built.lines(from_pants_cache=True))
    assert "Pants' cache" in built.lines(from_pants_cache=True)[-1]


def _fake_conda(tmp_path: Path) -> Path:
    conda = tmp_path / "bin" / "micromamba"
    conda.parent.mkdir()
    conda.write_text("#!/bin/sh\nexit 1\n")
    conda.chmod(0o755)
    return conda


def test_builder_writes_the_report_on_a_cache_hit(tmp_path: Path) -> None:
    """The real build path, answered by a stored entry (no pip): the report says what happened
    and names the files written, and the CLI entry point writes the same report."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy<2\n")
    conda = _fake_conda(tmp_path)
    cache = EnvCache(tmp_path / "cache")
    key = EnvKey.of("numpy<2\n", "3.11", f"conda:{conda.name}:conda-forge:python=3.11")
    staging = cache.staging(key)
    (staging / "python_env.tar.gz").write_bytes(b"packed environment")
    manifest = {"python_version": "3.11.7", "builder": "conda:micromamba", "removed_bytes": 5}
    proof = {"proven_imports": ["numpy"], "proven_tensor_types": ["TYPE_FP32"]}
    cache.store(key, staging / "python_env.tar.gz", {**manifest, **proof})
    options = EnvOptions(builder="conda", conda=str(conda), target=TargetServer(stub_python="3.11"))

    output = tmp_path / "out" / "python_env.tar.gz"
    built = build_environment(
        EnvRequest(requirements, "3.11", "demo"),
        output,
        options=options,
        cache=cache,
        report=tmp_path / "out" / "report.json",
        log=lambda _: None,
    )
    report = BuildReport.read(tmp_path / "out" / "report.json")
    assert report == built.report
    assert report.cache_hit and report.stub is None and report.label == "demo"
    assert report.archive == str(output) and report.archive_bytes == len(b"packed environment")
    assert report.python_version == "3.11.7" and report.proven_imports == ["numpy"]
    assert report.cache_entry == cache.entry(key).name[:12]
    # What Pants would hold back until the process ends is in the cache's progress log already.
    progress = (cache.root / "progress.log").read_text()
    assert "[demo, Python 3.11, pid " in progress and "environment ready" in progress

    code = build_env_main(
        [
            f"--requirements={requirements}",
            f"--output={tmp_path / 'cli' / 'env.tar.gz'}",
            f"--report={tmp_path / 'cli' / 'report.json'}",
            f"--cache-dir={cache.root}",
            "--python=3.11",
            "--builder=conda",
            f"--conda={conda}",
            "--stub-python=3.11",
        ]
    )
    assert code == 0
    from_cli = BuildReport.read(tmp_path / "cli" / "report.json")
    assert dataclasses.replace(from_cli, archive=report.archive, label="demo") == report


def test_progress_log_appends_starts_over_when_big_and_never_fails_the_build(
    tmp_path: Path,
) -> None:
    shown: list[str] = []
    path = tmp_path / "cache" / "progress.log"
    with progress_log(shown.append, path, "[m]") as log:
        log("Collecting numpy<2")
    with progress_log(shown.append, path, "[m]") as log:
        log("Installing collected packages: numpy")
    lines = path.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "[m] Collecting numpy<2",
        "[m] Installing collected packages: numpy",
    ]
    assert shown == ["Collecting numpy<2", "Installing collected packages: numpy"]
    path.write_text("x" * (2 << 20))
    with progress_log(shown.append, path, "[m]") as log:
        log("fresh")
    assert path.read_text().endswith("[m] fresh\n") and path.stat().st_size < 100
    blocked = tmp_path / "file"
    blocked.write_text("")
    with progress_log(shown.append, blocked / "progress.log", "[m]") as log:
        log("still shown")
    assert shown[-1] == "still shown"
