"""Thin ctypes bindings to the kernel interfaces the tracer needs (x86_64 Linux).

The calls go through libc directly with errno capture, because python-ptrace's wrappers
are slow and do not know PTRACE_O_TRACESECCOMP / EXITKILL; the register layout is
python-ptrace's (a test keeps the two equal).
"""

from __future__ import annotations

import ctypes
import os


class Regs(ctypes.Structure):
    """The kernel's struct user_regs_struct on x86_64 (PTRACE_GETREGS), as python-ptrace
    declares it; declared here so that a start does not import python-ptrace's debugger."""
    _fields_ = [(name, ctypes.c_ulong) for name in (
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx",
        "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base",
        "ds", "es", "fs", "gs")]

# The interpreter's own libc (find_library would run ldconfig and gcc at every start).
_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
_libc.process_vm_readv.restype = ctypes.c_ssize_t
_libc.process_vm_writev.restype = ctypes.c_ssize_t
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int

PTRACE_TRACEME = 0
PTRACE_PEEKDATA = 2
PTRACE_CONT = 7
PTRACE_KILL = 8
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_SYSCALL = 24
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_GETSIGINFO = 0x4202
PTRACE_SETSIGINFO = 0x4203

PTRACE_O_TRACESYSGOOD = 0x01
PTRACE_O_TRACEFORK = 0x02
PTRACE_O_TRACEVFORK = 0x04
PTRACE_O_TRACECLONE = 0x08
PTRACE_O_TRACEEXEC = 0x10
PTRACE_O_TRACESECCOMP = 0x80
PTRACE_O_EXITKILL = 0x100000

PTRACE_EVENT_FORK = 1
PTRACE_EVENT_VFORK = 2
PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_VFORK_DONE = 5
PTRACE_EVENT_EXIT = 6
PTRACE_EVENT_SECCOMP = 7

WALL = 0x40000000  # __WALL: wait for threads and non-SIGCHLD children too

SYS_tgkill = 234
SI_TKILL = -6          # si_code of a signal sent with tkill/tgkill
SIGINFO_SIZE = 128

PR_SET_NO_NEW_PRIVS = 38
SYS_seccomp = 317
SECCOMP_SET_MODE_FILTER = 1


class PtraceError(OSError):
    pass


def _check(result: int, what: str, pid: int) -> int:
    if result == -1:
        err = ctypes.get_errno()
        if err:
            raise PtraceError(err, f"{what}(pid={pid}): {os.strerror(err)}")
    return result


def ptrace(request: int, pid: int, addr: int = 0, data: int = 0) -> int:
    ctypes.set_errno(0)
    return _check(_libc.ptrace(request, pid, addr, data), f"ptrace[{request}]", pid)


def traceme() -> None:
    ptrace(PTRACE_TRACEME, 0)


def setoptions(pid: int, options: int) -> None:
    ptrace(PTRACE_SETOPTIONS, pid, 0, options)


def cont(pid: int, sig: int = 0) -> None:
    ptrace(PTRACE_CONT, pid, 0, sig)


def syscall(pid: int, sig: int = 0) -> None:
    ptrace(PTRACE_SYSCALL, pid, 0, sig)


def getregs(pid: int) -> Regs:
    regs = Regs()
    ptrace(PTRACE_GETREGS, pid, 0, ctypes.addressof(regs))
    return regs


def setregs(pid: int, regs: Regs) -> None:
    ptrace(PTRACE_SETREGS, pid, 0, ctypes.addressof(regs))


def geteventmsg(pid: int) -> int:
    value = ctypes.c_ulong()
    ptrace(PTRACE_GETEVENTMSG, pid, 0, ctypes.addressof(value))
    return value.value


def has_siginfo(pid: int) -> bool:
    """False in a group-stop (PTRACE_GETSIGINFO fails with EINVAL there)."""
    buf = ctypes.create_string_buffer(128)
    ctypes.set_errno(0)
    return _libc.ptrace(PTRACE_GETSIGINFO, pid, 0, ctypes.addressof(buf)) != -1


