"""The documentation's shape: a short README, every page in the site's navigation, figures only
on the results page.

`mkdocs build --strict` (ci/docs.sh) checks links and anchors; these checks need no mkdocs and
run with the library's tests, so a page left out of the nav, a README that grows back into a
manual or a benchmark table in a guide fails `./pants test` too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README_MAX_LINES = 250
# What a measurement looks like in prose or a table: a figure with a unit of time, or the words
# benchmarks report with. Durations in settings ("default 60 s") are allowed outside results.md
# only as defaults, timeouts and limits, which these patterns leave alone.
MEASUREMENT = re.compile(
    r"\bmedian\b|\bload average\b|\bp(50|90|99)_ms\b|\d+(\.\d+)?x faster|"
    r"\b\d+\.\d+ s\b(?! (to connect|without|of backoff))"
)
# Pages that link to figures rather than give them.
MEASUREMENTS_PAGE = "results.md"


def _nav_pages(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _nav_pages(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from _nav_pages(value)


def _excluded_folders() -> set[str]:
    """The folders `exclude_docs` in mkdocs.yml keeps out of the site (`_incoming/`, `gen/`)."""
    config = YAML(typ="safe").load((REPO / "mkdocs.yml").read_text())
    return {entry.rstrip("/") for entry in config["exclude_docs"].split() if entry.endswith("/")}


def _site_pages() -> set[str]:
    """Every Markdown page the site builds: docs/ less the folders mkdocs.yml excludes."""
    excluded = _excluded_folders()
    return {
        path.relative_to(DOCS).as_posix()
        for path in DOCS.rglob("*.md")
        if path.relative_to(DOCS).parts[0] not in excluded
    }


def test_readme_is_short_and_holds_no_measurements() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    found = [
        f"README.md:{n}: {line}" for n, line in enumerate(lines, 1) if MEASUREMENT.search(line)
    ]
    assert not found, "measurements belong in docs/results.md:\n" + "\n".join(found)


def test_readme_links_into_the_docs_resolve() -> None:
    text = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(((?:docs/)?[^)#:\s]+\.md)(?:#[^)]*)?\)", text)
    assert any(t.startswith("docs/") for t in targets), "the README links into the docs"
    missing = [t for t in targets if not (REPO / t).is_file()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page() -> None:
    config = YAML(typ="safe").load((REPO / "mkdocs.yml").read_text())
    nav = set(_nav_pages(config["nav"]))
    pages = _site_pages()
    assert nav - pages == set(), f"nav entries without a page: {sorted(nav - pages)}"
    assert pages - nav == set(), f"pages missing from the nav: {sorted(pages - nav)}"


def test_incoming_pages_stay_out_of_the_site() -> None:
    config = YAML(typ="safe").load((REPO / "mkdocs.yml").read_text())
    assert "_incoming/" in config["exclude_docs"].split()
    assert config.get("strict") is True


def test_figures_live_only_on_the_results_page() -> None:
    found = []
    for page in sorted(_site_pages() - {MEASUREMENTS_PAGE}):
        for n, line in enumerate((DOCS / page).read_text().splitlines(), 1):
            if MEASUREMENT.search(line):
                found.append(f"docs/{page}:{n}: {line}")
    assert not found, "move these to docs/results.md and link to them:\n" + "\n".join(found)


def test_the_site_renders_offline() -> None:
    """No web fonts and no script or stylesheet from another host: the site is read offline."""
    config_text = (REPO / "mkdocs.yml").read_text()
    config = YAML(typ="safe").load(config_text)
    assert config["theme"].get("font") is False, "Material fetches Google Fonts unless font: false"
    extras = f"{config.get('extra_javascript', '')} {config.get('extra_css', '')}"
    assert not re.search(r"https?://", extras), f"mkdocs.yml loads from another host: {extras}"
    for page in sorted(_site_pages()):
        text = (DOCS / page).read_text()
        assert not re.search(r"<script[^>]+src=\"https?://", text), f"docs/{page} loads a script"
