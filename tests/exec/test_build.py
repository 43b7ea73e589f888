"""A build is the same build under objmount: an autotools project configured, made and
run natively, under objmount, and under objmount without the fast path gives the same
bytes (configure's output and what it wrote, the objects, the program and its output)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

CONFIGURE_AC = """AC_INIT([buildprobe], [2.1])
AC_CONFIG_SRCDIR([main.c])
AC_CONFIG_HEADERS([config.h])
AC_PROG_CC
AC_PROG_MAKE_SET
AC_CHECK_HEADERS([fcntl.h sys/stat.h unistd.h no/such/header.h])
AC_CHECK_FUNCS([strdup getcwd no_such_function_xyz])
AC_CHECK_SIZEOF([long])
AC_SEARCH_LIBS([sqrt], [m])
AC_CONFIG_FILES([Makefile])
AC_OUTPUT
"""
MAKEFILE_IN = """CC = @CC@
CFLAGS = @CFLAGS@
DEFS = @DEFS@
LIBS = @LIBS@
OBJS = main.o util.o
prog: $(OBJS)
\t$(CC) $(CFLAGS) -o $@ $(OBJS) $(LIBS)
%.o: %.c config.h
\t$(CC) $(CFLAGS) $(DEFS) -I. -c $< -o $@
"""
MAIN_C = r"""#include "config.h"
#include <stdio.h>
int twice(int);
int main(void) {
#ifdef HAVE_STRDUP
    puts("strdup");
#endif
#ifdef HAVE_NO_SUCH_FUNCTION_XYZ
    puts("impossible");
#endif
    printf("%s %d %d\n", PACKAGE_STRING, (int)SIZEOF_LONG, twice(21));
    return 0;
}
"""
UTIL_C = "int twice(int x) { return 2 * x; }\n"
# What the build leaves that must not differ (config.log and config.status hold times,
# host names and pids, natively too).
OUTPUTS = ["configure.out", "make.out", "prog.out", "config.h", "Makefile", "main.o", "util.o", "prog"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    for tool in ("autoconf", "autoheader", "make", "gcc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    src = tmp_path_factory.mktemp("autotools") / "src"
    src.mkdir()
    (src / "configure.ac").write_text(CONFIGURE_AC)
    (src / "Makefile.in").write_text(MAKEFILE_IN)
    (src / "main.c").write_text(MAIN_C)
    (src / "util.c").write_text(UTIL_C)
    for tool in ("autoconf", "autoheader"):
        subprocess.run([tool], cwd=src, check=True, capture_output=True, timeout=120)
    return src


BUILD = "./configure > configure.out && make > make.out 2>&1 && ./prog > prog.out"


def test_configure_make_and_run_give_the_same_bytes(objmount, project, tmp_path):
    where = tmp_path / "build"   # one path for every build: the outputs may name it

    def build(run) -> dict[str, bytes]:
        shutil.rmtree(where, ignore_errors=True)
        shutil.copytree(project, where)
        done = run()
        assert done.returncode == 0, done.stderr
        return {name: (where / name).read_bytes() for name in OUTPUTS}

    native = build(lambda: subprocess.run(["sh", "-c", BUILD], cwd=where, capture_output=True, timeout=300))
    assert native["prog.out"] == b"strdup\nbuildprobe 2.1 8 42\n"
    for options in ((), ("--no-fast-path",)):
        traced = build(lambda: objmount(BUILD, *options, cwd=where, timeout=600))
        for name in OUTPUTS:
            assert traced[name] == native[name], (options, name)