def getsiginfo(pid: int) -> bytes | None:
    """The siginfo of the signal `pid` is stopped for; None in a group-stop."""
    buf = ctypes.create_string_buffer(SIGINFO_SIZE)
    ctypes.set_errno(0)
    if _libc.ptrace(PTRACE_GETSIGINFO, pid, 0, ctypes.addressof(buf)) == -1:
        return None
    return buf.raw


def setsiginfo(pid: int, info: bytes) -> None:
    buf = ctypes.create_string_buffer(info, SIGINFO_SIZE)
    ptrace(PTRACE_SETSIGINFO, pid, 0, ctypes.addressof(buf))


def siginfo_sender(info: bytes) -> tuple[int, int]:
    """(si_code, si_pid) of a siginfo (the union starts at offset 16 on 64-bit)."""
    code, pid = int.from_bytes(info[8:12], "little", signed=True), int.from_bytes(info[16:20], "little", signed=True)
    return code, pid


def tgkill(tgid: int, tid: int, sig: int) -> None:
    if _libc.syscall(SYS_tgkill, tgid, tid, sig) != 0:
        err = ctypes.get_errno()
        raise PtraceError(err, f"tgkill({tgid}, {tid}, {sig}): {os.strerror(err)}")


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def vm_read(pid: int, addr: int, size: int) -> bytes:
    """Read tracee memory; returns fewer bytes when the range runs into unmapped memory."""
    buf = ctypes.create_string_buffer(size)
    local = _IoVec(ctypes.addressof(buf), size)
    remote = _IoVec(addr, size)
    n = _libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if n < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"process_vm_readv(pid={pid}, {addr:#x}, {size}): {os.strerror(err)}")
    return buf.raw[:n]


class BadAddress(OSError):
    """A syscall's output buffer the tracee could not have written itself: the call
    fails with EFAULT, as the kernel's copy_to_user would."""


def vm_write(pid: int, addr: int, data: bytes, force: bool = True) -> None:
    """force: write into read-only mappings too (a path argument we rewrite in place);
    without it, memory the tracee cannot write is BadAddress."""
    local = _IoVec(ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p), len(data))
    remote = _IoVec(addr, len(data))
    n = _libc.process_vm_writev(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if n == len(data):
        return
    if not force:
        raise BadAddress(14, f"cannot write {len(data)} bytes at {addr:#x} in pid {pid}")
    # process_vm_writev refuses read-only mappings; /proc/PID/mem writes with FOLL_FORCE.
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_WRONLY)
        try:
            if os.pwrite(fd, data, addr) == len(data):
                return
        finally:
            os.close(fd)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {len(data)} bytes at {addr:#x} in pid {pid}") from exc
    raise OSError(14, f"short write at {addr:#x} in pid {pid}")


def install_seccomp_filter(program: bytes) -> None:
    """Install a classic-BPF seccomp filter in the calling process (used in the child)."""
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_NO_NEW_PRIVS)")

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    insns = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // 8, ctypes.addressof(insns))
    if _libc.syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(prog)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "seccomp(SECCOMP_SET_MODE_FILTER)")


_SFD_NONBLOCK, _SFD_CLOEXEC = os.O_NONBLOCK, 0o2000000
_libc.signalfd.restype = ctypes.c_int
_libc.signalfd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]


def signalfd(signals: set[int]) -> int:
    """A non-blocking signalfd(2) that reads `signals` (the caller keeps them blocked)."""
    mask = bytearray(128)   # glibc's sigset_t
    for sig in signals:
        mask[(sig - 1) // 8] |= 1 << ((sig - 1) % 8)
    buf = ctypes.create_string_buffer(bytes(mask), len(mask))
    fd = _libc.signalfd(-1, ctypes.addressof(buf), _SFD_NONBLOCK | _SFD_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"signalfd: {os.strerror(err)}")
    return fd
