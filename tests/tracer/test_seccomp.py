"""The BPF program decides exactly as SyscallFilter.traps() says (run in a tiny
classic-BPF interpreter), for every syscall and descriptor edge."""

from __future__ import annotations

import random
import struct

from tracer import NR, SyscallFilter
from tracer.seccomp import (AUDIT_ARCH_X86_64, FD_PROBE_BIAS, FD_PROBE_FD, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO,
                            SECCOMP_RET_TRACE)


def run_bpf(program: bytes, nr: int, args: tuple[int, ...], arch: int = AUDIT_ARCH_X86_64, ip: int = 0,
            loads: list | None = None) -> int:
    """Run `program`; `loads` (if given) collects the seccomp_data offsets it read."""
    insns = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    data = struct.pack("<iIQ6Q", nr, arch, ip, *args)
    pc, acc, x = 0, 0, 0
    for _ in range(10_000):
        code, jt, jf, k = insns[pc]
        if code == 0x07:   # TAX
            x = acc
            pc += 1
        elif code == 0x54:   # AND K
            acc &= k
            pc += 1
        elif code == 0x1C:   # SUB X
            acc = (acc - x) & 0xFFFFFFFF
            pc += 1
        elif code == 0x1D:   # JEQ X
            pc += 1 + (jt if acc == x else jf)
        elif code == 0x20:
            if loads is not None:
                loads.append(k)
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code == 0x15:
            pc += 1 + (jt if acc == k else jf)
        elif code == 0x35:
            pc += 1 + (jt if acc >= k else jf)
        elif code == 0x45:
            pc += 1 + (jt if acc & k else jf)
        elif code == 0x05:
            pc += 1 + k
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unknown opcode {code:#x}")
    raise AssertionError("no return")


FILTER = SyscallFilter(
    always={NR["openat"], NR["execve"], NR["stat"]},
    fd_args={NR["read"]: (0,), NR["dup2"]: (0, 1), NR["mmap"]: (4,), NR["close"]: (0,)},
    fd_base=512,
)
PROGRAM = FILTER.program()
EDGES = [0, 1, 511, 512, 513, 0x7FFFFFFF, 0x80000000, 0xFFFFFF9C, 0xFFFFFFFF, 2**64 - 1, 2**64 - 100, 2**32 + 600]


def expected(nr, args):
    return SECCOMP_RET_TRACE if FILTER.traps(nr, args) else SECCOMP_RET_ALLOW


def test_path_syscalls_always_stop():
    for name in ("openat", "execve", "stat"):
        assert run_bpf(PROGRAM, NR[name], (0,) * 6) == SECCOMP_RET_TRACE


def test_other_syscalls_never_stop():
    for name in ("getpid", "write", "futex", "clock_gettime", "mprotect"):
        assert run_bpf(PROGRAM, NR[name], (600,) * 6) == SECCOMP_RET_ALLOW


def test_descriptor_syscalls_stop_only_at_or_above_the_base():
    assert run_bpf(PROGRAM, NR["read"], (511, 0, 0, 0, 0, 0)) == SECCOMP_RET_ALLOW
    assert run_bpf(PROGRAM, NR["read"], (512, 0, 0, 0, 0, 0)) == SECCOMP_RET_TRACE
    assert run_bpf(PROGRAM, NR["dup2"], (3, 700, 0, 0, 0, 0)) == SECCOMP_RET_TRACE


def test_negative_descriptors_do_not_stop():
    anon_mmap = (0, 4096, 3, 0x22, 2**64 - 1, 0)  # fd -1
    assert run_bpf(PROGRAM, NR["mmap"], anon_mmap) == SECCOMP_RET_ALLOW


def test_bpf_matches_the_python_model_on_edges_and_random_args():
    rng = random.Random(7)
    names = ["read", "dup2", "mmap", "close", "openat", "getpid"]
    for _ in range(3000):
        nr = NR[rng.choice(names)]
        args = tuple(rng.choice(EDGES) if rng.random() < 0.7 else rng.getrandbits(64) for _ in range(6))
        assert run_bpf(PROGRAM, nr, args) == expected(nr, args), (nr, args)


def test_other_abis_are_let_through():
    assert run_bpf(PROGRAM, NR["openat"], (0,) * 6, arch=0x40000003) == SECCOMP_RET_ALLOW  # i386
    assert run_bpf(PROGRAM, NR["openat"] | 0x40000000, (0,) * 6) == SECCOMP_RET_ALLOW  # x32


def test_syscall_numbers_are_x86_64_ones():
    assert (NR["read"], NR["execve"], NR["readv"], NR["openat2"], NR["fchmodat2"]) == (0, 59, 19, 437, 452)


def test_per_descriptor_filter_stops_exactly_that_descriptor():
    extra = FILTER.program_for_fd(0)
    assert run_bpf(extra, NR["read"], (0, 0, 0, 0, 0, 0)) == SECCOMP_RET_TRACE
    assert run_bpf(extra, NR["dup2"], (5, 0, 0, 0, 0, 0)) == SECCOMP_RET_TRACE   # dup2 onto fd 0
    assert run_bpf(extra, NR["read"], (1, 0, 0, 0, 0, 0)) == SECCOMP_RET_ALLOW
    assert run_bpf(extra, NR["read"], (2**32, 0, 0, 0, 0, 0)) == SECCOMP_RET_TRACE  # kernel uses the low word
    assert run_bpf(extra, NR["getpid"], (0,) * 6) == SECCOMP_RET_ALLOW


def test_descriptor_range_filters_match_their_model():
    ip = 0x6F6D00000019
    f = SyscallFilter(always={NR["openat"], NR["newfstatat"]},
                      fd_args={NR["read"]: (0,), NR["dup2"]: (0, 1), NR["mmap"]: (4,), NR["close"]: (0,),
                               NR["splice"]: (0, 2)},
                      fd_base=512, local_fd_flag={NR["newfstatat"]: (0, 3, 0x1000)}, trusted_ip=ip)
    names = ["read", "dup2", "mmap", "close", "splice", "newfstatat", "openat", "getpid", "exit_group"]
    rng = random.Random(11)
    for lo, hi in ((0, 1), (5, 6), (8, 16), (64, 128), (3, 512)):
        prog = f.program_for_fds(lo, hi)
        assert len(prog) // 8 < 100
        edges = [e for e in (0, 1, lo - 1, lo, lo + 1, hi - 1, hi, 511, 0xFFFFFF9C, 2**32 + lo, 2**64 - 1) if e >= 0]
        for _ in range(3000):
            nr = NR[rng.choice(names)]
            args = tuple(rng.choice(edges) if rng.random() < 0.8 else rng.getrandbits(64) for _ in range(6))
            where = rng.choice([0, ip, ip + 1])
            arch = AUDIT_ARCH_X86_64 if rng.random() < 0.95 else 0x40000003
            want = SECCOMP_RET_TRACE if f.traps_fds(lo, hi, nr, args, where, arch) else SECCOMP_RET_ALLOW
            assert run_bpf(prog, nr, args, arch=arch, ip=where) == want, (lo, hi, nr, args, where)
    one = f.program_for_fds(5, 6)
    assert run_bpf(one, NR["newfstatat"], (5, 0, 0, 0x1000, 0, 0)) == SECCOMP_RET_TRACE   # fstat(5)
    assert run_bpf(one, NR["splice"], (1, 0, 5, 0, 0, 0)) == SECCOMP_RET_TRACE
    assert run_bpf(one, NR["openat"], (5, 0, 0, 0, 0, 0)) == SECCOMP_RET_ALLOW    # the main filter's business


def test_descriptor_filters_tell_a_probe_which_numbers_they_watch():
    ip = 0x6F6D00000019
    f = SyscallFilter(always={NR["openat"]}, fd_args={NR["read"]: (0,), NR["close"]: (0,)}, fd_base=512,
                      trusted_ip=ip)
    stack = [(3, 4), (5, 6), (8, 16), (256, 512)]
    progs = [f.program_for_fds(lo, hi, index) for index, (lo, hi) in enumerate(stack)]
    for index, (lo, hi) in enumerate(stack):
        for which, want in ((0, lo), (1, hi)):
            args = (FD_PROBE_FD | index << 1 | which, 0, 0, 0, 0, 0)
            answers = [run_bpf(p, NR["close"], args) for p in progs]
            # Only filter `index` answers; the others let the call through (the kernel: EBADF).
            assert answers == [SECCOMP_RET_ERRNO | (FD_PROBE_BIAS + want) if i == index else SECCOMP_RET_ALLOW
                               for i in range(len(stack))]
            assert f.probe_answer(lo, hi, index, args) == FD_PROBE_BIAS + want
            assert run_bpf(progs[index], NR["read"], args) == SECCOMP_RET_ALLOW   # only close asks
    # No such filter: every one allows.
    assert {run_bpf(p, NR["close"], (FD_PROBE_FD | len(stack) << 1, 0, 0, 0, 0, 0)) for p in progs} == {SECCOMP_RET_ALLOW}
    # The probe is nothing to the main filter, and the filters still stop what they watch.
    assert run_bpf(f.program(), NR["close"], (FD_PROBE_FD,) + (0,) * 5) == SECCOMP_RET_ALLOW
    assert run_bpf(progs[2], NR["close"], (9, 0, 0, 0, 0, 0)) == SECCOMP_RET_TRACE
    assert run_bpf(progs[2], NR["read"], (9, 0, 0, 0, 0, 0)) == SECCOMP_RET_TRACE
    assert run_bpf(progs[2], NR["read"], (9, 0, 0, 0, 0, 0), ip=ip) == SECCOMP_RET_ALLOW


def test_empty_path_stat_of_a_local_descriptor_does_not_stop():
    f = SyscallFilter(always={NR["newfstatat"]}, fd_base=512, local_fd_flag={NR["newfstatat"]: (0, 3, 0x1000)})
    prog = f.program()
    assert run_bpf(prog, NR["newfstatat"], (3, 0, 0, 0x1000, 0, 0)) == SECCOMP_RET_ALLOW       # fstat(3)
    assert run_bpf(prog, NR["newfstatat"], (600, 0, 0, 0x1000, 0, 0)) == SECCOMP_RET_TRACE     # virtual fd
    assert run_bpf(prog, NR["newfstatat"], (2**32 - 100, 0, 0, 0x1000, 0, 0)) == SECCOMP_RET_TRACE  # AT_FDCWD
    assert run_bpf(prog, NR["newfstatat"], (3, 0, 0, 0, 0, 0)) == SECCOMP_RET_TRACE            # a path lookup
    rng = random.Random(3)
    for _ in range(2000):
        args = tuple(rng.choice(EDGES + [0x1000, 0x1100, 3]) for _ in range(6))
        assert run_bpf(prog, NR["newfstatat"], args) == (SECCOMP_RET_TRACE if f.traps(NR["newfstatat"], args)
                                                         else SECCOMP_RET_ALLOW)


def test_syscalls_from_the_trusted_address_never_stop_in_any_filter():
    ip = 0x6F6D00000019
    f = SyscallFilter(always={NR["openat"]}, fd_args={NR["read"]: (0,)}, fd_base=512, trusted_ip=ip)
    for prog in (f.program(), f.program_for_fd(0), f.program_for_syscalls({NR["getcwd"]})):
        assert run_bpf(prog, NR["openat"], (0,) * 6, ip=ip) == SECCOMP_RET_ALLOW
        assert run_bpf(prog, NR["getcwd"], (0,) * 6, ip=ip) == SECCOMP_RET_ALLOW
        assert run_bpf(prog, NR["read"], (0,) * 6, ip=ip) == SECCOMP_RET_ALLOW
    # One word off either way is an ordinary address.
    for other in (ip + 1, ip - 2, ip + 2**32, ip & 0xFFFFFFFF):
        assert run_bpf(f.program(), NR["openat"], (0,) * 6, ip=other) == SECCOMP_RET_TRACE
        assert run_bpf(f.program_for_syscalls({NR["getcwd"]}), NR["getcwd"], (0,) * 6, ip=other) == SECCOMP_RET_TRACE
    assert f.traps(NR["openat"], (0,) * 6, ip=ip) is False
    assert f.traps(NR["openat"], (0,) * 6, ip=ip + 1) is True


def test_the_register_layout_is_python_ptraces():
    import ctypes

    from ptrace.binding.linux_struct import user_regs_struct

    from tracer.kernel import Regs
    assert [f[0] for f in Regs._fields_] == [f[0] for f in user_regs_struct._fields_]
    assert ctypes.sizeof(Regs) == ctypes.sizeof(user_regs_struct)


def test_syscalls_no_filter_cares_about_are_decided_by_number_alone():
    """The kernel caches a syscall as always allowed only when every filter allows it
    reading nothing but the number and the architecture (seccomp's action cache); those
    the filters care about are found by a binary search."""
    ip = 0x6F6D00000019
    f = SyscallFilter(always={NR["openat"], NR["newfstatat"], NR["execve"], NR["stat"]},
                      fd_args={NR[n]: (0,) for n in ("read", "write", "close", "fstat", "lseek", "pread64",
                                                     "getdents64", "fcntl", "ioctl", "fsync")},
                      fd_base=512, local_fd_flag={NR["newfstatat"]: (0, 3, 0x1000)}, trusted_ip=ip)
    programs = [f.program(), f.program_for_fds(5, 6), f.program_for_syscalls({NR["getcwd"], NR["chdir"]})]
    for name in ("getpid", "futex", "mprotect", "brk", "rt_sigaction", "exit_group", "clock_nanosleep"):
        for prog in programs:
            loads: list = []
            assert run_bpf(prog, NR[name], (5,) * 6, ip=ip + 8, loads=loads) == SECCOMP_RET_ALLOW
            assert set(loads) <= {0, 4}, (name, loads)   # seccomp_data.nr and .arch only


def test_argument_values_stop_a_call_whatever_its_descriptors():
    """ioctl's clone requests stop on any descriptor (one of them sits in memory); its
    other requests only on a virtual descriptor, here none (no fd_args)."""
    ficlone, ficlonerange, tcgets = 0x40049409, 0x4020940D, 0x5401
    f = SyscallFilter(always={NR["openat"]}, fd_args={NR["read"]: (0,)}, fd_base=512,
                      arg_values={NR["ioctl"]: (1, frozenset({ficlone, ficlonerange}))})
    prog = f.program()
    assert run_bpf(prog, NR["ioctl"], (3, ficlone, 4, 0, 0, 0)) == SECCOMP_RET_TRACE
    assert run_bpf(prog, NR["ioctl"], (3, 2**32 + ficlonerange, 0x7FFD0000, 0, 0, 0)) == SECCOMP_RET_TRACE
    assert run_bpf(prog, NR["ioctl"], (600, tcgets, 0x7FFD0000, 0, 0, 0)) == SECCOMP_RET_ALLOW
    rng = random.Random(5)
    values = [ficlone, ficlonerange, tcgets, 0, 2**32 + ficlone, 2**64 - 1]
    for _ in range(2000):
        nr = NR[rng.choice(["ioctl", "read", "openat", "getpid"])]
        args = tuple(rng.choice(values + EDGES) if rng.random() < 0.8 else rng.getrandbits(64) for _ in range(6))
        want = SECCOMP_RET_TRACE if f.traps(nr, args) else SECCOMP_RET_ALLOW
        assert run_bpf(prog, nr, args) == want, (nr, args)


# The loader's constant paths (tracer/loader.py): as measured on a Debian 12 ld.so.
LOADER_RULES = {NR["access"]: [(0, -39097, 0x9E7)], NR["openat"]: [(1, -34196, 0xB1D)]}
WITH_LOADER = SyscallFilter(always={NR["openat"], NR["access"], NR["stat"]}, constant_paths=LOADER_RULES)


def test_a_loader_constant_path_passes_and_nothing_else_does():
    program = WITH_LOADER.program()
    base = 0x7F3A_1234_5000
    ip = base + 0xB1D
    string = ip + 34196
    cases = [
        (NR["openat"], (0xFFFFFF9C, string, 0, 0, 0, 0), ip, False),          # ld.so's own call
        (NR["openat"], (0xFFFFFF9C, string + 1, 0, 0, 0, 0), ip, True),       # another pointer
        (NR["openat"], (0xFFFFFF9C, string, 0, 0, 0, 0), ip + 1, True),     # another site
        (NR["openat"], (0xFFFFFF9C, string + 2**32, 0, 0, 0, 0), ip, True),   # another 4 GiB
        (NR["openat"], (string, 0xFFFFFF9C, 0, 0, 0, 0), ip, True),           # the wrong argument
        (NR["stat"], (string, 0, 0, 0, 0, 0), ip, True),                      # no rule for stat
        (NR["access"], (base + 0x9E7 + 39097, 4, 0, 0, 0, 0), base + 0x9E7, False),
        (NR["access"], (base + 0x9E7 + 39097, 4, 0, 0, 0, 0), base + 0x9E8, True),
    ]
    for nr, args, at, stops in cases:
        assert WITH_LOADER.traps(nr, args, ip=at) is stops, (nr, args, hex(at))
        assert run_bpf(program, nr, args, ip=at) == (SECCOMP_RET_TRACE if stops else SECCOMP_RET_ALLOW)


def test_the_loader_rule_matches_the_python_model_on_random_calls():
    program = WITH_LOADER.program()
    rng = random.Random(11)
    for _ in range(3000):
        nr = rng.choice([NR["openat"], NR["access"], NR["stat"]])
        ip = rng.choice([0x7F00_0000_0B1D, 0x7FFF_FFFF_F9E7, rng.getrandbits(47)])
        arg = rng.choice([ip + 34196, ip + 39097, ip - 34196, rng.getrandbits(48), (ip + 34196) ^ (1 << 32)])
        args = tuple(arg if i == rng.randrange(2) else rng.getrandbits(64) for i in range(6))
        want = SECCOMP_RET_TRACE if WITH_LOADER.traps(nr, args, ip=ip) else SECCOMP_RET_ALLOW
        assert run_bpf(program, nr, args, ip=ip) == want
