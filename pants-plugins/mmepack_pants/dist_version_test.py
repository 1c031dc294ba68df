"""The distributions' version is read from the library's `__version__` line, and nowhere else."""

from __future__ import annotations

# pytest runs these tests from its own tool resolve; pants-plugins holds no pytest requirement.
import pytest  # pants: no-infer-dep

from mmepack_pants.dist_version import DISTRIBUTIONS, read_version


def test_reads_the_assigned_string() -> None:
    source = '"""Doc."""\n\nimport os\n\n__version__ = "1.4.2"\nOTHER = "9.9.9"\n'
    assert read_version(source) == "1.4.2"


@pytest.mark.parametrize(
    "source",
    ["", "version = '1.0.0'\n", "__version__ = compute()\n", "__version__ = 2\n"],
    ids=["empty", "other-name", "not-a-literal", "not-a-string"],
)
def test_a_missing_or_computed_version_names_the_file_and_the_fix(source: str) -> None:
    with pytest.raises(ValueError) as raised:
        read_version(source, "src/mmepack/__init__.py")
    message = str(raised.value)
    assert message.startswith("src/mmepack/__init__.py: expected a line `__version__ = ")
    assert all(name in message for name in DISTRIBUTIONS)
