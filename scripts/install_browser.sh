#!/usr/bin/env bash
# Debian's Chromium for the report's browser tests (tests/test_report_browser.py; scripts/install.sh --dev).
# The tests drive /usr/bin/chromium with Playwright's Python client (a pip dev dependency); no browser
# is ever downloaded from elsewhere. Idempotent: installs only what is missing.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
fi
chromium --version
