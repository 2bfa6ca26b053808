"""The one rule for tests that need a Docker Engine API (Docker, or Podman's service, which
scripts/setup_podman.sh starts and hgm finds with no DOCKER_HOST): skipped with the reason on a
developer's machine without one, failed on CI (which installs one)."""

from __future__ import annotations

import os

import pytest


def missing_engine(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"not set up on CI: {what}")
    pytest.skip(what)
