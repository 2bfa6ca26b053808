#!/usr/bin/env bash
# Make a Docker Engine API available without Docker: Podman's Docker-compatible service.
#
# Idempotent; run as root on Debian 12 (CI does); hgm finds the socket with no DOCKER_HOST:
#   sudo scripts/setup_podman.sh
# Steps (each skipped when already done):
#   1. apt install podman runc debootstrap
#   2. /etc/containers/containers.conf: runc + cgroupfs (crun cannot set rlimits/cgroups here)
#   3. `podman system service` on unix:///run/podman.sock, in the background
#   4. base image localhost/debian:bookworm by debootstrap + import (no registry needed)
# Then `hgm docker build --base localhost/debian:bookworm` builds the evaluation image.
set -euo pipefail

SOCK="${PODMAN_SOCK:-/run/podman.sock}"
BASE_IMAGE="${HGM_BASE_IMAGE:-localhost/debian:bookworm}"
LOG="${PODMAN_SERVICE_LOG:-/var/log/podman-service.log}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

say() { printf '[setup_podman] %s\n' "$*"; }

# 1. packages
missing=()
for pkg in podman runc debootstrap curl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} (apt-get)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
  say "podman, runc, debootstrap, curl already installed"
fi

# 2. engine config
CONF=/etc/containers/containers.conf
if ! grep -q 'runtime = "runc"' "$CONF" 2>/dev/null; then
  say "writing $CONF (runtime runc, cgroupfs)"
  $SUDO mkdir -p /etc/containers
  $SUDO tee "$CONF" >/dev/null <<'EOF'
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
EOF
else
  say "$CONF already configured"
fi

# 3. API service
answering() { curl -fsS --max-time 3 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
if answering; then
  say "podman service already answering on unix://$SOCK"
else
  say "starting podman system service on unix://$SOCK (log: $LOG)"
  $SUDO rm -f "$SOCK"
  # setsid: the service outlives this script and the shell (or CI step) that ran it.
  $SUDO setsid sh -c "exec podman system service --time=0 unix://$SOCK </dev/null >>'$LOG' 2>&1" &
  for _ in $(seq 1 50); do answering && break; sleep 0.2; done
  answering || { say "podman service did not answer; see $LOG"; exit 1; }
  say "podman service answering"
fi

# 4. base image
if $SUDO podman image exists "$BASE_IMAGE"; then
  say "base image $BASE_IMAGE present"
else
  ROOTFS="$(mktemp -d /tmp/hgm-rootfs.XXXXXX)"
  say "building $BASE_IMAGE: debootstrap --variant=minbase bookworm (about a minute)"
  $SUDO debootstrap --variant=minbase bookworm "$ROOTFS" >/dev/null
  say "importing $ROOTFS as $BASE_IMAGE"
  # Same apt sources as Debian's official images (security updates, e.g. rustc-web, live there).
  printf '%s\n' 'deb http://deb.debian.org/debian bookworm main' \
    'deb http://deb.debian.org/debian bookworm-updates main' \
    'deb http://deb.debian.org/debian-security bookworm-security main' | $SUDO tee "$ROOTFS/etc/apt/sources.list" >/dev/null
  $SUDO tar -C "$ROOTFS" -c . | $SUDO podman import -q - "$BASE_IMAGE" >/dev/null
  $SUDO rm -rf "$ROOTFS"
  say "base image $BASE_IMAGE imported"
fi

say "done. Now: hgm docker build --base $BASE_IMAGE (hgm finds $SOCK; another PODMAN_SOCK path: export DOCKER_HOST=unix://$SOCK)"
