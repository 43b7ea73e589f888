"""Build the seccomp-bpf filter that decides which syscalls stop in the supervisor.

A path can't be inspected from BPF (it is a pointer), so path syscalls always stop.
Descriptor syscalls stop in the main filter only when one of their descriptor arguments
is at or above `fd_base`; a descriptor below it that the supervisor cares about gets a
small extra filter in its process for that number (or a block of numbers), so reads and
writes on other descriptors never leave the kernel.

Every filter looks at the syscall number first and lets a syscall it does not care about
through without reading its arguments or instruction address: the kernel then remembers
that number as always allowed for the process and skips the filters for it (its seccomp
action cache), and the numbers it does care about are found by a binary search, not a
walk of ~100 comparisons on every call.
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
_AND_K = 0x54
_SUB_X = 0x1C
_TAX = 0x07
_JEQ_X = 0x1D
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


class _Asm:
    """Classic BPF with labels. Conditional jumps reach only 255 instructions ahead, so a
    jump to a label is a conditional skip over an unconditional JA (32-bit offset)."""

    def __init__(self) -> None:
        self.items: list = []
        self._n = 0

    def label(self) -> str:
        self._n += 1
        return f"L{self._n}"

    def at(self, label: str) -> None:
        self.items.append(("at", label))

    def insn(self, *insns: bytes) -> None:
        self.items.extend(insns)

    def jump_if(self, code: int, k: int, label: str) -> None:
        """Go to `label` when `acc <code> k` holds (JEQ/JGE), else on."""
        self.items += [_insn(code, 0, 1, k), ("ja", label)]

    def goto(self, label: str) -> None:
        self.items.append(("ja", label))

    def assemble(self) -> bytes:
        where, pc = {}, 0
        for item in self.items:
            if isinstance(item, tuple) and item[0] == "at":
                where[item[1]] = pc
            else:
                pc += 1
        out, pc = [], 0
        for item in self.items:
            if isinstance(item, tuple):
                if item[0] == "at":
                    continue
                out.append(_insn(_JA, 0, 0, where[item[1]] - pc - 1))
            else:
                out.append(item)
            pc += 1
        return b"".join(out)

    def dispatch(self, nrs: list[int], targets: dict[int, str], otherwise: str) -> None:
        """With the syscall number in the accumulator: go to targets[nr] for each of the
        sorted `nrs`, to `otherwise` for any other number (a binary search)."""
        if len(nrs) <= 3:
            for nr in nrs:
                self.jump_if(_JEQ_K, nr, targets[nr])
            self.goto(otherwise)
            return
        mid = len(nrs) // 2
        upper = self.label()
        self.jump_if(_JGE_K, nrs[mid], upper)
        self.dispatch(nrs[:mid], targets, otherwise)
        self.at(upper)
        self.dispatch(nrs[mid:], targets, otherwise)


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


def _constant_path(index: int, distance: int, page_offset: int) -> list[bytes]:
    """Let a call through when its path argument `index` lies `distance` bytes below the
    instruction that makes it (in the same 4 GiB), the instruction at `page_offset` in its
    page: a constant string of a known image (tracer/loader.py)."""
    rest = [
        _insn(_LD_W_ABS, 0, 0, _OFF_IP_LOW),
        _insn(_AND_K, 0, 0, 0xFFF),
        _insn(_JEQ_K, 0, 10, page_offset),     # no: past the ALLOW
        _insn(_LD_W_ABS, 0, 0, _off_arg_low(index) + 4),
        _insn(_TAX, 0, 0, 0),
        _insn(_LD_W_ABS, 0, 0, _OFF_IP_HIGH),
        _insn(_JEQ_X, 0, 6, 0),               # another 4 GiB: past the ALLOW
        _insn(_LD_W_ABS, 0, 0, _off_arg_low(index)),
        _insn(_TAX, 0, 0, 0),
        _insn(_LD_W_ABS, 0, 0, _OFF_IP_LOW),
        _insn(_SUB_X, 0, 0, 0),
    ]
    return rest + [_insn(_JEQ_K, 0, 1, distance & 0xFFFFFFFF), _ALLOW]


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
    # Syscalls that also stop when one argument's low word is one of some values,
    # whatever their descriptors: (argument index, values). ioctl's clone requests, whose
    # descriptors BPF cannot see (one sits in memory), and whose other requests need not stop.
    arg_values: dict[int, tuple[int, frozenset[int]]] = field(default_factory=dict)
    # Syscalls made from this instruction address never stop, in any filter: the
    # in-process prefilter issues the calls it has found to be local from there.
    trusted_ip: int | None = None
    # Path syscalls that need not stop when their path is a known constant (the dynamic
    # loader's, tracer/loader.py): nr -> [(path argument index, distance, page offset)],
    # as _constant_path tests them.
    constant_paths: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)

    def traps(self, nr: int, args: tuple[int, ...], ip: int | None = None) -> bool:
        """The same decision as the BPF program, for tests and for the supervisor itself."""
        if ip is not None and ip == self.trusted_ip:
            return False
        if ip is not None:
            for index, distance, page_offset in self.constant_paths.get(nr, ()):
                arg = args[index]
                if (ip & 0xFFF == page_offset and ip >> 32 == arg >> 32
                        and (ip - arg) & 0xFFFFFFFF == distance & 0xFFFFFFFF):
                    return False
        if nr in self.local_fd_flag:
            dirfd_i, flags_i, flag = self.local_fd_flag[nr]
            if args[flags_i] & 0xFFFFFFFF & flag and (args[dirfd_i] & 0xFFFFFFFF) < self.fd_base:
                return False
        if nr in self.always:
            return True
        if nr in self.arg_values:
            index, values = self.arg_values[nr]
            if args[index] & 0xFFFFFFFF in values:
                return True
        return any(self.fd_base <= (args[i] & 0xFFFFFFFF) < 0x80000000 for i in self.fd_args.get(nr, ()))

    def program(self) -> bytes:
        """The main filter: other ABIs pass; the number is found by a binary search among
        the syscalls that may stop, each with its own block (trusted address, then its
        arguments); any other number is allowed before anything else is read."""
        allow, trace = _ALLOW, _TRACE
        asm = _Asm()
        asm.insn(
            _insn(_LD_W_ABS, 0, 0, _OFF_ARCH),
            _insn(_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
            allow,  # other ABIs (i386) are not intercepted
            _insn(_LD_W_ABS, 0, 0, _OFF_NR),
            _insn(_JGE_K, 0, 1, X32_SYSCALL_BIT),
            allow,  # x32 ABI is not intercepted
        )
        fd_only = {nr: idx for nr, idx in self.fd_args.items() if nr not in self.always}
        for nr in self.arg_values:
            if nr not in self.always:
                fd_only.setdefault(nr, ())
        nrs = sorted(set(self.always) | set(fd_only))
        blocks = {nr: asm.label() for nr in nrs}
        allowed = asm.label()
        asm.dispatch(nrs, blocks, allowed)
        asm.at(allowed)
        asm.insn(allow)
        for nr in nrs:
            asm.at(blocks[nr])
            asm.insn(*_trusted(self.trusted_ip))
            for rule in self.constant_paths.get(nr, ()):
                asm.insn(*_constant_path(*rule))
            if nr in self.local_fd_flag:
                dirfd_i, flags_i, flag = self.local_fd_flag[nr]
                asm.insn(
                    _insn(_LD_W_ABS, 0, 0, _off_arg_low(flags_i)),
                    _insn(_JSET_K, 1, 0, flag),
                    trace,
                    _insn(_LD_W_ABS, 0, 0, _off_arg_low(dirfd_i)),
                    _insn(_JGE_K, 1, 0, self.fd_base),   # virtual, or AT_FDCWD (negative)
                    allow,
                    trace,
                )
            elif nr in self.always:
                asm.insn(trace)
            else:
                if nr in self.arg_values:
                    index, values = self.arg_values[nr]
                    asm.insn(_insn(_LD_W_ABS, 0, 0, _off_arg_low(index)))
                    for value in sorted(values):
                        asm.insn(_insn(_JEQ_K, 0, 1, value), trace)
                for i in fd_only[nr]:
                    asm.insn(
                        _insn(_LD_W_ABS, 0, 0, _off_arg_low(i)),
                        _insn(_JGE_K, 0, 2, self.fd_base),       # below base: next arg
                        _insn(_JGE_K, 1, 0, 0x80000000),         # negative (AT_FDCWD, -1): next arg
                        trace,
                    )
                asm.insn(allow)
        program = asm.assemble()
        if len(program) // 8 > 4096:
            raise ValueError("seccomp filter too long")
        return program

    def program_for_syscalls(self, nrs: set[int]) -> bytes:
        """An extra filter that stops these syscalls always (added to one process tree
        when it starts to need them, e.g. getcwd once its cwd is virtual)."""
        asm = _Asm()
        asm.insn(_insn(_LD_W_ABS, 0, 0, _OFF_ARCH), _insn(_JEQ_K, 1, 0, AUDIT_ARCH_X86_64), _ALLOW,
                 _insn(_LD_W_ABS, 0, 0, _OFF_NR))
        stop, allowed = asm.label(), asm.label()
        listed = sorted(nrs)
        asm.dispatch(listed, dict.fromkeys(listed, stop), allowed)
        asm.at(allowed)
        asm.insn(_ALLOW)
        asm.at(stop)
        asm.insn(*_trusted(self.trusted_ip), _TRACE)
        return asm.assemble()

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

    def program_for_fds(self, lo: int, hi: int, index: int = 0, also: frozenset[int] = frozenset()) -> bytes:
        """An extra filter that stops the descriptor syscalls naming a descriptor in
        [lo, hi): for virtual descriptors below the base (any number the kernel gives).
        Filters stack and every one runs on every syscall of the process, so the common
        case is short: two instructions for the probe (FD_PROBE_FD: this is descriptor
        filter number `index` of its process), then one load and one or two compares per
        argument position (about 12 instructions in all); the syscall number and the rest
        are looked at only when an argument matches. The kernel takes the strictest
        answer, so this only adds stops (and the probe's errno). `also`: syscalls that stop
        whatever their arguments (as program_for_syscalls, without a filter of their own)."""
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
        by_index = self._fd_syscalls_by_index()
        # Any number no argument test can stop is allowed before an argument is read (and
        # the kernel then caches it as allowed).
        watched = set().union(*by_index.values()) | {_SYS_close}
        if also & watched:
            raise ValueError("a syscall both tested and always stopped")
        asm = _Asm()
        asm.insn(_insn(_LD_W_ABS, 0, 0, _OFF_NR))
        tested, allowed, always = asm.label(), asm.label(), asm.label()
        targets = {**dict.fromkeys(watched, tested), **dict.fromkeys(also, always)}
        asm.dispatch(sorted(targets), targets, allowed)
        asm.at(allowed)
        asm.insn(_ALLOW)
        if also:
            asm.at(always)
            asm.insn(*_extra_prologue(self.trusted_ip), _TRACE)
        asm.at(tested)
        out = [_insn(_JEQ_K, 0, len(probe), _SYS_close), *probe]
        for i, nrs in by_index.items():
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
        asm.insn(*out)
        return asm.assemble()

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
