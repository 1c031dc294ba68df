"""mkdocs, run from the locked `docs` resolve: `./pants run ci/mkdocs_main.py -- build --strict`.

A python_source rather than a pex_binary, so that `./pants package ::` does not write a mkdocs PEX
into dist/ on every run; ./docs.sh and ci/docs.sh call it.
"""

from mkdocs.__main__ import cli

if __name__ == "__main__":
    cli()
