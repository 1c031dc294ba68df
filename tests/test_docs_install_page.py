"""The install page's consumer configuration, which tests/e2e_consumer_repo.py runs as written
(minutes, in CI): here the cheap part, that it parses, pins this checkout's version and asks no
more of a repository than issue 28 allows."""

from __future__ import annotations

import tomllib

from tests.e2e_consumer_repo import CHECKOUT, checkout_version, page_block


def test_the_page_pants_toml_pins_this_version_and_needs_no_mmepack_sources() -> None:
    config = tomllib.loads(page_block("toml", "pants.toml"))
    version = checkout_version(CHECKOUT)
    assert config["GLOBAL"]["plugins"] == [f"mmepack-pants=={version}"]
    backends = config["GLOBAL"]["backend_packages"]
    assert "mmepack_pants" in backends
    # Issue 28: a repository without the mypy backend, and none of this repository's paths.
    assert not any("mypy" in backend for backend in backends)
    assert "pythonpath" not in config["GLOBAL"]
    assert "mmepack" not in config, "the plugin's own options need no setting"
    # The plugin's lockfile names the mmepack wheel through this mapping (tool_lock.py), in the
    # folder Pants finds the plugin's wheel in.
    repos = config["python-repos"]
    [mapping] = repos["path_mappings"]
    name, folder = mapping.split("|")
    assert name == "MMEPACK_WHEELS"
    assert repos["find_links"] == [f"file://{folder}"]


def test_the_page_root_build_holds_the_dvc_target_tailor_names() -> None:
    assert 'files(name="dvc", sources=[".dvc/config"])' in page_block("text", "BUILD")
