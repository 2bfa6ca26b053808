from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
POLYGLOT = REPO.parent / "shared" / "polyglot-benchmark"


@pytest.fixture(scope="session")
def polyglot_path() -> Path:
    """The Polyglot tree beside the project (../shared/polyglot-benchmark); never a copy in the repo."""
    if not POLYGLOT.is_dir():
        pytest.fail(f"Polyglot benchmark not found at {POLYGLOT}; CI and developers have it in ../shared")
    return POLYGLOT
