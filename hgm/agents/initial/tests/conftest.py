import sys
from pathlib import Path

# The agent is a directory of scripts, not a package: make its modules importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
