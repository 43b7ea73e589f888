"""The in-process prefilter: a small preloaded library that answers path calls on paths
outside a set of roots without stopping the process (see prefilter/prefilter.c).

Its syscalls come from one instruction at a fixed address (`TRUSTED_IP`), which the
seccomp filter lets through (`SyscallFilter.trusted_ip`). Everything it cannot decide, and
every program it is not loaded into (static binaries, raw syscalls, libc-internal calls),
still stops as before: the prefilter only removes stops, it never changes an answer.

The library is compiled with the system C compiler on first use and kept, by a hash of
its source and flags, in a cache directory. Without a compiler it is simply not used.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

try:   # CPython's own SHA-256: hashlib's would load OpenSSL's libcrypto first (~2 ms a run)
    from _sha2 import sha256
except ImportError:
    try:
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256

log = logging.getLogger("tracer.prefilter")

# Where the library maps its syscall stub: high in the 47-bit user space, far from where
# the kernel, the loader, Go, the JVM or the sanitizers put things. If it is taken, the
# library stays out of the way and every call stops.
PAGE = 0x6F6D00000000
TRUSTED_IP = PAGE + 25   # just past the stub's `syscall` (the kernel reports that address)

SOURCE = Path(__file__).with_name("prefilter") / "prefilter.c"
# Every exec of every program maps the library: two segments instead of four (code and
# read-only data share one) and no RELRO mprotect halve what loading it costs (measured:
# ~0.09 ms -> ~0.05 ms of CPU per exec of /bin/true, which itself takes ~0.5 ms).
CFLAGS = ["-O2", "-shared", "-fPIC", "-nostdlib", "-fno-stack-protector", "-fvisibility=hidden",
          "-fno-builtin", "-U_FORTIFY_SOURCE", "-Wall", "-Werror", f"-DPREFILTER_PAGE={PAGE:#x}UL",
          "-Wl,-z,noseparate-code", "-Wl,-z,norelro"]

ENV_ROOTS = "TRACER_PREFILTER_ROOTS"
ENV_FD_BASE = "TRACER_PREFILTER_FD_BASE"
ENV_DEFER_CWD = "TRACER_PREFILTER_DEFER_CWD"
ENV_DEFER_FDS_UNDER = "TRACER_PREFILTER_DEFER_FDS_UNDER"
ENV_LIB = "TRACER_PREFILTER_LIB"   # its own path: an exec moves it behind later preloads
ENV_READ_MARK = "TRACER_PREFILTER_READ_MARK"   # NAME=VALUE: see environ's read_mark


class PrefilterUnavailable(Exception):
    """The library cannot be built or used here; the reason is the message."""


class UnsafeLocation(PrefilterUnavailable):
    """Someone other than us could have written the library (or could replace it)."""


def check_safe(path: Path) -> None:
    """Raise UnsafeLocation unless `path` (a file or directory) and every directory above it
    could only have been written by us or root: owned by one of us, and not writable by
    group or others (a directory above may be, if it is sticky, like /tmp). The library
    loaded into the program (maybe as root) must be the one we built. It stays readable by
    everyone: programs running as other users load it too."""
    me = os.geteuid()
    path = Path(os.path.realpath(path))   # what a symlink leads to is what gets loaded
    for i, p in enumerate([path, *path.parents]):
        try:
            st = os.stat(p)
        except OSError as exc:
            raise UnsafeLocation(f"{p}: {exc.strerror}") from None
        if st.st_uid not in (me, 0) or (i == 0 and st.st_uid != me):
            raise UnsafeLocation(f"{p} belongs to uid {st.st_uid}")
        sticky_dir = i > 0 and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        if st.st_mode & 0o022 and not sticky_dir:
            raise UnsafeLocation(f"{p} is writable by others (mode {stat.S_IMODE(st.st_mode):04o})")


def build(cache_dir: Path, cc: str | None = None) -> Path:
    """The compiled library, building it into `cache_dir` if this source has not been
    built there yet. The directory (and the library, when it exists) must pass check_safe,
    checked on every call: UnsafeLocation otherwise."""
    return build_library(SOURCE, CFLAGS, cache_dir, cc)


def build_library(source_path: Path, cflags: list[str], cache_dir: Path, cc: str | None = None) -> Path:
    """`source_path` (a C file of prefilter/, which may include that directory's headers)
    compiled with `cflags` into `cache_dir`, named by a hash of the sources and flags:
    see build."""
    name = source_path.stem
    compiler = cc or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise PrefilterUnavailable(f"no C compiler (cc or gcc) to build the {name}")
    source = source_path.read_bytes() + b"".join(h.read_bytes() for h in sorted(source_path.parent.glob("*.h")))
    digest = sha256(source + " ".join(cflags).encode()).hexdigest()[:16]
    target = Path(cache_dir) / f"{name}-{digest}.so"
    try:
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise PrefilterUnavailable(f"cannot create {target.parent}: {exc.strerror}") from None
    check_safe(target.parent)
    os.chmod(target.parent, 0o755)   # ours: readable by programs running as other users
    if target.exists():
        check_safe(target)
        return target
    import subprocess   # only to build it: not part of every run's start-up
    import tempfile
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run([compiler, *cflags, "-o", tmp, str(source_path)],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["no output"])[0]
            raise PrefilterUnavailable(f"building the {name} failed: {first}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)   # atomic: concurrent runs build the same bytes
    except (OSError, subprocess.SubprocessError) as exc:
        raise PrefilterUnavailable(f"building the {name} failed: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def readable_by_all(path: Path) -> bool:
    """Whether a program running as any user can load `path`: readable by others, and
    every directory above searchable by others (a 0700 home, say, is not)."""
    path = Path(os.path.realpath(path))
    try:
        if not os.stat(path).st_mode & stat.S_IROTH:
            return False
        return all(os.stat(p).st_mode & stat.S_IXOTH for p in path.parents)
    except OSError:
        return False


def private_dir() -> Path:
    """A directory for the library that only we can write: used when the usual one is not
    safe. Per user, so it is reused by later runs (and checked like the usual one). In the
    temporary directory, not XDG_RUNTIME_DIR: that one is 0700, and programs running as
    other users must be able to load the library."""
    return private_dirs()[0]


def private_dirs() -> tuple[Path, ...]:
    """private_dir(), then the other places such a directory can be made, in order (for a
    run whose mounts cover the first: the loader would look for the library in a bucket)."""
    import tempfile
    name = f"objmount-prefilter-{os.geteuid()}"
    return Path(tempfile.gettempdir()) / name, Path("/var/tmp") / name, Path("/dev/shm") / name


def environ(env: dict[str, str], library: Path, roots: list[str], fd_base: int,
            defer_cwd: str | None = None, defer_fds_under: str | None = None,
            read_mark: tuple[str, str] | None = None) -> dict[str, str]:
    """`env` with the library preloaded and configured.

    roots: absolute, normalized paths whose subtrees the supervisor handles (paths
    naming them stop). fd_base: descriptors at or above it are the supervisor's.
    defer_cwd: while a process's kernel cwd is this directory, or a dirfd is open on it,
    relative paths from there stop (the supervisor emulates that directory).
    defer_fds_under: calls on a descriptor whose file lies below this directory stop
    even below fd_base (virtual descriptors take the numbers the kernel gives).
    read_mark: (name, value) of an extended attribute: read and pread on such a descriptor
    whose file carries it with exactly this value go to the kernel without a stop (the
    supervisor marks a file only while its reads need nothing from it)."""
    for root in roots:
        if not root.startswith("/") or ":" in root:
            raise PrefilterUnavailable(f"root {root!r} cannot be given to the prefilter")
    out = dict(env)
    # Last: the program's own preloads (fakeroot, faketime) interpose first and reach the
    # library as their "next" definition, so what they change is changed the same way.
    preload = [p for p in env.get("LD_PRELOAD", "").replace(" ", ":").split(":") if p] + [str(library)]
    out["LD_PRELOAD"] = ":".join(preload)
    out[ENV_LIB] = str(library)
    out[ENV_ROOTS] = ":".join(roots)
    out[ENV_FD_BASE] = str(fd_base)
    if defer_cwd:
        out[ENV_DEFER_CWD] = os.path.realpath(defer_cwd)
    if defer_fds_under:
        out[ENV_DEFER_FDS_UNDER] = os.path.realpath(defer_fds_under)
    if read_mark:
        name, value = read_mark
        if "=" in name or not name or not 0 < len(value) < 40 or len(name) + 1 + len(value) >= 64:
            raise PrefilterUnavailable(f"read mark {name!r} cannot be given to the prefilter")
        out[ENV_READ_MARK] = f"{name}={value}"
    return out
