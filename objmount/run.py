"""Wiring: start the command under the tracer with a Supervisor over a Vfs."""

from __future__ import annotations

import errno
import logging
import os
import re
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from tracer import SignalForwarder, Tracer, prefilter, spawn
from vfs import MountTable, VfsError
from vfs.mounts import OBJMOUNT_ROOT
from vfs.stats import Stats

from .direct_reads import DirectReads
from .handlers import local_pass, syscall_filter
from .paths import normalize, roots_of, under_roots
from .supervisor import Supervisor

if TYPE_CHECKING:
    from vfs import Vfs, VfsConfig

log = logging.getLogger("objmount")

# Buckets a command line names (s3://B/..., /objmount/s3/B/...): a run naming one will use S3.
_NAMED_BUCKET = re.compile(r"(?:s3:/|/objmount/s3)/([a-z0-9][a-z0-9.\-_]{1,254}?)(?=/|$|[\s'\"])")


class VfsSettings:
    """VfsConfig's fields, as given (cli.py): the VfsConfig itself is made with the Vfs.
    It lives in vfs/vfs.py, which imports the whole vfs (the cache with diskcache and
    SQLite, open files, fetch, upload, stores: ~9 ms), and a run whose Vfs is never made
    (_DeferredVfs) never imports it."""

    def __init__(self, **fields):
        self.fields = fields
        self.cache_dir = fields["cache_dir"]

    def make(self) -> VfsConfig:
        from vfs import VfsConfig
        fields = dict(self.fields)
        network = fields.pop("network_args", None)
        if network is not None:   # vfs.stores.s3 imported only by a run that makes its Vfs
            from vfs.stores.s3 import Network
            fields["network"] = Network(**network)
        return VfsConfig(**fields)


def placeholder_dir(cache_dir: Path | str) -> Path:
    """vfs.cache.Cache.placeholder_path, known without importing the cache (a test holds
    the two to the same answer)."""
    return Path(cache_dir) / "empty-dir"


class BadConfiguration(Exception):
    """The run cannot work as configured (endpoint unreachable, credentials refused, a
    mounted bucket missing): one line, before the program runs."""


def buckets_to_probe(argv: list[str], mounts: MountTable) -> list[tuple[str, str, bool]]:
    """(bucket, prefix, mounted) for each bucket this run will certainly use: the mounted
    ones and those named on the command line. A run with neither asks no server at start."""
    out: dict[str, tuple[str, str, bool]] = {}
    for m in mounts.mounts:
        if m.store_url.startswith("s3://"):
            out[m.store_url[5:]] = (m.store_url[5:], m.prefix, True)
    for arg in argv:
        for bucket in _NAMED_BUCKET.findall(arg):
            out.setdefault(bucket, (bucket, "", False))
    return list(out.values())


def probe(vfs: Vfs, buckets: list[tuple[str, str, bool]]) -> None:
    """One listing per bucket; raises BadConfiguration for an unreachable endpoint, refused
    or missing credentials, or a mounted bucket that does not exist."""
    for bucket, prefix, mounted in buckets:
        found = vfs.store(f"s3://{bucket}").probe(prefix)
        if found is None:
            continue
        kind, err = found
        if kind == "no-bucket" and not mounted:
            continue   # the program may be asking whether it exists
        raise BadConfiguration(err.message)


class _Late:
    """The tracer needs a handler before the child exists; the Supervisor needs the
    child's pid. This forwards to the Supervisor once it is built."""

    target: Supervisor
    root = 0
    tracer: Tracer

    def on_syscall(self, stop):
        self.target.on_syscall(stop)

    def on_spawn(self, parent, child, flags):
        self.target.on_spawn(parent, child, flags)

    def on_exec(self, tgid):
        self.target.on_exec(tgid)

    def on_exit(self, tgid):
        self.target.on_exit(tgid)
        if tgid == self.root:
            # The program is done: what it left running in the background cannot run
            # without us, and we return now (its open files are uploaded as it goes).
            left = end_tree(self.tracer)
            if left:
                log.warning("the program exited: ending %d traced process(es) it left running", left)


def end_tree(tracer: Tracer) -> int:
    """SIGKILL every traced process; returns how many there were."""
    return tracer.kill_all()


class _Signals(SignalForwarder):
    """The forwarder (first SIGINT/SIGTERM/SIGHUP goes to the program), and a second one,
    from kill or the terminal, ends the whole traced tree: a program that ignores or
    only slowly handles the first cannot keep the run going."""

    def __init__(self, tracer: Tracer):
        super().__init__()
        self._tracer = tracer

    def _loop(self) -> None:
        seen = 0
        while True:
            info = signal.sigwaitinfo(self.SIGNALS)
            seen += 1
            if seen > 1:
                log.warning("second %s: ending every traced process", signal.Signals(info.si_signo).name)
                end_tree(self._tracer)
            elif info.si_code != 0x80:  # SI_KERNEL: from the terminal, the program got it too
                try:
                    os.kill(self.target, info.si_signo)
                except ProcessLookupError:
                    pass


