"""CI builds what changed: ci/select.sh, run by real Pants in a clone with two models.

In a `git clone` of this checkout's HEAD it adds a second model (a renamed copy of the example,
as benchmarks/scale_bench.py makes them) and commits one change per case on its own branch
point, then asks `mmepack_select` (sourced by ci/package.sh, ci/test.sh and ci/publish.sh)
which models a push with that change covers:

- a change inside one model selects that model alone, and says its own files changed;
- a change to src/ (the mmepack library), to the plugin or to a lockfile selects every model;
- a change to neither (README.md) selects none, and ci/publish.sh then publishes nothing;
- no base ref (how .ci/run calls it) and MMEPACK_FULL_RUN=1 select every model.

Cost: about ten Pants runs on one pantsd, stopped at the end (a few minutes). Not in `./pants test ::`; run it
from a checkout with the dev venv:

    PYTHONPATH=src:. python -m pytest -p no:cacheprovider tests/e2e_ci_selection.py

It clones HEAD, so commit first.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.scale_bench import copy_model, stop_pantsd

CHECKOUT = Path(__file__).resolve().parents[1]
EXAMPLE = "models/screen_detector:screen_detector"
COPY = "models/screen_detector_s000:screen_detector_s000"
PANTS_TIMEOUT_S = 600
# Under the same shell options as the ci/ scripts.
_SHOW = (
    "set -euo pipefail; source ci/select.sh; mmepack_select; "
    'printf "model=%s\\n" "${MMEPACK_MODELS[@]}"'
)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PANTS_", "MMEPACK_"))}
    env.update(extra)
    return env


def _select(repo: Path, **extra: str) -> tuple[list[str], str]:
    done = subprocess.run(
        ["bash", "-c", _SHOW],
        cwd=repo,
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=PANTS_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    models = [line[len("model=") :] for line in done.stdout.splitlines() if line != "model="]
    return sorted(models), done.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    clone = tmp_path_factory.mktemp("ci-selection") / "repo"
    subprocess.run(["git", "clone", "--quiet", str(CHECKOUT), str(clone)], check=True)
    copy_model(clone, "screen_detector", "screen_detector_s000")
    _git(clone, "add", "models")
    _git(clone, "commit", "--quiet", "-m", "a second model")
    _git(clone, "tag", "base")
    try:
        yield clone
    finally:
        stop_pantsd(clone)


def _change(repo: Path, path: str, line: str) -> None:
    """Commit one appended line to `path` on a fresh branch off `base`."""
    _git(repo, "checkout", "--quiet", "-B", "change-" + re.sub(r"[^A-Za-z0-9]+", "-", path), "base")
    with (repo / path).open("a", encoding="utf-8") as handle:
        handle.write(line)
    _git(repo, "commit", "--quiet", "-am", f"change {path}")


def test_one_model_change_selects_that_model(repo: Path) -> None:
    edited = "models/screen_detector_s000/screen_detector_s000/config.pbtxt"
    _change(repo, edited, "# a config edit\n")
    models, said = _select(repo, MMEPACK_CHANGED_SINCE="base")
    assert models == [COPY]
    assert f"{COPY}: its own files changed: {edited}" in said


@pytest.mark.parametrize(
    "path, line",
    [
        ("src/mmepack/names.py", "# a library edit\n"),
        ("pants-plugins/mmepack_pants/tailor.py", "# a plugin edit\n"),
        ("3rdparty/python/pytest.lock", "\n"),
    ],
)
def test_toolchain_change_selects_every_model(repo: Path, path: str, line: str) -> None:
    _change(repo, path, line)
    models, said = _select(repo, MMEPACK_CHANGED_SINCE="base")
    assert models == sorted([EXAMPLE, COPY])
    assert f"{EXAMPLE}: something it is built with changed: {path}" in said


def test_unrelated_change_selects_and_publishes_nothing(repo: Path) -> None:
    _change(repo, "README.md", "\nA docs edit.\n")
    models, said = _select(repo, MMEPACK_CHANGED_SINCE="base")
    assert models == []
    assert "0 model(s) selected" in said
    published = subprocess.run(
        ["bash", "ci/publish.sh"],
        cwd=repo,
        env=_env(
            MMEPACK_CHANGED_SINCE="base",
            MMEPACK_STAGING_BUCKET="unused-staging",
            MMEPACK_PRODUCTION_BUCKET="unused-production",
        ),
        capture_output=True,
        text=True,
        timeout=PANTS_TIMEOUT_S,
        check=False,
    )
    assert published.returncode == 0, published.stderr
    assert "nothing to publish" in published.stderr


def test_no_base_or_full_run_selects_every_model(repo: Path) -> None:
    _git(repo, "checkout", "--quiet", "base")
    for extra in ({}, {"MMEPACK_CHANGED_SINCE": "base", "MMEPACK_FULL_RUN": "1"}):
        models, said = _select(repo, **extra)
        assert models == sorted([EXAMPLE, COPY])
        assert "full run" in said
    # A new branch's push names an all-zero "before" commit: a full run too.
    models, said = _select(repo, MMEPACK_CHANGED_SINCE="0" * 40)
    assert models == sorted([EXAMPLE, COPY]) and "not a commit in this clone" in said
