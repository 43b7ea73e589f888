"""Build the seccomp-bpf filter that decides which syscalls stop in the supervisor.

A path can't be inspected from BPF (it is a pointer), so path syscalls always stop.
Descriptor syscalls stop in the main filter only when one of their descriptor arguments
is at or above `fd_base`; a descriptor below it that the supervisor cares about gets a
small extra filter in its process for that number (or a block of numbers), so reads and
writes on other descriptors never leave the kernel.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

AUDIT_ARCH_X86_64 = 0xC000003E
_SYS_close = 3
X32_SYSCALL_BIT = 0x40000000

SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_ERRNO = 0x00050000

# How a process asks its own descriptor filters which numbers they watch: close() of a
# number no descriptor can have (the kernel says EBADF), FD_PROBE_FD | index << 1 |
# which, fails in descriptor filter number `index` with FD_PROBE_BIAS + lo (which = 0)
# or + hi (which = 1); EBADF when there is no such filter. close, because a program's
# own seccomp policy lets it through where it might kill an unknown syscall. The
# in-process prefilter asks, so that a local file at a watched number need not stop
# (tracer/prefilter/prefilter.c, "watched numbers").
FD_PROBE_FD = 0xF1D00000
FD_PROBE_BIAS = 1024   # above every real errno, so never mistaken for EBADF

# classic BPF opcodes
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_JA = 0x05
_RET_K = 0x06

_OFF_NR = 0
_OFF_ARCH = 4
_OFF_IP_LOW = 8
_OFF_IP_HIGH = 12


def _off_arg_low(i: int) -> int:
    return 16 + 8 * i  # seccomp_data.args[i], little-endian low word


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k & 0xFFFFFFFF)


_ALLOW = _insn(_RET_K, 0, 0, SECCOMP_RET_ALLOW)
_TRACE = _insn(_RET_K, 0, 0, SECCOMP_RET_TRACE)


def _trusted(ip: int | None) -> list[bytes]:
    """Let a syscall made from instruction address `ip` through (the in-process
    prefilter's stub, see tracer/prefilter.py)."""
    if ip is None:
        return []
    return [
        _insn(_LD_W_ABS, 0, 0, _OFF_IP_LOW),
        _insn(_JEQ_K, 0, 3, ip & 0xFFFFFFFF),
        _insn(_LD_W_ABS, 0, 0, _OFF_IP_HIGH),
        _insn(_JEQ_K, 0, 1, ip >> 32),
        _ALLOW,
    ]


def _extra_prologue(trusted_ip: int | None) -> list[bytes]:
    """Start of an extra filter: other ABIs and the trusted address pass, the syscall
    number is loaded."""
    return [
        _insn(_LD_W_ABS, 0, 0, _OFF_ARCH),
        _insn(_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        _ALLOW,
        *_trusted(trusted_ip),
        _insn(_LD_W_ABS, 0, 0, _OFF_NR),
    ]


@dataclass
class SyscallFilter:
    """Which syscalls stop: `always` by number; `fd_args` maps a syscall number to the
    indexes of its descriptor arguments, and stops it when any is in [fd_base, 2**31)."""

    always: set[int] = field(default_factory=set)
    fd_args: dict[int, tuple[int, ...]] = field(default_factory=dict)
    fd_base: int = 512
    # For some `always` syscalls: (dirfd index, flags index, flag). When the flag is set
    # and dirfd is an ordinary descriptor below the base, the call acts on that local
    # descriptor (fstat is newfstatat(fd, "", AT_EMPTY_PATH)) and need not stop.
    local_fd_flag: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    # Syscalls made from this instruction address never stop, in any filter: the
    # in-process prefilter issues the calls it has found to be local from there.
    trusted_ip: int | None = None

    def traps(self, nr: int, args: tuple[int, ...], ip: int | None = None) -> bool:
        """The same decision as the BPF program, for tests and for the supervisor itself."""
        if ip is not None and ip == self.trusted_ip:
            return False
        if nr in self.local_fd_flag:
            dirfd_i, flags_i, flag = self.local_fd_flag[nr]
            if args[flags_i] & 0xFFFFFFFF & flag and (args[dirfd_i] & 0xFFFFFFFF) < self.fd_base:
                return False
        if nr in self.always:
            return True
        return any(self.fd_base <= (args[i] & 0xFFFFFFFF) < 0x80000000 for i in self.fd_args.get(nr, ()))

    def program(self) -> bytes:
        allow = _insn(_RET_K, 0, 0, SECCOMP_RET_ALLOW)
        trace = _insn(_RET_K, 0, 0, SECCOMP_RET_TRACE)
        out = [
            _insn(_LD_W_ABS, 0, 0, _OFF_ARCH),
            _insn(_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
            allow,  # other ABIs (i386) are not intercepted
            *_trusted(self.trusted_ip),
            _insn(_LD_W_ABS, 0, 0, _OFF_NR),
            _insn(_JGE_K, 0, 1, X32_SYSCALL_BIT),
            allow,  # x32 ABI is not intercepted
        ]
        # Each test is local (short jumps), so the program has no 255-instruction jump limit.
        for nr in sorted(self.always):
            if nr in self.local_fd_flag:
                dirfd_i, flags_i, flag = self.local_fd_flag[nr]
                block = [
                    _insn(_LD_W_ABS, 0, 0, _off_arg_low(flags_i)),
                    _insn(_JSET_K, 1, 0, flag),
                    trace,
                    _insn(_LD_W_ABS, 0, 0, _off_arg_low(dirfd_i)),
                    _insn(_JGE_K, 1, 0, self.fd_base),   # virtual, or AT_FDCWD (negative)
                    allow,
                    trace,
                ]
                out += [_insn(_JEQ_K, 0, len(block), nr)] + block
            else:
                out += [_insn(_JEQ_K, 0, 1, nr), trace]
        for nr, arg_indexes in sorted(self.fd_args.items()):
            if nr in self.always:
                continue
            block: list[bytes] = []
            for i in arg_indexes:
                block += [
                    _insn(_LD_W_ABS, 0, 0, _off_arg_low(i)),
                    _insn(_JGE_K, 0, 2, self.fd_base),       # below base: next arg
                    _insn(_JGE_K, 1, 0, 0x80000000),         # negative (AT_FDCWD, -1): next arg
                    trace,
                ]
            block.append(allow)
            # nr in the accumulator is clobbered by the arg loads, so the block ends in a return.
            out += [_insn(_JEQ_K, 0, len(block), nr)] + block
        out.append(allow)
        if len(out) > 4096:
            raise ValueError("seccomp filter too long")
        return b"".join(out)

    def program_for_syscalls(self, nrs: set[int]) -> bytes:
        """An extra filter that stops these syscalls always (added to one process tree
        when it starts to need them, e.g. getcwd once its cwd is virtual)."""
        allow, trace = _ALLOW, _TRACE
        out = _extra_prologue(self.trusted_ip)
        for nr in sorted(nrs):
            out += [_insn(_JEQ_K, 0, 1, nr), trace]
        out.append(allow)
        return b"".join(out)

    def _fd_syscalls_by_index(self) -> dict[int, list[int]]:
        """Argument index -> syscalls whose descriptor argument it is, for the extra
        filters: the descriptor syscalls, and the path syscalls that act on their dirfd
        without a path (fstat as newfstatat(fd, "", AT_EMPTY_PATH))."""
        by_index: dict[int, set[int]] = {}
        for nr, indexes in self.fd_args.items():
            if nr not in self.always:
                for i in indexes:
                    by_index.setdefault(i, set()).add(nr)
        for nr, (dirfd_i, _, _) in self.local_fd_flag.items():
            by_index.setdefault(dirfd_i, set()).add(nr)
        return {i: sorted(nrs) for i, nrs in sorted(by_index.items())}

    def traps_fds(self, lo: int, hi: int, nr: int, args: tuple[int, ...], ip: int | None = None,
                  arch: int = AUDIT_ARCH_X86_64) -> bool:
        """The decision of program_for_fds(lo, hi), for tests."""
        if arch != AUDIT_ARCH_X86_64 or (ip is not None and ip == self.trusted_ip):
            return False
        return any(lo <= (args[i] & 0xFFFFFFFF) < hi and nr in nrs
                   for i, nrs in self._fd_syscalls_by_index().items())

    def program_for_fds(self, lo: int, hi: int, index: int = 0) -> bytes:
        """An extra filter that stops the descriptor syscalls naming a descriptor in
        [lo, hi): for virtual descriptors below the base (any number the kernel gives).
        Filters stack and every one runs on every syscall of the process, so the common
        case is short: two instructions for the probe (FD_PROBE_FD: this is descriptor
        filter number `index` of its process), then one load and one or two compares per
        argument position (about 12 instructions in all); the syscall number and the rest
        are looked at only when an argument matches. The kernel takes the strictest
        answer, so this only adds stops (and the probe's errno)."""
        if not (0 <= lo < hi and hi + FD_PROBE_BIAS <= 4095):
            raise ValueError(f"descriptor range [{lo}, {hi}) cannot be told by the probe")
        if index >= 1 << 19:
            raise ValueError("too many descriptor filters for the probe")
        probe = [
            _insn(_LD_W_ABS, 0, 0, _off_arg_low(0)),
            _insn(_JEQ_K, 0, 1, FD_PROBE_FD | index << 1),
            _insn(_RET_K, 0, 0, SECCOMP_RET_ERRNO | (FD_PROBE_BIAS + lo)),
            _insn(_JEQ_K, 0, 1, FD_PROBE_FD | index << 1 | 1),
            _insn(_RET_K, 0, 0, SECCOMP_RET_ERRNO | (FD_PROBE_BIAS + hi)),
        ]
        out = [_insn(_LD_W_ABS, 0, 0, _OFF_NR), _insn(_JEQ_K, 0, len(probe), _SYS_close), *probe]
        for i, nrs in self._fd_syscalls_by_index().items():
            # Reached only when argument i matches: other ABIs and the trusted address
            # pass, a listed syscall stops, anything else goes on to the next argument.
            n = len(nrs)
            block = _extra_prologue(self.trusted_ip)
            block += [_insn(_JEQ_K, n - k, 0, nr) for k, nr in enumerate(nrs)]
            block += [_insn(_JA, 0, 0, 1), _TRACE]
            if len(block) > 250:
                raise ValueError("too many descriptor syscalls for one extra filter")
            out.append(_insn(_LD_W_ABS, 0, 0, _off_arg_low(i)))
            if hi == lo + 1:
                out.append(_insn(_JEQ_K, 0, len(block), lo))
            else:
                out += [_insn(_JGE_K, 0, len(block) + 1, lo), _insn(_JGE_K, len(block), 0, hi)]
            out += block
        out.append(_ALLOW)
        return b"".join(out)

    def program_for_fd(self, fd: int, index: int = 0) -> bytes:
        return self.program_for_fds(fd, fd + 1, index)

    @staticmethod
    def probe_answer(lo: int, hi: int, index: int, args: tuple[int, ...]) -> int | None:
        """What descriptor filter number `index`, for [lo, hi), answers a close() with
        `args`: the errno it fails with, None when it does not answer (the call goes on)."""
        fd = args[0] & 0xFFFFFFFF
        if fd & ~1 != FD_PROBE_FD | index << 1:
            return None
        return FD_PROBE_BIAS + (hi if fd & 1 else lo)