def _with_fast_path(env: dict[str, str], trap, mounts: MountTable, config: VfsSettings,
                    fd_base: int, lib_dir: Path, read_mark: tuple[str, str] | None = None) -> dict[str, str]:
    """Preload the in-process prefilter so that dynamically linked programs make their
    local path calls without a stop. Without it everything still works, only slower."""
    try:
        try:
            library = prefilter.build(lib_dir)
        except prefilter.UnsafeLocation as exc:
            fallback = prefilter.private_dir()
            library = prefilter.build(fallback)
            log.warning("fast-path library not loaded from %s (%s): built in %s instead", lib_dir, exc, fallback)
        if not prefilter.readable_by_all(library):
            # A program that runs as another user (su, setpriv, a daemon) could not load it
            # from there (a 0700 home): ld.so would print an error in every such program.
            try:
                library = prefilter.build(prefilter.private_dir())
            except prefilter.UnsafeLocation as exc:
                log.debug("fast-path library only loadable by us: %s", exc)
        if _hidden(library, mounts):
            # Under a mount (-m /tmp=...): the loader would look for it in the bucket and
            # print an error in every program. Kept somewhere no mount covers, or not used.
            library = _outside_mounts(mounts)
            if library is None:
                log.warning("fast path off, every path syscall stops: each place its library "
                            "could be kept is under a mount")
                return env
        env = prefilter.environ(env, library, [OBJMOUNT_ROOT, *mounts.targets], fd_base,
                                defer_cwd=str(placeholder_dir(config.cache_dir)),
                                defer_fds_under=str(config.cache_dir), read_mark=read_mark)
    except prefilter.PrefilterUnavailable as exc:
        log.warning("fast path off, every path syscall stops: %s", exc)
        return env
    trap.trusted_ip = prefilter.TRUSTED_IP
    trap.constant_paths = _loader_rules(library.parent, mounts)
    return env


def _loader_rules(where: Path, mounts: MountTable) -> dict[int, list[tuple[int, int, int]]]:
    """The filter's rules for the dynamic loader's constant paths (tracer/loader.py), each
    unless a mount covers its path."""
    from tracer import loader
    rules: dict[int, list[tuple[int, int, int]]] = {}
    for site in loader.sites(where):
        if not _covered(site.path, mounts):
            rules.setdefault(site.nr, []).append((site.index, site.distance, site.page_offset))
    return rules


def _covered(path: str, mounts: MountTable) -> bool:
    """Whether the path is virtual: under /objmount or a mount."""
    return under_roots(normalize(path), roots_of(mounts.targets))


def _hidden(library: Path, mounts: MountTable) -> bool:
    """Whether programs would look for `library` in a bucket (it is under a mount)."""
    return any(_covered(p, mounts) for p in (str(library), os.path.realpath(library)))


def _outside_mounts(mounts: MountTable) -> Path | None:
    """The fast-path library built in a directory of ours that no mount covers, or None."""
    for place in prefilter.private_dirs():
        try:
            if _hidden(place, mounts):
                continue
            library = prefilter.build(place)
        except (prefilter.UnsafeLocation, OSError) as exc:
            log.debug("fast-path library not kept in %s: %s", place, exc)
            continue
        if prefilter.readable_by_all(library) and not _hidden(library, mounts):
            return library
    return None


def _quick_loop(lib_dir: Path | None):
    """The tracer's quick loop (tracer/quickloop.py), built beside the fast-path library;
    None (the Python loop answers every stop) without a compiler, or with
    OBJMOUNT_QUICK_LOOP=0 (for comparisons)."""
    if lib_dir is None or os.environ.get("OBJMOUNT_QUICK_LOOP") == "0":
        return None
    from tracer import quickloop
    try:
        try:
            return quickloop.load(lib_dir)
        except prefilter.UnsafeLocation:
            return quickloop.load(prefilter.private_dir())
    except (prefilter.PrefilterUnavailable, OSError) as exc:
        log.warning("quick loop off, every stop is answered in Python: %s", exc)
        return None


def _check_cache_dir(config: VfsSettings) -> None:
    """The cache directory must be ours (another user's could read what we fetch, or
    plant data we would upload): checked before the program runs."""
    root = Path(config.cache_dir)
    try:
        owner = root.stat().st_uid
    except FileNotFoundError:
        owner = os.geteuid()
    except OSError as exc:
        raise BadConfiguration(f"cache directory {root}: {exc.strerror}") from None
    if owner != os.geteuid():
        raise BadConfiguration(f"cache directory {root} belongs to uid {owner}, not to us: use --cache-dir")


def _open_vfs(mounts: MountTable, config: VfsSettings) -> Vfs:
    """The Vfs over a cache directory that is ours."""
    from vfs import Vfs

    _check_cache_dir(config)
    try:
        return Vfs(mounts, config.make())
    except OSError as exc:
        raise BadConfiguration(f"cache directory {Path(config.cache_dir)}: {exc.strerror or exc}") from None


