#!/usr/bin/env bash
# Set up this checkout on a fresh Debian 12 machine: system packages (only with --test: what the
# test suite's real stand-ins need), a virtual environment in .venv, the package and its pins.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
# What pyscard and pycups compile against (installed always: the devices extra is part of every set-up).
APT_BUILD_PACKAGES=(gcc libpcsclite-dev libcups2-dev swig)
[ "${1:-}" = "--test" ] && want_test=1

# System packages the tests drive for real: the browser for the web UI, SoftHSM2 for PKCS#11,
# pcscd + the vpcd virtual reader for chip encoding, CUPS with a PDF queue for printing, poppler
# and zbar as independent checkers of printed cards; wrk for bench/partner_bench.py.
APT_TEST_PACKAGES=(chromium fonts-dejavu-core softhsm2 pcscd vsmartcard-vpcd cups printer-driver-cups-pdf
                   poppler-utils zbar-tools socat wrk)

wanted=("${APT_BUILD_PACKAGES[@]}")
[ "$want_test" = 1 ] && wanted+=("${APT_TEST_PACKAGES[@]}")
if true; then
  missing=()
  for pkg in "${wanted[@]}"; do
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
  .venv/bin/python -m pip install -q -e '.[devices]' 2>&1 | grep -v -i "warning" || true
fi
.venv/bin/python -c "import unioncard" # fail here, not later, if the install did not work
