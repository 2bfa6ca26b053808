"""Building the docker backend's evaluation image (`hgm docker build`) from docker/Dockerfile.

The build context is a temporary directory holding the Dockerfile and `certs/`: the extra CA
certificates of this host (/usr/local/share/ca-certificates, e.g. an intercepting proxy's), which
the image trusts so that pip can reach PyPI during the build where this host can.
Layer caching is the engine's: a rebuild with nothing changed takes seconds.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hgm.errors import UserError
from hgm.sandbox.docker import DEFAULT_IMAGE, connect

TARGETS = ("full", "ci")
"""full: all six Polyglot toolchains; ci: python, rust and javascript only (faster to build)."""
DEFAULT_BASE = "python:3.12-slim-bookworm"
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")


def dockerfile_dir() -> Path:
    """docker/ of a source checkout, or hgm/docker/ inside an installed wheel."""
    here = Path(__file__).resolve().parent.parent  # .../hgm
    for candidate in (here / "docker", here.parent / "docker"):
        if (candidate / "Dockerfile").is_file():
            return candidate
    raise UserError(f"docker/Dockerfile not found next to {here}; reinstall hgm (pip install hgm) or use a checkout")


@dataclass(frozen=True)
class Built:
    tag: str
    image_id: str
    seconds: float


def _context(into: Path) -> Path:
    shutil.copy(dockerfile_dir() / "Dockerfile", into / "Dockerfile")
    certs = into / "certs"
    certs.mkdir()
    (certs / "README").write_text("extra CA certificates of the build host (copied by hgm docker build)\n")
    if EXTRA_CA_DIR.is_dir():
        for crt in EXTRA_CA_DIR.rglob("*.crt"):
            shutil.copy(crt, certs / crt.name)
    return into


def build_image(
    *,
    tag: str = DEFAULT_IMAGE,
    base: str | None = None,
    target: str = "full",
    nocache: bool = False,
    on_line: Callable[[str], None] = lambda line: None,
) -> Built:
    """Build the evaluation image through the engine, passing each build-log line to `on_line`."""
    if target not in TARGETS:
        raise UserError(f"unknown image target {target!r}; known: {', '.join(TARGETS)}")
    client = connect(timeout=3600)
    start = time.monotonic()
    image_id = ""
    with tempfile.TemporaryDirectory(prefix="hgm-docker-") as tmp:
        context = _context(Path(tmp))
        stream = client.api.build(
            path=str(context), tag=tag, target=target, buildargs={"BASE": base} if base else None,
            nocache=nocache, rm=True, forcerm=True, decode=True,
        )  # fmt: skip
        for chunk in stream:
            if "error" in chunk:
                detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                raise UserError(f"docker build failed: {str(detail).strip()}\n{_base_hint(base)}")
            for line in str(chunk.get("stream", "")).splitlines():
                if line.strip():
                    on_line(line.rstrip())
            if "aux" in chunk and isinstance(chunk["aux"], dict):
                image_id = chunk["aux"].get("ID", image_id)
    image = client.images.get(tag)
    return Built(tag=tag, image_id=image_id or str(image.id), seconds=time.monotonic() - start)


def _base_hint(base: str | None) -> str:
    if base:
        return f"(base image {base}: it must exist in the engine or be pullable)"
    return (f"(base image {DEFAULT_BASE} is pulled from a registry; without one, run scripts/setup_podman.sh "
            "and pass --base localhost/debian:bookworm)")
