"""Plain helpers of the exec tests, importable by name from any test module (a test module
that imported them `from conftest` got whichever conftest pytest had loaded first: with
tests/vfs and tests/exec in one run, the wrong one)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def objmount_cmd(*options: str) -> list[str]:
    return [sys.executable, "-m", "objmount", "exec", *options]


def compile_c(out: Path, source: str | Path, *flags: str, optional: bool = False) -> Path | None:
    """Build a C probe: `source` is C text (str) or a .c file (Path), `out` the program.
    `flags` follow the source on gcc's line (so -l and -Wl options work). Without a C
    compiler the test is skipped; a build that fails fails it, with the compiler's words,
    or gives None with `optional` (for what a machine may lack, such as -static)."""
    import shutil
    import subprocess

    import pytest

    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    if isinstance(source, str):
        src = out.parent / (out.name + ".c")
        src.write_text(source)
    else:
        src = source
    done = subprocess.run([cc, str(src), "-o", str(out), *flags], capture_output=True, text=True)
    if done.returncode != 0:
        if optional:
            return None
        pytest.fail(f"cannot build {src.name}: {done.stderr.strip()[:500]}")
    return out