def _may_hold_files(config: VfsSettings) -> bool:
    """Whether an earlier run may have left files unpublished in the cache: such files are
    only ever private items, in items/new (vfs/cache.py). Empty or missing: nothing to say,
    and no index to open to say it."""
    try:
        with os.scandir(Path(config.cache_dir) / "items" / "new") as entries:
            return next(entries, None) is not None
    except FileNotFoundError:
        return False
    except OSError:
        return True   # the summary says what is wrong


class _NothingKnown:
    @staticmethod
    def peek(path: str) -> None:
        return None


class _DeferredVfs:
    """The Vfs of a run that declares no virtual path (no mount, no bucket on its command
    line), made at the first call that touches one: a run that touches none (a build, a
    test suite) never opens the cache index, at start or at exit (~3-8 ms of each run).
    The Supervisor calls end_operation after every call it handles, virtual or not: a
    no-op until the Vfs exists. A cache that cannot be opened then fails that call (and
    every later virtual one) with EIO, and one log line says why; a look at what the
    namespace knows (ns.peek, which asks nothing and may not fail) finds nothing."""

    def __init__(self, mounts: MountTable, config: VfsSettings):
        self._args = (mounts, config)
        self._lock = threading.Lock()
        self.made: Vfs | None = None

    def get(self) -> Vfs:
        vfs = self.made
        if vfs is None:
            with self._lock:
                if self.made is None:
                    try:
                        self.made = _open_vfs(*self._args)
                    except BadConfiguration as exc:
                        raise VfsError(errno.EIO, str(exc)) from None
                vfs = self.made
        return vfs

    def __getattr__(self, name: str):   # what the instance itself does not have: the Vfs's
        try:
            return getattr(self.get(), name)
        except VfsError:
            if name == "ns":
                return _NothingKnown
            raise

    def end_operation(self) -> None:
        if self.made is not None:
            self.made.end_operation()


def run(argv: list[str], mounts: MountTable, config: VfsSettings,
        fd_base: int, lib_dir: Path | None = None, quick_dir: Path | None = None) -> tuple[int, dict]:
    """Run argv to completion; returns (wait status of the command, stats).
    lib_dir: where the fast-path library is built and kept; None turns it off.
    quick_dir: where the tracer's quick loop is built; None: the Python loop does it all."""
    late = _Late()
    tracer = late.tracer = Tracer(late, _quick_loop(quick_dir))
    tracer.pass_local_paths([OBJMOUNT_ROOT, *mounts.targets], local_pass())
    forwarder = _Signals(tracer)
    # Fork before any thread of ours exists (the vfs starts fetch threads).
    trap = syscall_filter(fd_base)
    env = dict(os.environ)
    direct_reads = None
    if lib_dir is not None:
        direct_reads = DirectReads()
        env = _with_fast_path(env, trap, mounts, config, fd_base, lib_dir, direct_reads.mark)
        if prefilter.ENV_READ_MARK not in env:
            direct_reads = None   # no library: nobody reads the marks
    # The tracer takes SIGCHLD from a signalfd: blocked in every thread, so no thread
    # of ours (all started from here on) swallows it. The program gets the old mask.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    pid = late.root = spawn(tracer, argv, env, trap, sigmask=forwarder.old_mask)
    vfs = None
    try:
        _check_cache_dir(config)
        vfs = _DeferredVfs(mounts, config)
        buckets = buckets_to_probe(argv, mounts)
        if mounts.mounts or buckets or _may_hold_files(config):
            # A run that declares virtual paths fails before its program runs if the cache
            # cannot be used, and says at start what earlier runs left unpublished.
            vfs.made = _open_vfs(mounts, config)
        probe(vfs, buckets)   # the program is still stopped before its exec
        if vfs.made is not None:
            from vfs import recovery
            try:
                held = recovery.summary_line(vfs.cache)  # what a run left unpublished: reported, kept
            except VfsError as exc:
                held = exc.message
            if held:
                log.warning("%s", held)
        late.target = Supervisor(vfs, mounts, trap, pid, os.getcwd(), direct_reads)
        forwarder.start(pid)
        status = tracer.run()
    except BaseException:
        # Never leave the traced tree behind: it dies with us (PTRACE_O_EXITKILL), but
        # kill it now so a failure does not wait on it.
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        raise
    finally:
        if vfs is not None:
            if hasattr(late, "target"):
                late.target.shutdown()
            made = vfs.made
            stats = {"vfs": made.stats() if made is not None else Stats().as_dict(), "stops": tracer.stops}
            if made is not None:
                made.close()
    counts = dict(late.target.counts)
    for name, n in tracer.passed().items():   # stops the quick loop let go by itself
        counts[name] = counts.get(name, 0) + n
    stats["syscalls"] = dict(sorted(counts.items()))
    return status, stats
