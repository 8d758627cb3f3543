#!/usr/bin/env bash
# Set up this checkout on a fresh Debian 12 machine: a virtual environment in .venv, the package
# and its pins. The demo (no flag) needs no compiler and no system package: its reader is sim:
# and its printer file:. --devices adds the PC/SC and CUPS drivers (they compile against system
# libraries, installed here); --test adds those and the stand-ins the test suite drives for real.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-demo}"
case "$mode" in demo|--devices|--test) ;; *) echo "usage: scripts/setup.sh [--devices|--test]" >&2; exit 2 ;; esac
# What pyscard and pycups compile against.
APT_BUILD_PACKAGES=(gcc libpcsclite-dev libcups2-dev swig)
# System packages the tests drive for real: the browser for the web UI, SoftHSM2 for PKCS#11,
# pcscd + the vpcd virtual reader for chip encoding, CUPS with a PDF queue for printing, poppler
# and zbar as independent checkers of printed cards; wrk for bench/partner_bench.py; LibreOffice
# (Calc, headless) to open every export as the users' office programs do; gLabels, the peer
# bench/bureau_bench.py measures card faces against.
APT_TEST_PACKAGES=(chromium fonts-dejavu-core softhsm2 pcscd vsmartcard-vpcd cups printer-driver-cups-pdf
                   poppler-utils zbar-tools socat wrk libreoffice-calc-nogui glabels)

wanted=()
[ "$mode" != demo ] && wanted+=("${APT_BUILD_PACKAGES[@]}")
[ "$mode" = --test ] && wanted+=("${APT_TEST_PACKAGES[@]}")
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "Installing system packages: ${missing[*]}"
  # Another apt (unattended upgrades on a fresh machine) may hold the lock: wait for it, not fail.
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
case "$mode" in
  --test) target='.[test]' ;;
  --devices) target='.[devices]' ;;
  *) target='.' ;;
esac
# pip and setuptools talk a lot (deprecations, build steps): kept in a log, shown only on failure.
if ! .venv/bin/python -m pip install -q -e "$target" > .venv/pip-install.log 2>&1; then
  tail -n 40 .venv/pip-install.log >&2
  echo "Installing the Python packages failed; the whole log is in .venv/pip-install.log" >&2
  exit 1
fi
.venv/bin/python -c "import unioncard" # fail here, not later, if the install did not work
