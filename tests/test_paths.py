"""objmount/paths.py, the pure path logic, and the fast path's C classification held to the
same answers on one table (tests/probe/classify_harness.c builds prefilter.c's functions
into a small program)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from objmount import paths
from objmount.paths import Lexical
from tracer import prefilter
from vfs.mounts import Mount, MountTable
from vfs.namespace import link_target_path

HERE = Path(__file__).resolve().parent
ROOTS = paths.roots_of(["/data/in", "/w"])

# (path, its class with ROOTS)
LEXICAL = [
    ("/", Lexical.LOCAL), ("/usr/bin/python3", Lexical.LOCAL), ("/objmount", Lexical.VIRTUAL),
    ("/objmount/", Lexical.VIRTUAL), ("/objmount/s3/b/k", Lexical.VIRTUAL), ("/objmountx", Lexical.LOCAL),
    ("/objmoun", Lexical.LOCAL), ("/data", Lexical.LOCAL), ("/data/in", Lexical.VIRTUAL),
    ("/data/in/", Lexical.VIRTUAL), ("/data/inx", Lexical.LOCAL), ("/data/in/../x", Lexical.LOCAL),
    ("/data/x/../in/y", Lexical.VIRTUAL), ("//objmount", Lexical.VIRTUAL), ("/./objmount/s3", Lexical.VIRTUAL),
    ("/usr/../objmount", Lexical.VIRTUAL), ("/objmount/..", Lexical.LOCAL), ("/objmount/../usr", Lexical.LOCAL),
    ("/data/in/.", Lexical.VIRTUAL), ("/data/./in", Lexical.VIRTUAL), ("/data//in", Lexical.VIRTUAL),
    ("/../../w", Lexical.VIRTUAL), ("/w", Lexical.VIRTUAL), ("/wx", Lexical.LOCAL), ("/w/.x", Lexical.VIRTUAL),
    ("/proc/self/fd/3", Lexical.FD_LINK), ("/proc/", Lexical.FD_LINK), ("/proc", Lexical.LOCAL),
    ("/dev/fd/3", Lexical.FD_LINK), ("/dev/fd", Lexical.LOCAL), ("/dev/fdx", Lexical.LOCAL),
    ("//proc/self/fd/3", Lexical.FD_LINK), ("/dev/./fd/1", Lexical.FD_LINK), ("/x/../proc/1/fd/0", Lexical.FD_LINK),
    ("/dev/stdin", Lexical.FD_LINK), ("/dev/stdout", Lexical.FD_LINK), ("/dev//stderr", Lexical.FD_LINK),
    ("/dev/stdinx", Lexical.LOCAL), ("/dev/std", Lexical.LOCAL),
    ("/objmount/ü", Lexical.VIRTUAL),
    # a '..' from a name below a root: where it leads depends on that name (the supervisor walks it)
    ("/data/in/l/../../x", Lexical.VIRTUAL), ("/data/in/a/b/../../../x", Lexical.VIRTUAL),
    ("/objmount/s3/b/../../../usr", Lexical.VIRTUAL), ("/w/x/..", Lexical.VIRTUAL), ("/w/x/../..", Lexical.VIRTUAL),
    ("/data/in/..", Lexical.LOCAL), ("/data/x/y/../..", Lexical.LOCAL), ("/w/../w/..", Lexical.LOCAL),
    ("", Lexical.RELATIVE), (".", Lexical.RELATIVE), ("./.", Lexical.RELATIVE), ("..", Lexical.CLIMBS),
    ("a", Lexical.RELATIVE), ("a/b", Lexical.RELATIVE), ("./a", Lexical.RELATIVE), ("...", Lexical.RELATIVE),
    ("..a", Lexical.RELATIVE), ("a/..", Lexical.CLIMBS), ("a/./..", Lexical.CLIMBS), ("a/../w", Lexical.CLIMBS),
    ("objmount", Lexical.CLIMBS), ("objmount/s3", Lexical.CLIMBS), ("./objmount/s3", Lexical.CLIMBS),
    (".//objmount", Lexical.CLIMBS), ("in", Lexical.CLIMBS), ("in/f", Lexical.CLIMBS), ("data/in", Lexical.CLIMBS),
    ("w", Lexical.CLIMBS), ("w/x", Lexical.CLIMBS), ("x/objmount", Lexical.RELATIVE), ("x/w", Lexical.RELATIVE),
    ("é/../objmount", Lexical.CLIMBS),
    ("s3://b/k", Lexical.VIRTUAL), ("s3:/b/k", Lexical.VIRTUAL), ("s3://", Lexical.VIRTUAL),
    ("s3:", Lexical.RELATIVE), ("s3:x", Lexical.RELATIVE), ("s3", Lexical.RELATIVE),
]

# (base, relative path, whether the joined path is virtual with ROOTS)
JOINED = [
    ("/", "objmount/s3", True), ("/", "./objmount", True), ("/", "objmountx", False), ("/data", "in/f", True),
    ("/data", "inx", False), ("/data/x", "../in", True), ("/data/in", "..", False), ("/data/in/d", "../../x", True),
    ("/data/in/d", "../..", True), ("/data/in/d", "..", True), ("/usr", "../objmount/s3", True),
    ("/usr", "../usr/bin", False), ("/", "w", True), ("/", "wx/..", False), ("/", "wx/../w/f", True),
    ("/a/b", "../../../../w", True), ("/tmp", "", False),
]


@pytest.mark.parametrize("path,expected", LEXICAL)
def test_lexical_class(path, expected):
    assert paths.lexical_class(path, ROOTS) is expected


@pytest.mark.parametrize("base,path,virtual", JOINED)
def test_joined_paths(base, path, virtual):
    assert paths.joined_virtual(base, path, ROOTS) is virtual


def test_normalize_join_and_the_last_component():
    assert paths.normalize("//a/./b/../c/") == "/a/c"
    assert paths.normalize("/..") == "/"
    assert paths.normalize("/a/../../b") == "/b"
    assert paths.join("/x/y", "../z") == "/x/z"
    assert paths.join("/x", "/abs/./p") == "/abs/p"
    assert [paths.wants_dir(p) for p in ("d/", "d/.", ".", "d", "d/..")] == [True, True, True, False, False]
    assert [paths.last_dots(p) for p in ("d/.", "d/..", "d/../", ".", "d", "d/.x")] == [".", "..", "..", ".", "", ""]
    assert paths.too_long_name("a/" + "n" * 256) and not paths.too_long_name("a/" + "n" * 255)
    assert paths.too_long_name("é" * 128) and not paths.too_long_name("é" * 127)   # bytes, not characters
    assert paths.from_url("s3://b/k") == "/objmount/s3/b/k"
    assert paths.from_url("s3:/b") == "/objmount/s3/b"
    assert paths.from_url("s3://") == "/objmount/s3"
    assert paths.from_url("s3:b") is None and paths.from_url("/s3://b") is None
    assert paths.first_name("././a/b") == "a" and paths.first_name("./") == ""
    assert paths.root_components(ROOTS) == {"objmount", "data", "in", "w"}


def test_the_mount_table_agrees_with_under_roots():
    table = MountTable([Mount("/data/in", "s3://b", ""), Mount("/w", "s3://c", "p/")])
    assert set(paths.roots_of(table.targets)) == set(ROOTS)
    for path, _ in LEXICAL + [(paths.join(b, p), None) for b, p, _ in JOINED]:
        if path.startswith("/"):
            norm = paths.normalize(path)
            assert table.is_virtual(norm) is paths.under_roots(norm, ROOTS), norm


@pytest.mark.parametrize("link,target", [
    ("/w/l", "f"), ("/w/d/l", "../f"), ("/w/l", "/abs/x"), ("/w/l", "//abs"), ("/w/l", "../../../.."),
    ("/w/l", "./a//b/."), ("/w/d/l", ".."), ("/w/l", ""), ("/l", "../x"), ("/w/l", "a/../../objmount/s3/b"),
])
def test_the_vfs_follows_a_link_to_where_paths_joins_it(link, target):
    assert link_target_path(link, target) == paths.join(paths.parent(link), target)


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    exe = tmp_path_factory.mktemp("harness") / "classify"
    subprocess.run(["gcc", "-O1", f"-DPREFILTER_PAGE={prefilter.PAGE:#x}UL", "-o", str(exe),
                    str(HERE / "probe" / "classify_harness.c")], check=True)

    def ask(lines: list[str]) -> list[int]:
        out = subprocess.run([str(exe), ":".join(ROOTS)], input="\n".join(lines).encode() + b"\n",
                             capture_output=True, check=True, timeout=30)
        return [int(c) for c in out.stdout.decode().split()]
    return ask


def test_the_fast_path_classifies_paths_as_the_python_module_does(harness):
    assert harness([f"L\t{p}" for p, _ in LEXICAL]) == [int(c) for _, c in LEXICAL]
    assert harness([f"J\t{b}\t{p}" for b, p, _ in JOINED]) == [int(not v) for _, _, v in JOINED]
