"""Permission probe: run as root on DIR, builds a tree of owners and modes, then drops to
uid/gid 65534 (no supplementary groups) and prints what each operation answers. The same
probe runs on a local directory and under objmount on a virtual one; the outputs must be
the same. Usage: perm_probe.py DIR"""

import errno
import os
import socket
import stat
import sys

NOBODY = 65534
GROUP = 1234      # a group nobody is not in
top = sys.argv[1]


def p(*parts):
    return os.path.join(top, *parts)


def mk(path, mode, uid=0, gid=0):
    os.mkdir(path)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def put(path, mode, uid=0, gid=0, data=b"data\n"):
    with open(path, "wb") as f:
        f.write(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def mode_of(path):
    st = os.stat(path)
    return f"{stat.S_IMODE(st.st_mode):o} {st.st_uid} {st.st_gid}"


def show(name, fn):
    try:
        out = fn()
        print(f"{name}: ok" + (f" {out}" if out is not None else ""), flush=True)
    except OSError as exc:
        print(f"{name}: {errno.errorcode.get(exc.errno, exc.errno)}", flush=True)


def read(path):
    with open(path, "rb") as f:
        return f.read().decode().strip()


def append(path):
    with open(path, "ab") as f:
        f.write(b"more\n")


def create(path):
    with open(path, "xb") as f:
        f.write(b"new\n")


# --- as root -------------------------------------------------------------------------
os.umask(0o022)
mk(p("open"), 0o755)
put(p("open", "ro"), 0o644)
put(p("open", "rw"), 0o666)
put(p("open", "none"), 0o600)
put(p("open", "mine"), 0o600, NOBODY, NOBODY)
put(p("open", "group"), 0o640, 0, NOBODY)
mk(p("nosearch"), 0o754)
put(p("nosearch", "f"), 0o644)
mk(p("ro"), 0o755)
put(p("ro", "f"), 0o666)
mk(p("w"), 0o777)
put(p("w", "roots"), 0o644)
mk(p("sticky"), 0o1777)
put(p("sticky", "roots"), 0o666)
put(p("sticky", "mine"), 0o644, NOBODY, NOBODY)
mk(p("sgid"), 0o2777, 0, GROUP)
put(p("open", "suid"), 0o644, NOBODY, NOBODY)
os.chmod(p("open", "suid"), 0o6755)
put(p("open", "rootsuid"), 0o6755)
os.chown(p("open", "rootsuid"), 0, 0)          # root's chown clears set-id bits too
print("root chown of a 6755 file:", mode_of(p("open", "rootsuid")), flush=True)
put(p("open", "x"), 0o744)
for name in ("suid-open", "suid-trunc", "suid-ftrunc"):
    put(p("open", name), 0o644, NOBODY, NOBODY)
    os.chmod(p("open", name), 0o6755)
root_sock = socket.socket(socket.AF_UNIX)
root_sock.bind(p("open", "sock"))                # 0755 & ~umask: nobody may not connect

# --- as nobody ------------------------------------------------------------------------
os.setgroups([])
os.setresgid(NOBODY, NOBODY, NOBODY)
os.setresuid(NOBODY, NOBODY, NOBODY)
show("read ro", lambda: read(p("open", "ro")))
show("write ro", lambda: append(p("open", "ro")))
show("write rw", lambda: append(p("open", "rw")))
show("read none", lambda: read(p("open", "none")))
show("read mine", lambda: read(p("open", "mine")))
show("read group", lambda: read(p("open", "group")))
show("read nosearch/f", lambda: read(p("nosearch", "f")))
show("stat nosearch/f", lambda: mode_of(p("nosearch", "f")))
show("list nosearch", lambda: sorted(os.listdir(p("nosearch"))))
show("access none R", lambda: os.access(p("open", "none"), os.R_OK))
show("access ro W", lambda: os.access(p("open", "ro"), os.W_OK))
show("access x X", lambda: os.access(p("open", "x"), os.X_OK))
show("exec x", lambda: os.execv(p("open", "x"), ["x"]))
show("create in ro", lambda: create(p("ro", "new")))
show("mkdir in ro", lambda: os.mkdir(p("ro", "d")))
show("unlink in ro", lambda: os.unlink(p("ro", "f")))
show("rename in ro", lambda: os.rename(p("ro", "f"), p("ro", "g")))
show("symlink in ro", lambda: os.symlink("x", p("ro", "l")))
show("truncate ro", lambda: os.truncate(p("open", "ro"), 0))
show("unlink roots in w", lambda: os.unlink(p("w", "roots")))
show("unlink roots in sticky", lambda: os.unlink(p("sticky", "roots")))
show("rename roots in sticky", lambda: os.rename(p("sticky", "roots"), p("sticky", "gone")))
show("rename onto roots in sticky", lambda: os.rename(p("sticky", "mine"), p("sticky", "roots")))
show("unlink mine in sticky", lambda: os.unlink(p("sticky", "mine")))
show("create in sticky", lambda: (create(p("sticky", "new")), mode_of(p("sticky", "new")))[1])
show("create in sgid", lambda: (create(p("sgid", "new")), mode_of(p("sgid", "new")))[1])
show("mkdir in sgid", lambda: (os.mkdir(p("sgid", "d"), 0o755), mode_of(p("sgid", "d")))[1])
show("chmod roots", lambda: os.chmod(p("open", "ro"), 0o777))
show("chmod mine", lambda: (os.chmod(p("open", "mine"), 0o2640), mode_of(p("open", "mine")))[1])
show("chown mine to root", lambda: os.chown(p("open", "mine"), 0, -1))
show("chgrp mine to other", lambda: os.chown(p("open", "mine"), -1, GROUP))
show("chgrp mine to own", lambda: (os.chown(p("open", "mine"), -1, NOBODY), mode_of(p("open", "mine")))[1])
show("chown roots -1 -1", lambda: os.chown(p("open", "ro"), -1, -1))
show("utime roots rw explicit", lambda: os.utime(p("open", "rw"), (1, 1)))
show("utime roots rw now", lambda: os.utime(p("open", "rw")))
show("utime roots ro now", lambda: os.utime(p("open", "ro")))
show("utime mine explicit", lambda: os.utime(p("open", "mine"), (1, 1)))
show("write suid", lambda: (append(p("open", "suid")), mode_of(p("open", "suid")))[1])
show("link roots ro", lambda: os.link(p("open", "ro"), p("w", "link")))


def open_then_write(path):
    fd = os.open(path, os.O_WRONLY)
    try:
        before = mode_of(path)        # the open alone clears nothing
        os.write(fd, b"x")
        return before + " then " + mode_of(path)
    finally:
        os.close(fd)


def ftrunc(path):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, 1)
    finally:
        os.close(fd)
    return mode_of(path)


