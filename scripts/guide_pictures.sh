#!/usr/bin/env bash
# The user guide's pictures (docs/guide/img), taken by the phone-size browser test from the pages
# as they are now. Run after changing a page the guide shows.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/guide/img
UNIONCARD_SCREENSHOTS="$PWD/docs/guide/img" .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/test_phone_pages.py -k every_page
ls docs/guide/img
