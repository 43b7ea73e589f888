"""Process creation under the tracer looks to the program exactly as it does natively:
what a parent is told about its children, what survives an exec."""

from __future__ import annotations

import os
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


# A small build-like job: shells, pipes, a subshell per file, signals (SIGCHLD, a trapped
# SIGUSR1, a child killed), files written and read back on the virtual side.
JOB = r'''
set -e
mkdir "$1"
cd "$1"
trap 'echo usr1 >> log' USR1
for i in 1 2 3 4 5 6; do
  ( echo "file $i" | tr a-z A-Z > "f$i.txt"; cat /etc/hostname >/dev/null ) &
done
wait
kill -USR1 $$
sleep 5 & kill -TERM $! ; wait $! || echo "killed $?" >> log
ls | sort | xargs cat > all.txt
sh -c 'exec cat all.txt' | wc -l >> log
python3 -c 'import os, threading; t = threading.Thread(target=lambda: open("/etc/hostname").read()); t.start(); t.join(); print(len(os.listdir(".")))' >> log
cat log all.txt
'''


def test_the_quick_loop_answers_as_the_python_loop_does(objmount, bucket):
    """The same job with the quick loop (the default) and with the Python loop alone
    (OBJMOUNT_QUICK_LOOP=0): the same output and the same objects; the quick loop let the
    local opens go without the handler (stats count them the same)."""
    runs = {}
    for quick in ("1", "0"):
        where = f"/objmount/s3/{bucket}/job-{quick}"
        run = objmount(["sh", "-c", JOB, "job", where], env={"OBJMOUNT_QUICK_LOOP": quick})
        assert run.returncode == 0, run.stderr
        runs[quick] = run
    assert runs["1"].text == runs["0"].text
    assert "usr1" in runs["1"].text and "killed 143" in runs["1"].text and "FILE 6" in runs["1"].text
    one, zero = (objmount(["sh", "-c", f"cd /objmount/s3/{bucket}/job-{q} && ls && cat all.txt log"]).text for q in "10")
    assert one == zero
    assert runs["1"].stats["syscalls"].get("openat", 0) == runs["0"].stats["syscalls"].get("openat", 0) > 0


def test_the_quick_loop_takes_any_mount_table(objmount, tmp_path):
    """More roots than the quick loop keeps (it then leaves every path to the handler),
    and a mount path that is not UTF-8: the same answers as the Python loop, no crash."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "f").write_text("in the store\n")
    many = [arg for i in range(70) for arg in ("-m", f"/mnt{i}=file://{store}")]
    odd = os.fsdecode(b"/d\xffx")
    for options, path in ((many, "/mnt66/f"), (("-m", f"{odd}=file://{store}"), f"{odd}/f")):
        for quick in ("1", "0"):
            run = objmount(["cat", path, "/etc/hostname"], *options, env={"OBJMOUNT_QUICK_LOOP": quick})
            assert run.returncode == 0, run.stderr
            assert run.text.startswith("in the store\n")


def test_the_loaders_constant_paths_do_not_stop_unless_a_mount_covers_them(objmount, tmp_path):
    """ld.so's access("/etc/ld.so.preload") and openat("/etc/ld.so.cache") pass the filter
    (tracer/loader.py): none of the ten programs' starts stops on them. With /etc mounted
    they are virtual paths and stop, as any other."""
    loop = "for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true; done"
    plain = objmount(loop)
    assert plain.returncode == 0, plain.stderr
    assert plain.stats["syscalls"].get("access", 0) == 0
    (tmp_path / "etc").mkdir()
    covered = objmount(loop, "-m", f"/etc=file://{tmp_path}/etc")
    assert covered.returncode == 0, covered.stderr
    assert covered.stats["syscalls"].get("access", 0) >= 10
