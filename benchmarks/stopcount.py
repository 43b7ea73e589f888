"""python -m benchmarks.stopcount OUT.json exec ...: `objmount exec ...` with every ptrace
stop the supervisor waits for counted by kind (seccomp, fork/vfork/clone/exec events,
signal stops, group-stops), written to OUT.json at the end.

The supervisor's own stats count only seccomp stops; fork/exec-heavy work (builds,
configure scripts) is dominated by the others. The count wraps os.waitpid (well under a
microsecond per call) and adds the quick loop's own counts (it reaps most statuses in C),
so the figures come from the code as it is.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
from collections import Counter

_EVENTS = {1: "fork", 2: "vfork", 3: "clone", 4: "exec", 6: "vfork-done", 7: "seccomp", 128: "event-stop"}


def install(out: str) -> Counter:
    counts: Counter = Counter()
    waitpid = os.waitpid

    def counted(pid: int, options: int):
        tid, status = waitpid(pid, options)
        if tid and os.WIFSTOPPED(status):
            sig, event = os.WSTOPSIG(status), status >> 16
            if sig == signal.SIGTRAP and event:
                counts[_EVENTS.get(event, f"event-{event}")] += 1
            elif sig == signal.SIGTRAP | 0x80:
                counts["syscall"] += 1
            else:
                counts["signal"] += 1
        return tid, status

    os.waitpid = counted

    def write() -> None:
        # The quick loop (tracer/quickloop.py) reaps most statuses in C: its own counts.
        from tracer import quickloop
        if quickloop._loaded is not None:
            kinds = quickloop._loaded.counts()[0]
            for kind in ("seccomp", "fork", "vfork", "clone", "exec", "signal", "syscall"):
                counts[kind] += kinds[kind]
            counts["other-event"] += kinds["other-event"]
            for kind in [k for k, v in counts.items() if not v]:
                del counts[kind]
        with open(out, "w") as f:
            json.dump(dict(counts, total=sum(counts.values())), f)

    atexit.register(write)
    return counts


def main() -> None:
    out = sys.argv[1]
    install(out)
    sys.argv = ["objmount", *sys.argv[2:]]
    from objmount.cli import main as objmount_main
    objmount_main()   # exits through sys.exit: the counts are written at exit


if __name__ == "__main__":
    main()
