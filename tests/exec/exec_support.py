"""Plain helpers of the exec tests, importable by name from any test module (a test module
that imported them `from conftest` got whichever conftest pytest had loaded first: with
tests/vfs and tests/exec in one run, the wrong one)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def objmount_cmd(*options: str) -> list[str]:
    return [sys.executable, "-m", "objmount", "exec", *options]
