#!/usr/bin/env bash
# One-shot set-up of hgm on a fresh Debian/Ubuntu machine (root or sudo):
#   system packages (bubblewrap), the Polyglot toolchains' test dependencies, the hgm package.
#   --dev     also the test dependencies (pytest, hypothesis, playwright), SWE-bench's (swebench,
#             datasets: the hgm[swe-bench] extra), Ray (the ray executor's tests), Debian's chromium for
#             the report's browser tests, and Podman's Docker API for the docker tests
#   --docker  Podman's Docker API (for --sandbox docker) without the rest of --dev
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0; docker=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1; docker=1 ;;
    --docker) docker=1 ;;
    *) echo "usage: scripts/install.sh [--dev] [--docker]" >&2; exit 2 ;;
  esac
done
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "system packages"
bash scripts/install_system.sh
step "Polyglot toolchains and test dependencies"
bash scripts/install_toolchains.sh
if [ "$dev" = 1 ]; then
  step "Chromium (Debian's) for the report's browser tests"
  bash scripts/install_browser.sh
fi
if [ "$docker" = 1 ]; then
  step "Podman's Docker Engine API"
  bash scripts/setup_podman.sh
fi
step "hgm (pip install)"
if [ "$dev" = 1 ]; then
  python3 -m pip install --disable-pip-version-check -q -e '.[dev,swe-bench,ray]'
else
  python3 -m pip install --disable-pip-version-check -q -e .
fi
if [ "$docker" = 1 ]; then
  step "docker evaluation image (hgm docker build; CI: python, rust, javascript toolchains only)"
  target=full; [ -n "${CI:-}" ] && target=ci
  hgm docker build --base localhost/debian:bookworm --target "$target"
fi
hgm doctor || true   # a report of what works; problems are explained, set-up goes on
