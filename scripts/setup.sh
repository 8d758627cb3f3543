#!/usr/bin/env bash
# Set up this checkout on a fresh Debian 12 machine: system packages (only with --test: what the
# test suite's real stand-ins need), a virtual environment in .venv, the package and its pins.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

# System packages the tests drive for real: the browser for the web UI, SoftHSM2 for PKCS#11.
APT_TEST_PACKAGES=(chromium fonts-dejavu-core softhsm2)

if [ "$want_test" = 1 ]; then
  missing=()
  for pkg in "${APT_TEST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "Installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if [ "$want_test" = 1 ]; then
  .venv/bin/python -m pip install -q -e '.[test]' 2>&1 | grep -v -i "warning" || true
else
  .venv/bin/python -m pip install -q -e . 2>&1 | grep -v -i "warning" || true
fi
.venv/bin/python -c "import unioncard" # fail here, not later, if the install did not work
