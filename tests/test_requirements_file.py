"""What counts as "the same requirements" for the environment cache, and which names are imported."""

from __future__ import annotations

import pytest

from mmepack.environment.requirements import (
    mentions_numpy,
    normalised_requirements,
    requirement_names,
)

BASE = "pillow==13.*\nnumpy<2\n"


@pytest.mark.parametrize(
    "variant",
    [
        "# image decoding\nPillow == 13.*   # keep in step with the server\n\nnumpy<2\n",
        "numpy<2\npillow==13.*\n",
        "  pillow==13.*\n\tnumpy <2\n",
        "PILLOW==13.*\nNumPy<2",
    ],
)
def test_cosmetic_edits_keep_the_key(variant: str) -> None:
    assert normalised_requirements(variant) == normalised_requirements(BASE)


@pytest.mark.parametrize(
    "variant",
    [
        "pillow==12.*\nnumpy<2\n",
        "pillow==13.*\nnumpy<2\nrequests\n",
        "--index-url https://mirror.example/simple\npillow==13.*\nnumpy<2\n",
        "pillow[avif]==13.*\nnumpy<2\n",
    ],
)
def test_real_changes_change_the_key(variant: str) -> None:
    assert normalised_requirements(variant) != normalised_requirements(BASE)


def test_pinned_hashes_are_part_of_the_key_in_any_order() -> None:
    one = "numpy==1.26.4 \\\n    --hash=sha256:bbb \\\n    --hash=sha256:aaa\n"
    same = "numpy==1.26.4 --hash=sha256:aaa --hash=sha256:bbb\n"
    other = "numpy==1.26.4 --hash=sha256:ccc\n"
    assert normalised_requirements(one) == normalised_requirements(same)
    assert normalised_requirements(one) != normalised_requirements(other)
    assert "--hash=sha256:aaa --hash=sha256:bbb" in normalised_requirements(one)


def test_requirement_names_skip_options_paths_and_urls() -> None:
    text = (
        "--extra-index-url https://x/simple\nPillow>=10\n./vendored/pkg\n"
        "/abs/wheel.whl\nhttps://x/y.whl\nmy_pkg @ https://x/my_pkg-1.0-py3-none-any.whl\n"
        "Pillow[avif]\n"
    )
    assert requirement_names(text) == ["pillow", "my-pkg"]


def test_mentions_numpy_only_for_numpy_itself() -> None:
    assert mentions_numpy("NumPy==1.26.4\n")
    assert not mentions_numpy("numpy-financial\nnumpyro\n")
