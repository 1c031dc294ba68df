"""The size warning is actionable or absent (issue 27 item 7): it names a requirement no Python
step imports, or it is not printed, even when the environment is nearly all of the artifact."""

from __future__ import annotations

import os
from pathlib import Path

from mmepack.artifact.size_report import environment_share, size_lines
from mmepack.artifact.unused_requirements import (
    Distribution,
    environment_distributions,
    unused_requirements,
)
from mmepack.build import package_model
from mmepack.model.repository import read_model_directory
from mmepack.triton.target import TargetServer
from tests.demo_models import write_ensemble_model, write_env_archive

REPO = Path(__file__).resolve().parents[1]
SITE = "lib/python3.10/site-packages"


def _dist(name: str, version: str, top_level: str | None, requires: tuple[str, ...] = ()) -> dict:
    info = f"{SITE}/{name}-{version}.dist-info"
    files = {
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            + "".join(f"Requires-Dist: {r}\n" for r in requires)
        ).encode()
    }
    if top_level is not None:
        files[f"{info}/top_level.txt"] = f"{top_level}\n".encode()
    else:  # a wheel without top_level.txt: the modules come from RECORD
        files[f"{info}/RECORD"] = f"{name}/__init__.py,sha256=x,1\n".encode()
    return files


def _model(root: Path, requirements: str, imports: str) -> Path:
    model = write_ensemble_model(root, env=True)
    (model / "requirements.txt").write_text(requirements)
    step = model / "demo_double" / "1" / "model.py"
    step.write_text(imports + step.read_text())
    return model


def _env(path: Path, *dists: dict) -> Path:
    files: dict[str, bytes] = {"bin/activate": b"#\n", f"{SITE}/blob.bin": os.urandom(400_000)}
    for dist in dists:
        files.update(dist)
    write_env_archive(path, files)
    return path


def _package(model: Path, env: Path, out: Path) -> list[str]:
    result = package_model(model, out, env_archive=env, python=TargetServer().stub_python)
    # The case of the issue: the environment is nearly all of the artifact.
    assert environment_share(result) > 0.9
    return size_lines(result)


def test_numpy_and_one_imported_package_give_no_warning(tmp_path: Path) -> None:
    # Fails before issue 27: "the Python environment is 98% of the artifact ... drop
    # requirements the Python steps do not import", with nothing to drop.
    model = _model(tmp_path / "m", "numpy<2\nregex\n", "import regex  # noqa\n")
    env = _env(
        tmp_path / "env.tar.gz", _dist("numpy", "1.26.4", "numpy"), _dist("regex", "2024.1", None)
    )
    lines = _package(model, env, tmp_path / "dist")
    assert len(lines) == 1 and lines[0].startswith("mmepack: size of demo_1.tar.gz: "), lines


def test_the_warning_names_what_no_step_imports(tmp_path: Path) -> None:
    model = _model(
        tmp_path / "m",
        "numpy<2\nPillow==10.*\nrequests\nhelper-lib\n",
        "from PIL import Image  # noqa\nimport fancy.sub  # noqa\n",
    )
    env = _env(
        tmp_path / "env.tar.gz",
        _dist("numpy", "1.26.4", "numpy"),
        _dist("pillow", "10.4.0", "PIL"),
        _dist("requests", "2.32.0", "requests", ("urllib3",)),
        _dist("urllib3", "2.2.0", "urllib3"),
        # `fancy` is imported; helper-lib is listed only because fancy needs it.
        _dist("fancy_dist", "1.0", "fancy", ("helper-lib",)),
        _dist("helper_lib", "1.0", "helper_lib"),
    )
    lines = _package(model, env, tmp_path / "dist")
    assert len(lines) == 2, lines
    warning = lines[1]
    assert warning.startswith("mmepack: warning: demo_1.tar.gz: the Python environment is ")
    assert "requirements.txt lists requests, which no Python step imports" in warning
    assert "drop it and re-lock" in warning
    for kept in ("pillow", "numpy", "helper-lib", "urllib3"):
        assert kept not in warning.split("lists ", 1)[1]


def test_the_example_model_has_nothing_to_drop() -> None:
    directory = read_model_directory(REPO / "models" / "screen_detector")
    dists = {"numpy": Distribution(["numpy"]), "pillow": Distribution(["PIL"])}
    assert unused_requirements(directory, directory.root / "requirements.txt", dists) == []


def test_dist_info_is_read_from_the_packed_environment(tmp_path: Path) -> None:
    env = _env(
        tmp_path / "env.tar.gz",
        _dist("Pillow", "10.4.0", "PIL"),
        _dist("regex", "2024.1", None, ("numpy (>=1)",)),
    )
    found = environment_distributions(env)
    assert found["pillow"].modules == ["PIL"]
    assert found["regex"].modules == ["regex"] and found["regex"].requires == ["numpy"]
