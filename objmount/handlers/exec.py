"""execve/execveat of a program or #! script stored in the bucket.

A program (ELF): the kernel execs the fully materialized cache file (given the mode's x
bits, so the kernel's own checks apply). A #! script: the kernel would read the cache
file's #! line and exec the interpreter path itself, which may be virtual (a venv in the
bucket) and which would see the cache file's path as the script. So objmount does what
the kernel's binfmt_script does: reads the #! line by the kernel's rules, and execs the
interpreter (its cache file if it is virtual too, following nested #! interpreters)
with argv = interpreter, optional argument, the script's path as the program named it,
the program's argv[1:].
"""

from __future__ import annotations

import errno
import os

from vfs import Kind, VfsError

from .. import permissions as perm
from .attrs import is_executable
from .registry import path_syscall

BINPRM_BUF_SIZE = 256   # the kernel reads this much of a file to find its #! line
MAX_SCRIPTS = 5         # scripts in a chain of #! interpreters the kernel runs; a sixth is ELOOP
MAX_ARGS = 1 << 16


def _spacetab(c: int) -> bool:
    return c in (0x20, 0x09)


def _next_non_spacetab(buf: bytes, first: int, last: int) -> int | None:
    for i in range(first, last + 1):
        if not _spacetab(buf[i]):
            return i
    return None


def _next_terminator(buf: bytes, first: int, last: int) -> int | None:
    for i in range(first, last + 1):
        if _spacetab(buf[i]) or buf[i] == 0:
            return i
    return None


def shebang(head: bytes) -> tuple[bytes, bytes | None] | None:
    """(interpreter, optional argument) from a file's first bytes, parsed as
    fs/binfmt_script.c does; None if it is no #! file. Raises ENOEXEC where the kernel
    does (no interpreter name, or one cut off by the 256-byte buffer)."""
    if head[:2] != b"#!":
        return None
    buf = head[:BINPRM_BUF_SIZE].ljust(BINPRM_BUF_SIZE, b"\0")  # the kernel's buffer
    buf_end = BINPRM_BUF_SIZE - 1
    i_end = buf.find(b"\n")
    if i_end < 0:
        first = _next_non_spacetab(buf, 2, buf_end)
        if first is None or _next_terminator(buf, first, buf_end) is None:
            raise VfsError(errno.ENOEXEC, "#! line too long: the interpreter name is cut off")
        i_end = buf_end
    while _spacetab(buf[i_end - 1]):
        i_end -= 1
    i_name = _next_non_spacetab(buf, 2, i_end)
    if i_name is None or i_name == i_end:
        raise VfsError(errno.ENOEXEC, "#! line names no interpreter")
    i_sep = _next_terminator(buf, i_name, i_end)
    i_arg = _next_non_spacetab(buf, i_sep, i_end) if i_sep is not None and buf[i_sep] != 0 else None
    name = buf[i_name:i_sep if i_sep is not None else i_end].split(b"\0", 1)[0]
    arg = buf[i_arg:i_end].split(b"\0", 1)[0] if i_arg is not None else None
    return name, arg


def _materialized(sup, path: str):
    """The virtual file's first bytes and its cache file, present in full, after the
    caller's exec permission is checked."""
    meta = sup.vfs.lookup(path)
    if meta.kind is not Kind.FILE:
        raise VfsError(errno.EACCES, f"{path}: not a regular file")
    sup.allow(perm.permission(meta, perm.X_OK, sup.creds()), path)
    file = sup.vfs.open(path)
    try:
        if file.item.writers > 0:
            # open for writing (in any process of the run): the kernel's deny_write_access
            # refuses it, a #! script too (which the kernel never opens here: we read it)
            exc = VfsError(errno.ETXTBSY, f"{path}: text file busy")
            exc.quiet = True   # the program's answer, as the kernel's: no log line
            raise exc
        file.materialize()
        sup.vfs.accessed(path, file)  # the kernel reads what it executes: atime (relatime)
        os.chmod(file.cache_path, 0o755 if is_executable(file.meta) else 0o644)
        with open(file.cache_path, "rb") as f:
            head = f.read(BINPRM_BUF_SIZE)
        return head, file.cache_path
    finally:
        file.close()


def _exec(sup, stop, argv_index: int) -> None:
    if sup.path_arg(stop) is None:
        return
    named = os.fsdecode(stop.read_cstring(sup.path_addr(stop)))
    target = sup.virtual_arg(stop)
    if target is None:
        return
    if sup.path_dirfd(stop) is not None and not named.startswith("/"):
        named = target.path  # the kernel would say /dev/fd/N/name; the path says more
    # Follow #! lines while they lead to virtual files: `prepend` collects, outermost
    # first, what each level puts before the name of the file it runs.
    path, prepend, final, cached = target.path, [], None, False
    for _ in range(MAX_SCRIPTS):
        head, cache_path = _materialized(sup, path)
        try:
            line = shebang(head)
        except VfsError as exc:
            raise VfsError(exc.errno, f"{path}: {exc.message}") from None
        if line is None:
            final, cached = cache_path, True
            break
        interpreter, arg = line
        prepend.append([interpreter] + ([arg] if arg is not None else []))
        it = sup.classify(stop, os.fsdecode(interpreter))
        if it is not None and it.virtual:
            it = sup.resolve(it)
        if it is None or not it.virtual:  # a local interpreter: the kernel takes it from here
            final = it.path if it is not None else os.fsdecode(interpreter)
            break
        path = it.path
    if final is None:
        raise VfsError(errno.ELOOP, f"{target.path}: too many levels of #! interpreters")
    if prepend:
        _set_argv(stop, argv_index, named, prepend)
    creds = sup.creds(stop)
    if cached and not creds.root and creds.fsuid != os.geteuid() and sup.handover.exec_by_fd(
            sup, stop, sup.path_index(stop), final, script=False):
        return  # a program running as another user cannot walk the private cache's path
    sup.set_path(stop, final)


def _set_argv(stop, argv_index: int, named: str, prepend: list[list[bytes]]) -> None:
    """argv as the kernel builds it for nested scripts: for each level, the interpreter
    and its argument take the place of argv[0], and the file run follows them."""
    addr = stop.arg(argv_index)
    pointers: list[int] = []
    while addr and len(pointers) < MAX_ARGS:
        ptr = int.from_bytes(stop.read(addr + 8 * len(pointers), 8), "little")
        if ptr == 0:
            break
        pointers.append(ptr)
    rest = pointers[1:]
    strings: list[bytes] = [os.fsencode(named)]
    for level in prepend:     # innermost interpreter last: it ends up first
        strings = level + strings
    new = [stop.push(s + b"\0") for s in strings] + rest + [0]
    stop.set_arg(argv_index, stop.push(b"".join(p.to_bytes(8, "little") for p in new)))


@path_syscall("execve")
def on_execve(sup, stop) -> None:
    _exec(sup, stop, 1)


@path_syscall("execveat")
def on_execveat(sup, stop) -> None:
    _exec(sup, stop, 2)
