"""`./pants lock-envs` on a model whose BUILD sets no python_version (as `./pants tailor` writes
it) leaves the Python to the library instead of passing the text "None"."""

from __future__ import annotations

from mmepack_pants.lock import lock_argv, lock_description


def test_unset_python_version_passes_no_python_flag() -> None:
    argv = lock_argv("models/m", None)
    assert argv == ["lock", "models/m"]
    assert "None" not in lock_description("models/m:m", None)


def test_set_python_version_is_passed() -> None:
    assert lock_argv("models/m", "3.12") == ["lock", "models/m", "--python=3.12"]
    assert lock_description("models/m:m", "3.12") == "Lock models/m:m (Python 3.12)"
