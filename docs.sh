#!/usr/bin/env bash
# The documentation site (mkdocs.yml, docs/), built with the locked tools of the `docs` resolve
# (3rdparty/python/docs.lock) through Pants, so this needs nothing installed beyond ./pants's own.
#
#   ./docs.sh build    mkdocs build --strict into dist/site/ (a broken link or anchor fails it)
#   ./docs.sh serve    preview on http://127.0.0.1:${MMEPACK_DOCS_PORT:-8000}, rebuilt on save
#
# Open dist/site/index.html straight from disk after a build: the site uses no CDN or web font.
set -euo pipefail
cd "$(dirname "$0")"
# Material prints a multi-line notice about its successor on every run; it is not a warning
# about this site.
export NO_MKDOCS_2_WARNING=1
case "${1:-}" in
  build) shift; exec ./pants run docs:mkdocs -- build --strict "$@" ;;
  serve) shift; exec ./pants run docs:mkdocs -- serve --strict \
           --dev-addr "127.0.0.1:${MMEPACK_DOCS_PORT:-8000}" "$@" ;;
  *) echo "usage: ./docs.sh build|serve [mkdocs options]" >&2; exit 2 ;;
esac
