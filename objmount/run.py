"""Wiring: start the command under the tracer with a Supervisor over a Vfs."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tracer import SignalForwarder, Tracer, prefilter, spawn
from vfs import MountTable, Vfs, VfsConfig, VfsError
from vfs import recovery
from vfs.cache import Cache
from vfs.mounts import OBJMOUNT_ROOT

from .handlers import syscall_filter
from .supervisor import Supervisor

log = logging.getLogger("objmount")


class _Late:
    """The tracer needs a handler before the child exists; the Supervisor needs the
    child's pid. This forwards to the Supervisor once it is built."""

    target: Supervisor

    def on_syscall(self, stop):
        self.target.on_syscall(stop)

    def on_spawn(self, parent, child, flags):
        self.target.on_spawn(parent, child, flags)

    def on_exec(self, tgid):
        self.target.on_exec(tgid)

    def on_exit(self, tgid):
        self.target.on_exit(tgid)


def _with_fast_path(env: dict[str, str], trap, mounts: MountTable, config: VfsConfig,
                    fd_base: int, lib_dir: Path) -> dict[str, str]:
    """Preload the in-process prefilter so that dynamically linked programs make their
    local path calls without a stop. Without it everything still works, only slower."""
    try:
        library = prefilter.build(lib_dir)
        env = prefilter.environ(env, library, [OBJMOUNT_ROOT, *mounts.targets], fd_base,
                                defer_cwd=str(Cache.placeholder_path(Path(config.cache_dir))),
                                defer_fds_under=str(config.cache_dir))
    except prefilter.PrefilterUnavailable as exc:
        log.warning("fast path off, every path syscall stops: %s", exc)
        return env
    trap.trusted_ip = prefilter.TRUSTED_IP
    return env


def run(argv: list[str], mounts: MountTable, mount_targets: list[str], config: VfsConfig,
        fd_base: int, lib_dir: Path | None = None) -> tuple[int, dict]:
    """Run argv to completion; returns (wait status of the command, stats).
    lib_dir: where the fast-path library is built and kept; None turns it off."""
    forwarder = SignalForwarder()
    late = _Late()
    tracer = Tracer(late)
    # Fork before any thread of ours exists (the vfs starts fetch threads).
    trap = syscall_filter(fd_base)
    env = dict(os.environ)
    if lib_dir is not None:
        env = _with_fast_path(env, trap, mounts, config, fd_base, lib_dir)
    pid = spawn(tracer, argv, env, trap, sigmask=forwarder.old_mask)
    vfs = None
    try:
        vfs = Vfs(mounts, config)
        try:
            held = recovery.summary_line(vfs.cache)  # what a run left unpublished: reported, kept
        except VfsError as exc:
            held = exc.message
        if held:
            log.warning("%s", held)
        late.target = Supervisor(vfs, mounts, mount_targets, trap, pid, os.getcwd())
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
            stats = {"vfs": vfs.stats(), "stops": tracer.stops}
            vfs.close()
    stats["syscalls"] = dict(sorted(late.target.counts.items()))
    return status, stats
