"""Start a command under the tracer with the seccomp filter in place.

Order matters: the child stops itself after PTRACE_TRACEME, the parent sets the ptrace
options (TRACESECCOMP must be on before any filtered syscall, or it fails with ENOSYS),
and only then does the child install the filter and exec.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import sys

from . import kernel
from .seccomp import SyscallFilter
from .tracer import Tracer


_TRACEME_REFUSED = 125


class TraceError(Exception):
    """The command could not be started under the tracer; the message says why."""


def spawn(tracer: Tracer, argv: list[str], env: dict[str, str], syscall_filter: SyscallFilter,
          sigmask: set[int] | None = None) -> int:
    """Fork, exec `argv` traced, and hand the root to `tracer`. Returns its pid."""
    program = syscall_filter.program()
    # Search PATH here, before the filter is on: execvpe in the child would stop once for
    # every PATH directory it tries.
    executable = argv[0] if "/" in argv[0] else (shutil.which(argv[0], path=env.get("PATH", os.defpath))
                                                 or argv[0])
    pid = os.fork()
    if pid == 0:  # child: only exec or _exit from here
        code = 127
        try:
            try:
                kernel.traceme()
            except OSError:
                os._exit(_TRACEME_REFUSED)  # the parent says why
            os.kill(os.getpid(), signal.SIGSTOP)
            signal.pthread_sigmask(signal.SIG_SETMASK, sigmask or set())
            kernel.install_seccomp_filter(program)
            os.execve(executable, argv, env) if "/" in executable else os.execvpe(executable, argv, env)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.ENOEXEC, errno.EISDIR):
                code = 126
            what = "command not found" if exc.errno == errno.ENOENT else exc.strerror
            try:
                sys.stderr.write(f"objmount: {argv[0]}: {what}\n")
                sys.stderr.flush()
            except Exception:
                pass
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, kernel.WALL)
    if not os.WIFSTOPPED(status):
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == _TRACEME_REFUSED:
            raise TraceError("cannot trace the command: ptrace was refused (is this process itself "
                             "being traced, by strace, gdb or another objmount? or is ptrace disabled "
                             "here, e.g. kernel.yama.ptrace_scope=3?)")
        raise TraceError(f"the traced command did not start (wait status {status:#x})")
    tracer.adopt_root(pid)
    return pid
