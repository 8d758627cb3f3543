#!/usr/bin/env bash
# The demo on the embedded default (SQLite in ./var, no devices): installs what it needs, builds
# a demo union the first time, prints the URL and the demo logins, serves on 127.0.0.1:5000.
# Options go to `unioncard demo` (e.g. --port 8080, --scale 0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/unioncard demo "$@"