def bind(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(path)
        return mode_of(path)
    finally:
        s.close()


def connect(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
    finally:
        s.close()


show("open then write suid", lambda: open_then_write(p("open", "suid-open")))
show("truncating open suid", lambda: (os.close(os.open(p("open", "suid-trunc"), os.O_WRONLY | os.O_TRUNC)),
                                      mode_of(p("open", "suid-trunc")))[1])
show("ftruncate suid", lambda: ftrunc(p("open", "suid-ftrunc")))
show("bind in ro", lambda: bind(p("ro", "sock")))
show("bind in w", lambda: bind(p("w", "sock")))
show("connect to root's socket", lambda: connect(p("open", "sock")))
# The search permission of the directory holding the last name, for the calls that do not
# follow it (lchown) and for a link's old name.
show("lchown nosearch/f", lambda: os.chown(p("nosearch", "f"), -1, -1, follow_symlinks=False))
show("link from nosearch", lambda: os.link(p("nosearch", "f"), p("w", "from-nosearch")))


def relative_to(directory, name):
    """A lookup relative to a directory descriptor opened by this (unprivileged) process."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.utime(name, dir_fd=fd)
        f = os.open(name, os.O_RDONLY, dir_fd=fd)
        data = os.read(f, 100).decode().strip()
        os.close(f)
        return [mode_of(p("open", name)), data]
    finally:
        os.close(fd)


show("lookups relative to an opened directory", lambda: relative_to(p("open"), "rw"))
