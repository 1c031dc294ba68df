"""The CI definitions set up every Python the repository needs, shared-library where needed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from ruamel.yaml import YAML

from mmepack.model.build_file import build_file_python
from mmepack.triton.target import DEFAULT_STUB_PYTHON

REPO = Path(__file__).resolve().parents[1]
PANTS_PYTHON = "3.9"  # Pants 2.17's wheels are cp37-cp39; ./pants prefers 3.9


def _needed() -> set[str]:
    """Pants', the library's, every model's environment and the scaffold's default."""
    config = tomllib.loads((REPO / "pants.toml").read_text())
    library = {
        m
        for constraint in config["python"]["interpreter_constraints"]
        for m in re.findall(r"==(3\.\d+)", constraint)
    }
    models = {
        python
        for build in sorted((REPO / "models").glob("*/BUILD"))
        if (python := build_file_python(build.parent)) is not None
    }
    assert models, "the example model sets python_version in its BUILD file"
    return {PANTS_PYTHON, DEFAULT_STUB_PYTHON} | library | models


def test_github_actions_sets_up_every_python() -> None:
    workflow = YAML(typ="safe").load((REPO / "ci" / "github-actions.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    setup = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python")]
    assert len(setup) == 1
    versions = set(str(setup[0]["with"]["python-version"]).split())
    assert _needed() <= versions, f"missing: {_needed() - versions}"


def test_gitlab_builds_every_python_shared() -> None:
    pipeline = YAML(typ="safe").load((REPO / "ci" / "gitlab-ci.yml").read_text())
    variables = pipeline["variables"]
    assert variables["PYTHON_CONFIGURE_OPTS"] == "--enable-shared"
    versions = set(variables["MMEPACK_PYTHONS"].split())
    assert _needed() <= versions, f"missing: {_needed() - versions}"
    script = " ".join(pipeline["default"]["before_script"])
    assert "pyenv install" in script and "$MMEPACK_PYTHONS" in script
    for job in ("checks", "package", "test", "newcomer", "consumer", "publish"):
        assert "before_script" not in pipeline[job], f"{job} would skip the Python setup"


# Changed-since selection: the pipelines give the scripts a base ref and the history to compare
# with; the scripts select through ci/select.sh. tests/e2e_ci_selection.py runs it with Pants.
CI = REPO / "ci"


def test_scripts_select_changed_models_through_pants() -> None:
    select = (CI / "select.sh").read_text()
    assert '"--changed-since=${base}" "--changed-dependents=transitive"' in select
    assert "--filter-target-type=triton_model" in select
    for script in ("package.sh", "test.sh", "publish.sh"):
        text = (CI / script).read_text()
        assert "source ci/select.sh" in text and "mmepack_select" in text, script
    assert "nothing to publish" in (CI / "publish.sh").read_text()
    for script in ("checks.sh", "package.sh", "test.sh", "publish.sh"):
        assert "source ci/remote_cache.sh" in (CI / script).read_text(), script


def test_github_actions_passes_the_push_base_and_history() -> None:
    workflow = YAML(typ="safe").load((CI / "github-actions.yml").read_text())
    # YAML 1.1 reads the key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert "push" in triggers and "workflow_dispatch" in triggers
    job = workflow["jobs"]["build"]
    assert job["env"]["MMEPACK_CHANGED_SINCE"] == "${{ github.event.before }}"
    assert "workflow_dispatch" in job["env"]["MMEPACK_FULL_RUN"]
    assert "MMEPACK_REMOTE_CACHE" in job["env"]
    checkout = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout")]
    assert checkout[0]["with"]["fetch-depth"] == 0


def test_gitlab_passes_the_push_base_and_history() -> None:
    pipeline = YAML(typ="safe").load((CI / "gitlab-ci.yml").read_text())
    assert pipeline["variables"]["GIT_DEPTH"] == "0"
    script = " ".join(pipeline["default"]["before_script"])
    assert "MMEPACK_CHANGED_SINCE=" in script and "CI_COMMIT_BEFORE_SHA" in script
    for job in ("package", "test", "publish"):
        assert pipeline[job]["script"] == [f"./ci/{job}.sh"]


def test_every_ci_runs_the_newcomer_clean_clone_test() -> None:
    """Too slow for `./pants test ::`, so each CI runs it as its own step."""
    assert "tests/e2e_newcomer_clone.py" in (REPO / "ci" / "newcomer.sh").read_text()
    workflow = YAML(typ="safe").load((REPO / "ci" / "github-actions.yml").read_text())
    runs = [s.get("run") for s in workflow["jobs"]["build"]["steps"]]
    assert "./ci/newcomer.sh" in runs
    pipeline = YAML(typ="safe").load((REPO / "ci" / "gitlab-ci.yml").read_text())
    assert pipeline["newcomer"]["script"] == ["./ci/newcomer.sh"]


def test_every_ci_runs_the_consumer_repository_test() -> None:
    """The wheels adopted by a fresh repository (issue 28): minutes, so its own CI step too."""
    assert "tests.e2e_consumer_repo" in (REPO / "ci" / "consumer.sh").read_text()
    workflow = YAML(typ="safe").load((REPO / "ci" / "github-actions.yml").read_text())
    runs = [s.get("run") for s in workflow["jobs"]["build"]["steps"]]
    assert "./ci/consumer.sh" in runs
    pipeline = YAML(typ="safe").load((REPO / "ci" / "gitlab-ci.yml").read_text())
    assert pipeline["consumer"]["script"] == ["./ci/consumer.sh"]


def test_every_ci_builds_the_docs_site_strictly() -> None:
    """A broken link or anchor in docs/ fails CI: each pipeline runs ci/docs.sh, which builds the
    site with `mkdocs build --strict` from the locked docs resolve."""
    assert "./docs.sh build" in (REPO / "ci" / "docs.sh").read_text()
    docs_sh = (REPO / "docs.sh").read_text()
    assert "./pants run ci/mkdocs_main.py -- build --strict" in docs_sh
    workflow = YAML(typ="safe").load((REPO / "ci" / "github-actions.yml").read_text())
    runs = [s.get("run", "").split("#")[0].strip() for s in workflow["jobs"]["build"]["steps"]]
    assert "./ci/docs.sh" in runs
    pipeline = YAML(typ="safe").load((REPO / "ci" / "gitlab-ci.yml").read_text())
    assert pipeline["docs"]["script"] == ["./ci/docs.sh"]
