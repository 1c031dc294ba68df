"""`mmepack new` models package and pass their generated case untouched (issue 27 item 9).

A spread of designs, each scaffolded into a fresh git + DVC repository, packaged (a real
environment build, shared by all: their requirements are the same) and served by the local
SageMaker-style endpoint with `mmepack test-cases`, as `./pants test <model>:<model>` runs it.
Bounded: three small artifacts, one server start each, each limited by --startup-timeout.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mmepack.cli import main
from tests.test_scaffold import DESIGNS

STARTUP = ["--startup-timeout", "180"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scaffold") / "repo"
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, capture_output=True
    )
    return root


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_new_model_packages_and_passes_its_case_untouched(design: str, repo: Path) -> None:
    # No capsys here: DVC's in-process logger keeps the stream it first saw, and capsys closes
    # its stream after each test. The case results are read from the JUnit report instead.
    name = f"m_{design}"
    model_dir = repo / "models" / name
    assert main(["new", str(model_dir), "--repo-root", str(repo), *DESIGNS[design]]) == 0
    # The command a user runs: it takes the BUILD file's python_version, as Pants does.
    dist = repo / "dist"
    assert main(["package", str(model_dir), f"--output-dir={dist}"]) == 0
    report = repo / f"{name}.xml"
    code = main(
        ["test-cases", str(dist / f"{name}_1.tar.gz"), str(model_dir), f"--junit-xml={report}"]
        + STARTUP
    )
    cases = ET.parse(report).getroot().iter("testcase")
    results = {c.get("name"): [child.tag for child in c] for c in cases}
    # The case, then the capacity budgets (mmepack.capacity), both passed.
    assert results == {"test_case[example]": [], "test_capacity": []}, ET.tostring(
        ET.parse(report).getroot()
    )[-4000:]
    assert code == 0
