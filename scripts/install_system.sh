#!/usr/bin/env bash
# System packages the hgm sandbox needs (Debian/Ubuntu). Idempotent: installs only what is missing.
#   bubblewrap  - the `bwrap` sandbox backend
#   util-linux  - `prlimit` (file-size / memory rlimits of sandboxed commands)
# Usage: sudo scripts/install_system.sh   (CI calls it on a fresh Debian 12)
set -euo pipefail

need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v prlimit >/dev/null 2>&1 || need+=(util-linux)

if ((${#need[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# Check that bwrap can create the namespaces the sandbox uses (fails in some containers).
# Not fatal: the rest of the set-up still works, and hgm names the problem when bwrap is chosen.
if bwrap --ro-bind / / --unshare-pid --unshare-net --proc /proc --dev /dev --die-with-parent true; then
  echo "sandbox prerequisites ok: $(bwrap --version), $(command -v prlimit)"
else
  echo "WARNING: bwrap is installed but cannot create namespaces here (container without privileges?);" \
       "run 'hgm doctor', or use sandbox.backend=docker" >&2
fi
