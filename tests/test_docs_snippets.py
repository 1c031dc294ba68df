"""Every Python snippet in the docs runs, the boto3 ones against a real local endpoint.

Each ```` ```python ```` block of `docs/**/*.md` (not `docs/_incoming/`) is one test case, named
`<page>:<line>`. What a block is decides how it runs:

- a block that defines `def test_...` runs under pytest (with a titled `conftest.py` of the same
  page beside it), against the example's artifact; at least one test must pass;
- a block with a `title="models/<name>/..."` outside the model's `tests/` (a file the page
  shows, e.g. a Triton `model.py`) is written, with the page's other titled blocks under
  `models/<name>/` (any language), into a model folder; each such model with a
  `model_version.txt` is packaged with mmepack and served, so its Python runs inside Triton
  when the page's snippets invoke it. Its own case checks that it was packaged and is served
  (the page's boto3 snippets then check its answers);
- every other block runs as a script (`python <block>`, in an empty folder, with this test's
  packages) and must exit 0. A block that talks to `http://127.0.0.1:8080` (the local endpoint's
  default URL on the pages) gets one shared `LocalEndpoint` serving the example's artifact and
  every page-defined model instead: that URL, and only that, is replaced with the endpoint's.

A block that must not run gets `<!-- snippet: skip because <reason> -->` on the line before its
fence; the reason is the skip message pytest shows. Pants BUILD files are fenced `starlark`, so
they are not Python snippets. Every run is bounded by SNIPPET_TIMEOUT_S.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mmepack.build import package_model
from mmepack.endpoint import LocalEndpoint
from mmepack.testing import find_artifact

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
EXAMPLE = "screen_detector"
PAGE_URL = "http://127.0.0.1:8080"
SNIPPET_TIMEOUT_S = 300
_ANY_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)(?P<attrs>[^\n]*)\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_TITLE = re.compile(r'title="([^"]+)"')
_SKIP = re.compile(r"<!--\s*snippet:\s*skip because (?P<reason>.+?)\s*-->")
_MODEL_FILE = re.compile(r"^models/(?P<model>[A-Za-z0-9_]+)/(?P<path>.+)$")
_PASSED = re.compile(r"(\d+) passed")


@dataclass(frozen=True)
class Block:
    page: str  # relative to docs/
    line: int
    lang: str
    title: str | None
    code: str
    skip: str | None

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def model_file(self) -> tuple[str, str] | None:
        """(model, path) of a file the page shows inside a model folder; its tests excluded."""
        found = _MODEL_FILE.match(self.title or "")
        if not found or found["path"].startswith("tests/"):
            return None
        return found["model"], found["path"]

    @property
    def is_test_module(self) -> bool:
        return re.search(r"^def test_", self.code, re.MULTILINE) is not None


def _dedent(code: str, indent: str) -> str:
    return "".join(
        line[len(indent) :] if line.startswith(indent) else line
        for line in code.splitlines(keepends=True)
    )


def page_blocks(page: Path) -> list[Block]:
    """Every fenced block of a page, with its title and skip marker."""
    text = page.read_text()
    blocks = []
    for found in _ANY_FENCE.finditer(text):
        line = text.count("\n", 0, found.start()) + 1
        before = text[: found.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = _SKIP.search(before)
        title = _TITLE.search(found["attrs"])
        blocks.append(
            Block(
                page=str(page.relative_to(DOCS)),
                line=line,
                lang=found["lang"],
                title=title.group(1) if title else None,
                code=_dedent(found["code"], found["indent"]),
                skip=skip["reason"] if skip else None,
            )
        )
    return blocks


def doc_pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_incoming" not in p.relative_to(DOCS).parts)


def python_blocks() -> list[Block]:
    return [b for page in doc_pages() for b in page_blocks(page) if b.lang == "python"]


def page_models(root: Path) -> dict[str, Path]:
    """The model folders the pages define in titled blocks, written under root."""
    models: dict[str, Path] = {}
    for page in doc_pages():
        for block in page_blocks(page):
            if block.model_file is None or block.skip:
                continue
            model, path = block.model_file
            target = root / model / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code)
            models[model] = root / model
    return {m: d for m, d in models.items() if (d / "model_version.txt").is_file()}


def _env(**extra: str) -> dict[str, str]:
    # This test's own import path, absolute: Pants gives source roots relative to the sandbox,
    # and snippets run in a folder of their own.
    path = os.pathsep.join(os.path.abspath(p) for p in sys.path if p)
    env = dict(os.environ, PYTHONPATH=path, **extra)
    env.pop("PYTHONSAFEPATH", None)
    return env


@pytest.fixture(scope="module")
def example() -> Path:
    return find_artifact(EXAMPLE)


@pytest.fixture(scope="module")
def endpoint(example: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEndpoint]:
    """One endpoint for every boto3 snippet: the example plus the models the pages define."""
    root = tmp_path_factory.mktemp("page-models")
    artifacts = [example]
    for model_dir in page_models(root / "models").values():
        artifacts.append(package_model(model_dir, root / "dist").path)
    with LocalEndpoint(artifacts, log=None) as started:
        yield started


BLOCKS = python_blocks()


def test_the_docs_have_python_snippets() -> None:
    """The collection itself can fail: no snippets found means the pages are not in the sandbox
    (docs:pages) or the fence convention changed."""
    assert len(BLOCKS) >= 2, f"found only {[b.name for b in BLOCKS]} under {DOCS}"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_snippet_runs(
    block: Block, tmp_path: Path, request: pytest.FixtureRequest, example: Path
) -> None:
    compile(block.code, block.name, "exec")  # a skipped block must still be Python
    if block.skip:
        pytest.skip(f"{block.name}: {block.skip}")
    if block.is_test_module:
        _run_pytest(block, tmp_path, example)
        return
    if block.model_file is not None:
        endpoint: LocalEndpoint = request.getfixturevalue("endpoint")
        model = block.model_file[0]
        served = [t for t in endpoint.source.names() if t.startswith(f"{model}_")]
        assert served, f"{block.name}: model {model} (titled blocks) was not packaged and served"
        return
    script = block.code
    if PAGE_URL in script:
        endpoint = request.getfixturevalue("endpoint")
        script = script.replace(PAGE_URL, endpoint.url)
    path = tmp_path / "snippet.py"
    path.write_text(script)
    done = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, (
        f"docs/{block.name}: the snippet failed (exit {done.returncode}); fix the page or mark "
        f"the block `<!-- snippet: skip because <reason> -->`:\n{done.stdout[-3000:]}"
        f"\n{done.stderr[-6000:]}"
    )


def _run_pytest(block: Block, tmp_path: Path, example: Path) -> None:
    """A model test as the page shows it, with the page's conftest.py, against the example."""
    page = DOCS / block.page
    for other in page_blocks(page):
        if other.title and Path(other.title).name == "conftest.py":
            (tmp_path / "conftest.py").write_text(other.code)
    name = Path(block.title).name if block.title else f"test_snippet_{block.line}.py"
    (tmp_path / name).write_text(block.code)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name],
        cwd=tmp_path,
        env=_env(MMEPACK_ARTIFACT_DIR=str(example.parent)),
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT_S,
        check=False,
    )
    output = f"{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, f"docs/{block.name}: the model test failed:\n{output[-6000:]}"
    passed = _PASSED.search(done.stdout)
    assert passed and int(passed.group(1)) > 0, f"docs/{block.name}: no test passed:\n{output}"
