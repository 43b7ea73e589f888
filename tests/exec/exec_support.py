"""Plain helpers of the exec tests, importable by name from any test module (a test module
that imported them `from conftest` got whichever conftest pytest had loaded first: with
tests/vfs and tests/exec in one run, the wrong one)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def objmount_cmd(*options: str) -> list[str]:
    if os.environ.get("OBJMOUNT_TEST_SERVER") == "rclone":   # as the README says for it: a marker becomes a file
        options = ("--no-dir-markers", *options)
    return [sys.executable, "-m", "objmount", "exec", *options]
