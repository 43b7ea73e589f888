"""Process creation under the tracer looks to the program exactly as it does natively:
what a parent is told about its children, what survives an exec."""

from __future__ import annotations

import subprocess
import sys

# The parent blocks SIGCHLD, starts a child that exits at once, reaps it, and then takes
# the pending SIGCHLD: natively it says CLD_EXITED. A child whose start under the tracer
# delivered its SIGSTOP would show CLD_STOPPED instead (standard signals do not queue:
# the exit's SIGCHLD merges into the pending one), and waitpid(WUNTRACED) could see it.
CHILD_NOTICES = r'''
import os, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_DFL)   # an ignored SIGCHLD (inherited) reaps children itself
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
out = []
for how in ("fork", "posix_spawn", "subprocess"):
    if how == "fork":
        pid = os.fork()
        if pid == 0:
            os._exit(7)
    elif how == "posix_spawn":
        pid = os.posix_spawn("/bin/sh", ["sh", "-c", "exit 7"], os.environ)
    else:
        import subprocess
        keep = subprocess.Popen(["/bin/true"])   # dropped at once, it would reap the child itself
        pid = keep.pid
    _, status = os.waitpid(pid, os.WUNTRACED)
    info = signal.sigtimedwait({signal.SIGCHLD}, 5)
    out.append(f"{how}: stopped={os.WIFSTOPPED(status)} code={info and info.si_code} "
               f"pending={sorted(signal.sigpending())}")
print("\n".join(out))
'''


def test_a_parent_hears_only_of_its_childs_exit(objmount):
    native = subprocess.run([sys.executable, "-c", CHILD_NOTICES], capture_output=True, text=True, timeout=60)
    assert native.returncode == 0, native.stderr
    assert "code=1 " in native.stdout   # CLD_EXITED: the probe itself is sound
    for options in ((), ("--no-fast-path",)):
        run = objmount([sys.executable, "-c", CHILD_NOTICES], *options)
        assert run.returncode == 0, run.stderr
        assert run.text == native.stdout, options
