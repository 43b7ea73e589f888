"""Several processes (and several descriptors of one process) on the same virtual files in
one run, compared with a local directory: what one process holds open must see what
another does, as on one inode."""

from __future__ import annotations

import pytest

DATA = "0123456789" * 100
HERE = 'cd "$(dirname "$0")" || exit 9\n'


def sh(name: str, body: str) -> list:
    """A `put` step writing an executable shell script that runs in the probe's root."""
    return ["put", name, "#!/bin/sh\n" + HERE + body, 0o755]


MOUNTS = pytest.mark.parametrize("mount", ["bucket", "file"])


@MOUNTS
def test_a_reader_sees_another_process_append(differential, mount):
    differential(
        [sh("a.sh", "printf 'appended' >> f\n"), ["put", "f", DATA],
         ["open", "f", "RDONLY", 0o644, "r"], ["pread", "r", 8, 0], ["fstat", "r", False],
         ["run", "a.sh"], ["fstat", "r", False], ["pread", "r", 20, 995], ["lseek", "r", 0, 2],
         ["read", "r", 100], ["close", "r"], ["cat", "f"]],
        mount=mount)


@MOUNTS
def test_a_reader_keeps_the_old_file_when_another_process_renames_over_it(differential, mount):
    differential(
        [sh("m.sh", "printf new > g && mv g f\n"), ["put", "f", DATA],
         ["open", "f", "RDONLY", 0o644, "r"], ["pread", "r", 8, 0],
         ["run", "m.sh"], ["pread", "r", 8, 0], ["pread", "r", 8, 992], ["fstat", "r", False],
         ["cat", "f"], ["stat", "f", False], ["close", "r"], ["cat", "f"], ["listdir"]],
        mount=mount)


@MOUNTS
def test_a_reader_keeps_a_file_another_process_removes_and_makes_again(differential, mount):
    differential(
        [sh("rm.sh", "rm f\n"), sh("mk.sh", "printf again > f\n"), ["put", "f", DATA],
         ["open", "f", "RDONLY", 0o644, "r"], ["pread", "r", 8, 0],
         ["run", "rm.sh"], ["pread", "r", 8, 500], ["fstat", "r", False], ["exists", "f"],
         ["run", "mk.sh"], ["pread", "r", 8, 0], ["fstat", "r", False], ["cat", "f"],
         ["close", "r"], ["cat", "f"], ["listdir"]],
        [["cat", "f"], ["listdir"]],
        mount=mount)


@MOUNTS
def test_a_reader_sees_another_process_chmod_and_link(differential, mount):
    differential(
        [sh("c.sh", "chmod 600 f && ln f g\n"), ["put", "f", DATA],
         ["open", "f", "RDONLY", 0o644, "r"], ["pread", "r", 4, 0],
         ["run", "c.sh"], ["fstat", "r", False], ["stat", "g", False], ["close", "r"]],
        mount=mount)


@MOUNTS
def test_another_process_sees_what_an_open_writer_wrote(differential, mount):
    """A writer holding its descriptor: cat, stat, ls and wc in another process see it."""
    differential(
        [sh("look.sh", "cat f > seen; wc -c < f > size; ls > names\n"),
         ["open", "f", "WRONLY|CREAT|TRUNC", 0o644, "w"], ["write", "w", "first part "],
         ["run", "look.sh"], ["cat", "seen"], ["cat", "size"], ["cat", "names"],
         ["stat", "f", False], ["write", "w", "second"],
         ["run", "look.sh"], ["cat", "seen"], ["cat", "size"],
         ["close", "w"], ["cat", "f"]],
        [["cat", "f"], ["cat", "seen"]],
        mount=mount)


@MOUNTS
def test_two_writers_at_different_offsets_then_a_reader(differential, mount):
    differential(
        [["put", "f", DATA],
         sh("w1.sh", "printf AAAA | dd of=f bs=1 seek=10 conv=notrunc status=none\n"),
         sh("w2.sh", "printf BBBB | dd of=f bs=1 seek=2000 conv=notrunc status=none\n"),
         sh("both.sh", "./w1.sh & ./w2.sh & wait\n"),
         ["run", "both.sh"], ["stat", "f", False], ["cat", "f"]],
        [["cat", "f"], ["stat", "f", False]],
        mount=mount)


@MOUNTS
def test_two_appending_processes_interleave(differential, mount):
    """O_APPEND from two processes, each holding its descriptor across the other's writes."""
    differential(
        [["open", "f", "WRONLY|CREAT|APPEND", 0o644, "a"], ["write", "a", "one "],
         sh("b.sh", "exec 3>>f; printf 'two ' >&3; printf 'three ' >&3; exec 3>&-\n"),
         ["run", "b.sh"], ["write", "a", "four "], ["fstat", "a", False],
         ["open", "f", "WRONLY|APPEND", 0o644, "b"], ["write", "b", "five "], ["write", "a", "six"],
         ["close", "b"], ["cat", "f"], ["close", "a"], ["cat", "f"]],
        [["cat", "f"]],
        mount=mount)


@MOUNTS
def test_a_shell_loop_appending_with_redirection(differential, mount):
    differential(
        [sh("loop.sh", "for i in 1 2 3 4 5; do echo line$i >> f; wc -l < f >> counts; done\n"
                       "exec 3<f; read first <&3; echo \"$first\" > first; exec 3<&-\n"),
         ["run", "loop.sh"], ["cat", "f"], ["cat", "counts"], ["cat", "first"]],
        [["cat", "f"]],
        mount=mount)


@MOUNTS
def test_a_child_inherits_a_written_descriptor_and_closes_it(differential, mount):
    """The parent writes, a subshell writes through the same description and exits, the
    parent writes again: one offset, one file."""
    differential(
        [sh("fork.sh", "exec 3>f; printf a >&3; (printf b >&3; exec 3>&-); printf c >&3;\n"
                       "cat f > mid; ( printf d >&3 ) & wait; exec 3>&-; cat f > end\n"),
         ["run", "fork.sh"], ["cat", "mid"], ["cat", "end"], ["cat", "f"]],
        [["cat", "f"]],
        mount=mount)


@MOUNTS
def test_a_writer_whose_file_another_process_truncates(differential, mount):
    differential(
        [sh("t.sh", "truncate -s 3 f\n"),
         ["open", "f", "WRONLY|CREAT|TRUNC", 0o644, "w"], ["write", "w", "0123456789"],
         ["run", "t.sh"], ["fstat", "w", False], ["write", "w", "XY"], ["fstat", "w", False],
         ["close", "w"], ["cat", "f"]],
        [["cat", "f"], ["stat", "f", False]],
        mount=mount)


@MOUNTS
def test_a_writer_whose_file_another_process_renames_and_removes(differential, mount):
    differential(
        [sh("mv.sh", "mv f g\n"), sh("rm.sh", "rm g\n"),
         ["open", "f", "WRONLY|CREAT|TRUNC", 0o644, "w"], ["write", "w", "before "],
         ["run", "mv.sh"], ["write", "w", "between "], ["cat", "g"],
         ["open", "g", "RDONLY", 0o644, "r"],
         ["run", "rm.sh"], ["write", "w", "after"], ["fstat", "w", False], ["pread", "r", 40, 0],
         ["close", "w"], ["pread", "r", 40, 0], ["close", "r"], ["listdir"]],
        [["listdir"]],
        mount=mount)


@MOUNTS
def test_editors_save_while_a_reader_holds_the_old_file(differential, mount):
    """sed -i, sort -o f f and write-tmp-then-rename while a descriptor holds the old file."""
    differential(
        [["put", "f", "c\nb\na\n"],
         sh("ed.sh", "sed -i s/b/B/ f && sort -o f f && printf 'z\\n' > f.tmp && cat f >> f.tmp && mv f.tmp f\n"),
         ["open", "f", "RDONLY", 0o644, "r"], ["read", "r", 2],
         ["run", "ed.sh"], ["read", "r", 10], ["fstat", "r", False], ["cat", "f"], ["stat", "f", False],
         ["close", "r"], ["listdir"]],
        [["cat", "f"], ["listdir"]],
        mount=mount)


@MOUNTS
def test_a_directory_renamed_while_files_below_are_open(differential, mount):
    differential(
        [["mkdir", "d"], ["put", "d/r", DATA],
         ["open", "d/r", "RDONLY", 0o644, "r"], ["open", "d/w", "WRONLY|CREAT", 0o644, "w"],
         ["write", "w", "in d "], sh("mv.sh", "mv d e && cat e/w > seen\n"),
         ["run", "mv.sh"], ["cat", "seen"], ["write", "w", "in e"], ["pread", "r", 8, 100],
         ["fstat", "r", False], ["close", "w"], ["close", "r"], ["cat", "e/w"], ["listdir"], ["listdir", "e"]],
        [["listdir"], ["listdir", "e"], ["cat", "e/w"]],
        mount=mount)


@MOUNTS
def test_two_descriptors_of_one_process(differential, mount):
    """A reader and a writer of one file in one process, and an O_TRUNC open of it."""
    differential(
        [["put", "f", DATA], ["open", "f", "RDONLY", 0o644, "r"], ["open", "f", "RDWR", 0o644, "w"],
         ["pwrite", "w", "XYZ", 5], ["pread", "r", 10, 0], ["ftruncate", "w", 20], ["fstat", "r", False],
         ["read", "r", 100], ["open", "f", "WRONLY|TRUNC", 0o644, "t"], ["fstat", "r", False],
         ["pread", "w", 10, 0], ["write", "t", "new"], ["pread", "r", 10, 0], ["close", "t"],
         ["pread", "r", 10, 0], ["close", "w"], ["close", "r"], ["cat", "f"]],
        [["cat", "f"]],
        mount=mount)


def test_a_reader_sees_a_writer_whose_new_version_an_earlier_run_cached(objmount, s3, bucket):
    """The version a writer's close makes may already be in the cache (an earlier run
    read the same bytes, and the object was changed since): a descriptor held across
    that close must still see the writers after it."""
    path = f"/objmount/s3/{bucket}/f"
    first = objmount(["sh", "-c", f"printf B > {path} && cat {path}"])
    assert first.returncode == 0 and first.stdout == b"B", first.stderr
    s3.put_object(Bucket=bucket, Key="f", Body=b"A")   # another client
    run = objmount(["sh", "-c", f"exec 3<{path}; printf B > {path}; printf C >> {path}; cat <&3; echo; cat {path}"])
    assert run.returncode == 0, run.stderr
    assert run.text == "BC\nBC"
    assert s3.get_object(Bucket=bucket, Key="f")["Body"].read() == b"BC"


FOUR_MIB = {"rep": ["0123456789abcdef", 262144]}
TWENTY_MIB = {"rep": ["0123456789abcdef", 1310720]}


def dd(name: str, data: str, offset: int, trunc: bool = False) -> list:
    conv = "" if trunc else " conv=notrunc"
    return sh(name, f"printf '{data}' | dd of=f bs=1 seek={offset}{conv} status=none\n")


def not_local(cache_dir):
    import shutil
    return lambda: shutil.rmtree(cache_dir)


@MOUNTS
@pytest.mark.parametrize("change", [
    [dd("c.sh", "WXYZ", 2_500_000)],
    [sh("c.sh", "printf tail >> f\n")],
    [sh("c.sh", "truncate -s 2000000 f && printf X >> f\n")],
    [sh("c.sh", "chmod 600 f && touch -d @1000000000 f\n")],
    [sh("c.sh", "printf new > g && mv g f\n")],
    [sh("c.sh", "rm f && printf again > f\n")],
    [sh("c.sh", "ln f g && printf LINK | dd of=g bs=1 seek=3000000 conv=notrunc status=none\n")],
], ids=["dd", "append", "truncate", "attrs", "renamed-over", "removed", "link"])
def test_a_reader_of_a_large_file_not_local_and_another_process(differential, cache_dir, mount, change):
    """A descriptor holds a 4 MiB file of which only the head is local; another process
    changes it: the reader's later reads of ranges never fetched give a local file's answer."""
    differential(
        [["put", "f", FOUR_MIB]],
        not_local(cache_dir),
        [*change, ["open", "f", "RDONLY", 0o644, "r"], ["pread", "r", 8, 0],
         ["run", "c.sh"], ["pread", "r", 8, 1_500_000], ["pread", "r", 8, 2_500_000], ["pread", "r", 8, 2_000_000],
         ["pread", "r", 8, 3_000_000], ["fstat", "r", False], ["lseek", "r", -4, 2], ["read", "r", 10],
         ["mmap_read", "r", 8, 1_000_000], ["close", "r"], ["stat", "f", False]],
        [["cat", "f"]],
        mount=mount)


@MOUNTS
@pytest.mark.parametrize("change", [
    [dd("c.sh", "WXYZ", 100)],
    [sh("c.sh", "printf tail >> f\n")],
    [sh("c.sh", "truncate -s 10000000 f\n")],
    [sh("c.sh", "cat f > copy\n")],
], ids=["dd-sent-part", "append", "truncate", "read"])
def test_a_new_large_file_being_written_and_another_process(differential, mount, change):
    """A new 20 MiB file goes up while it is written (write-behind); another process
    changes or reads it meanwhile; the writer goes on and closes."""
    differential(
        [*change, ["open", "f", "WRONLY|CREAT|TRUNC", 0o644, "w"], ["write", "w", TWENTY_MIB],
         ["run", "c.sh"], ["write", "w", "more"], ["fstat", "w", False], ["close", "w"],
         ["stat", "f", False], ["cat", "f"]],
        [["stat", "f", False], ["cat", "f"], ["open", "f", "RDONLY", 0o644, "r"], ["pread", "r", 8, 100],
         ["pread", "r", 8, 9_999_996], ["pread", "r", 8, 20_971_516], ["close", "r"]],
        mount=mount)


SEND_FD = '#!/usr/bin/env python3\nimport os, socket, sys\nos.chdir(os.path.dirname(os.path.abspath(sys.argv[0])))\na, b = socket.socketpair()\npid = os.fork()\nif pid == 0:\n    a.close()\n    msg, fds, flags, addr = socket.recv_fds(b, 10, 1)\n    fd = fds[0]\n    head = os.pread(fd, 8, 0)\n    far = os.pread(fd, 8, 3_000_000)\n    os.pwrite(fd, b"CHILD", 10)\n    with open("child-saw", "wb") as out:\n        out.write(head + b"|" + far)\n    os.close(fd)\n    os._exit(0)\nb.close()\nfd = os.open("f", os.O_RDWR)\nsocket.send_fds(a, [b"x"], [fd])\nos.close(fd)\nos.waitpid(pid, 0)\n'


@MOUNTS
def test_a_descriptor_sent_to_another_process(differential, cache_dir, mount):
    """A process opens a file and passes the descriptor over a unix socket (SCM_RIGHTS)
    to a child that did not inherit it, then closes its own: the child reads ranges never
    fetched and writes; the write reaches the bucket."""
    differential(
        [["put", "f", FOUR_MIB]],
        not_local(cache_dir),
        [["put", "send.py", SEND_FD, 0o755], ["run", "send.py"], ["cat", "child-saw"],
         ["open", "f", "RDONLY", 0o644, "r"], ["pread", "r", 8, 8], ["close", "r"]],
        not_local(cache_dir),   # what the store holds, not what the cache says
        [["open", "f", "RDONLY", 0o644, "r"], ["pread", "r", 8, 8], ["pread", "r", 8, 3_000_000], ["close", "r"]],
        mount=mount)


DIR_FD = """#!/usr/bin/env python3
import os, sys
os.chdir(os.path.dirname(os.path.abspath(sys.argv[0])))
fd = os.open("d", os.O_RDONLY | os.O_DIRECTORY)
os.rename("d", "e")
out = [sorted(os.listdir(fd))]
with open("x", "rb", opener=lambda p, f: os.open(p, f, dir_fd=fd)) as f:
    out.append(f.read().decode())
new = os.open("y", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
os.write(new, b"made through the old descriptor")
os.close(new)
out.append(os.stat("y", dir_fd=fd).st_size)
os.close(fd)
with open("out", "w") as f:
    f.write(repr(out))
"""


@MOUNTS
def test_a_directory_descriptor_follows_its_directory_renamed(differential, mount):
    differential(
        [["mkdir", "d"], ["put", "d/x", "in d"], ["put", "dfd.py", DIR_FD, 0o755], ["run", "dfd.py"],
         ["cat", "out"], ["listdir"], ["listdir", "e"], ["cat", "e/y"]],
        mount=mount)


@MOUNTS
def test_a_working_directory_follows_its_directory_renamed_by_another_process(differential, mount):
    differential(
        [["mkdir", "d"], ["put", "d/x", "in d"], sh("mv.sh", "mv d e\n"),
         sh("cwd.sh", "cd d || exit 3\n../mv.sh\nls > ../listed 2>&1; cat x > ../read 2>&1; printf y > y 2>../made\n"
                      "pwd -P | sed 's,.*/,,' > ../where\n"),
         ["run", "cwd.sh"], ["cat", "listed"], ["cat", "read"], ["cat", "made"], ["cat", "where"],
         ["listdir"], ["listdir", "e"]],
        mount=mount)


@MOUNTS
@pytest.mark.parametrize("replace", ["rm f && printf new > f\n", "printf new > g && mv g f\n"], ids=["rm", "mv"])
def test_a_descriptor_of_a_file_replaced_by_another_process_changes_only_its_own(differential, mount, replace):
    """fchmod, futimens and fstat through a descriptor whose name now belongs to another
    file: the new file is left alone."""
    differential(
        [["put", "f", "old"], sh("c.sh", replace), ["open", "f", "RDWR", 0o644, "a"],
         ["run", "c.sh"], ["fchmod", "a", 0o600], ["utimensat", None, 10**18, 10**18, True, "a"],
         ["fstat", "a"], ["write", "a", "written"], ["stat", "f"], ["cat", "f"], ["close", "a"],
         ["stat", "f"], ["cat", "f"]],
        [["stat", "f"], ["cat", "f"]],
        mount=mount)


@pytest.mark.parametrize("replace", ["rm f && printf new > f\n", "printf new > g && mv g f\n"], ids=["rm", "mv"])
def test_xattrs_through_a_descriptor_of_a_replaced_file_are_its_own(differential, replace):
    differential(
        [["put", "f", "old"], ["setxattr", "f", "user.kept", "old file's"], sh("c.sh", replace),
         ["open", "f", "RDWR", 0o644, "a"], ["run", "c.sh"], ["fxattrs", "a"], ["listxattr", "f"],
         ["close", "a"], ["listxattr", "f"]],
        [["listxattr", "f"]])


SHARED_OFFSET = """import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | int(sys.argv[2]))
os.lseek(fd, 2 << 20, 0)
kids = []
for letter in b"AB":
    pid = os.fork()
    if pid == 0:
        block = bytes([letter]) * 4096
        for _ in range(300):
            os.write(fd, block)
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
os.close(fd)
"""


@pytest.mark.parametrize("size", [4 << 20, 24 << 20], ids=["4MiB", "24MiB"])
@pytest.mark.parametrize("append", [False, True], ids=["offset", "append"])
def test_processes_writing_through_one_description_at_once(objmount, s3, bucket, tmp_path, size, append):
    """Two children write 300 blocks each through the description their parent opened
    (one offset, as `make -j > log` does), at the same time, into a file of which only the
    head is local: every block lands whole, and the rest of the object stays as it was."""
    import os as _os
    old = bytes(range(256)) * (size // 256)
    s3.put_object(Bucket=bucket, Key="f", Body=old)
    script = tmp_path / "share.py"
    script.write_text(SHARED_OFFSET)
    import sys
    flag = _os.O_APPEND if append else 0
    run = objmount([sys.executable, str(script), f"/objmount/s3/{bucket}/f", str(flag)])
    assert run.returncode == 0, run.stderr
    got = s3.get_object(Bucket=bucket, Key="f")["Body"].read()
    start = size if append else 2 << 20
    assert len(got) == max(size, start + 600 * 4096)
    blocks = [got[start + i * 4096:start + (i + 1) * 4096] for i in range(600)]
    assert sorted(set(blocks)) == [b"A" * 4096, b"B" * 4096]
    assert blocks.count(b"A" * 4096) == 300
    assert got[:start] == old[:start]
    assert got[start + 600 * 4096:] == old[start + 600 * 4096:]


CLOSING_WRITERS = """import os, sys
path, n = sys.argv[1], 150
kids = []
for k in range(2):
    pid = os.fork()
    if pid == 0:
        for i in range(n):
            fd = os.open(path, os.O_WRONLY)
            os.pwrite(fd, b"AB"[k:k + 1], 2 * i + k)
            os.close(fd)
        os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
print(open(path, "rb").read().decode())
"""


def test_a_close_while_another_process_writes_loses_nothing(objmount, s3, bucket, tmp_path):
    """Two processes open, write one byte and close, over and over, each at its own
    offsets: each close uploads the file while the other's write may be on its way."""
    import sys
    s3.put_object(Bucket=bucket, Key="f", Body=b"")
    script = tmp_path / "closing.py"
    script.write_text(CLOSING_WRITERS)
    run = objmount([sys.executable, str(script), f"/objmount/s3/{bucket}/f"])
    assert run.returncode == 0, run.stderr
    assert run.text.strip() == "AB" * 150
    assert s3.get_object(Bucket=bucket, Key="f")["Body"].read() == b"AB" * 150


MAPPER = """#!/usr/bin/env python3
import mmap, os, subprocess, sys
os.chdir(os.path.dirname(os.path.abspath(sys.argv[0])))
fd = os.open("f", os.O_RDWR)
m = mmap.mmap(fd, 0)
m[0:6] = b"MAPPED"
subprocess.run(["sh", "-c", "cat f > seen-by-cat; printf X | dd of=f bs=1 seek=8 conv=notrunc status=none"])
with open("seen-by-map", "wb") as out:
    out.write(m[0:10])
os._exit(0)   # no munmap, no close: the exit lets go of both
"""


@MOUNTS
def test_a_shared_mapping_and_other_processes(differential, cache_dir, mount):
    """One process writes through a shared mapping and leaves it to its exit; a child reads
    and writes the file meanwhile."""
    differential(
        [["put", "f", FOUR_MIB]],
        not_local(cache_dir),
        [["put", "map.py", MAPPER, 0o755], ["run", "map.py"], ["cat", "seen-by-cat"], ["cat", "seen-by-map"],
         ["open", "f", "RDONLY", 0o644, "r"], ["pread", "r", 12, 0], ["close", "r"]],
        not_local(cache_dir),
        [["open", "f", "RDONLY", 0o644, "r"], ["pread", "r", 12, 0], ["pread", "r", 8, 3_000_000], ["close", "r"]],
        mount=mount)


@MOUNTS
def test_a_lock_held_by_one_process_is_seen_by_the_others_across_writers(differential, mount):
    differential(
        [["put", "f", DATA],
         sh("lock.sh", "exec 3<f; flock 3; printf rewritten > f; printf more >> f\n"
                       "flock -n f true; echo $? > try1; sh -c 'flock -n f true; echo $? > try2'\n"
                       "flock -u 3; flock -n f true; echo $? > try3\n"),
         ["run", "lock.sh"], ["cat", "try1"], ["cat", "try2"], ["cat", "try3"], ["cat", "f"]],
        mount=mount)


@MOUNTS
def test_another_process_opens_a_descriptor_through_proc(differential, mount):
    """/proc/PID/fd/N of another process: the file that descriptor holds, written, renamed
    or unlinked since."""
    differential(
        [["put", "f", DATA], ["open", "f", "RDWR", 0o644, "a"], ["pwrite", "a", "WRITTEN", 0],
         ["put", "peek.sh", "#!/bin/sh\nhead -c 12 \"$1\"\n", 0o755],
         sh("p.sh", "./peek.sh /proc/$PPID/fd/$1 > seen1; mv f g; ./peek.sh /proc/$PPID/fd/$1 > seen2;"
                    " rm g; ./peek.sh /proc/$PPID/fd/$1 > seen3 2>/dev/null; echo $? >> seen3;"
                    " printf other > g; printf new > f; ./peek.sh /proc/$PPID/fd/$1 > seen4;"
                    " stat -L -c '%s %h %a' /proc/$PPID/fd/$1 > seen5;"
                    " printf ' appended' >> /proc/$PPID/fd/$1\n"),
         ["fdnum", "a"], ["run", "p.sh", "3"], ["cat", "seen1"], ["cat", "seen2"], ["cat", "seen3"],
         ["cat", "seen4"], ["cat", "seen5"], ["pread", "a", 100, 990], ["fstat", "a", False], ["close", "a"],
         ["listdir"], ["cat", "f"], ["cat", "g"]],
        mount=mount)


@MOUNTS
def test_times_another_process_changes_as_a_holder_sees_them(differential, mount):
    differential(
        [["put", "f", DATA], ["utime", "f", 10**18, 10**18], ["open", "f", "RDWR", 0o644, "a"],
         sh("w.sh", "printf X | dd of=f bs=1 seek=5 conv=notrunc status=none\n"), sh("c.sh", "chmod 600 f\n"),
         sh("r.sh", "cat f > /dev/null\n"), ["snap", "f", "s0"], ["sleep", 0.05],
         ["run", "r.sh"], ["since", "f", "s0"], ["snap", "f", "s1"], ["sleep", 0.05],
         ["run", "c.sh"], ["since", "f", "s1"], ["snap", "f", "s2"], ["sleep", 0.05],
         ["run", "w.sh"], ["since", "f", "s2"], ["order", "f"], ["fstat", "a", False],
         ["close", "a"], ["since", "f", "s2"]],
        # file://: the next run sees the store file's own ctime, a few µs after its mtime
        # (README "Times")
        [["stat", "f", False]] + ([["order", "f"]] if mount == "bucket" else []),
        mount=mount)


def test_hard_linked_names_written_by_another_process(differential):
    """As README "Hard links" says: a descriptor opened while the file is being written
    sees the writes at once; one opened before, at the writer's close."""
    differential(
        [["put", "a", DATA], ["link", "a", "b"],
         sh("w.sh", "exec 3<>b; printf X >&3; touch written; while [ ! -e go ]; do sleep 0.01; done; exec 3>&-\n"
                    "touch closed\n"),
         sh("bg.sh", "./w.sh & while [ ! -e written ]; do sleep 0.01; done\n"),
         sh("wait.sh", "while [ ! -e closed ]; do sleep 0.01; done\n"),
         ["open", "a", "RDONLY", 0o644, "before"], ["run", "bg.sh"],
         ["open", "a", "RDONLY", 0o644, "while"], ["pread", "while", 4, 0], ["cat", "a"], ["cat", "b"],
         ["put", "go", ""], ["run", "wait.sh"], ["pread", "before", 4, 0], ["pread", "while", 4, 0],
         ["close", "before"], ["close", "while"], ["cat", "a"]],
        [["cat", "a"], ["cat", "b"], ["stat", "a", False]])


DIR_LIST = """#!/usr/bin/env python3
import os, subprocess, sys
os.chdir(os.path.dirname(os.path.abspath(sys.argv[0])))
fd = os.open("d", os.O_RDONLY | os.O_DIRECTORY)
out = [sorted(os.listdir(fd))]
subprocess.run(["sh", "-c", "touch d/new && rm d/x"])
out.append(sorted(os.listdir(fd)))
os.close(fd)
with open("out", "w") as f:
    f.write(repr(out))
"""


@MOUNTS
def test_a_directory_descriptor_lists_again_what_another_process_changed(differential, mount):
    differential(
        [["mkdir", "d"], ["put", "d/x", "x"], ["put", "d/y", "y"], ["put", "ls.py", DIR_LIST, 0o755],
         ["run", "ls.py"], ["cat", "out"]],
        mount=mount)


@MOUNTS
def test_processes_racing_for_one_name(differential, mount):
    """O_EXCL creations, renames of one file and mkdir -p of one tree, from several
    processes at once: exactly one wins each, as on a local filesystem."""
    race = ("for i in 1 2 3 4 5 6; do (set -C; echo $i > lock) 2>/dev/null && echo won >> wins & done; wait\n"
            "for i in 1 2 3 4; do mv src dst$i 2>/dev/null && echo moved >> moves & done; wait\n"
            "for i in 1 2 3 4; do mkdir -p t/a/b/c$i || echo failed >> mkdirs & done; wait\n")
    differential(
        [["put", "src", "payload"], sh("race.sh", race), ["run", "race.sh"], ["cat", "wins"], ["cat", "moves"],
         ["exists", "mkdirs"], ["listdir", "t/a/b"], ["exists", "src"]],
        mount=mount)


@MOUNTS
def test_children_reading_through_the_descriptor_of_their_parent(differential, cache_dir, mount):
    """`exec 3<f` and children reading at its shared position, of a file not local yet."""
    differential(
        [["put", "f", FOUR_MIB]],
        not_local(cache_dir),
        [sh("r.sh", "exec 3<f; dd bs=1 count=5 status=none <&3 > a; dd bs=1M skip=2 count=1 status=none <&3 > /dev/null;"
                    " dd bs=1 count=5 status=none <&3 > b; (dd bs=1 count=3 status=none <&3 > c) & wait;"
                    " dd bs=1 count=3 status=none <&3 > d\n"),
         ["run", "r.sh"], ["cat", "a"], ["cat", "b"], ["cat", "c"], ["cat", "d"]],
        mount=mount)


THREADS = """import os, sys, threading
fd = os.open(sys.argv[1], os.O_RDWR)
stop = threading.Event()
def writer(k):
    for i in range(200):
        os.pwrite(fd, bytes([65 + k]) * 512, (2 << 20) + (4 * i + k) * 512)
def syncer():
    while not stop.is_set():
        os.fsync(fd)
ts = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
s = threading.Thread(target=syncer)
s.start()
for t in ts: t.start()
for t in ts: t.join()
stop.set(); s.join()
os.close(fd)
"""


def test_threads_writing_while_another_thread_fsyncs(objmount, s3, bucket, tmp_path):
    import sys
    old = bytes(range(256)) * (4 << 12)
    s3.put_object(Bucket=bucket, Key="f", Body=old)
    script = tmp_path / "threads.py"
    script.write_text(THREADS)
    run = objmount([sys.executable, str(script), f"/objmount/s3/{bucket}/f"])
    assert run.returncode == 0, run.stderr
    got = s3.get_object(Bucket=bucket, Key="f")["Body"].read()
    want = bytearray(old)
    for i in range(200):
        for k in range(3):
            at = (2 << 20) + (4 * i + k) * 512
            want[at:at + 512] = bytes([65 + k]) * 512
    assert got == bytes(want)


@MOUNTS
@pytest.mark.parametrize("change", [
    [sh("c.sh", "mv f g\n")],
    [sh("c.sh", "rm f\n")],
    [sh("c.sh", "ln f g\n")],
    [sh("c.sh", "chmod 600 f && touch -d @1000000000 f\n")],
], ids=["renamed", "removed", "linked", "attrs"])
def test_a_new_large_file_changed_by_name_while_written(differential, mount, change):
    differential(
        [*change, ["open", "f", "WRONLY|CREAT|TRUNC", 0o644, "w"], ["write", "w", TWENTY_MIB],
         ["run", "c.sh"], ["write", "w", TWENTY_MIB], ["fstat", "w", False], ["close", "w"],
         ["listdir"], ["tree"]],
        # file:// keeps no hard-link groups past the run (README "Hard links")
        [["listdir"], ["tree"]] if mount == "bucket" else [["listdir"], ["cat", "f"], ["exists", "g"]],
        mount=mount)


@MOUNTS
def test_a_working_directory_removed_and_made_again_by_another_process(differential, mount):
    """The process stays in the removed directory: the new one's files are not its own,
    nothing it makes lands there, getcwd fails, '..' still leads to the parent."""
    differential(
        [["mkdir", "d"], ["put", "d/x", "in d"], sh("re.sh", "rm -r d && mkdir d && echo new > d/y\n"),
         sh("cwd.sh", "cd d || exit 3\n../re.sh\n"
                      "cat y > ../read 2>/dev/null; echo $? >> ../read; (echo z > z) 2>/dev/null; echo $? > ../made;"
                      " /bin/pwd > ../pwd 2>/dev/null; echo $? >> ../pwd; cat ../d/y > ../up\n"),
         ["run", "cwd.sh"], ["cat", "read"], ["cat", "made"], ["cat", "pwd"], ["cat", "up"], ["listdir", "d"]],
        mount=mount)


@pytest.mark.xfail(strict=True, reason="'.' of a removed working directory is ENOENT under objmount; locally it "
                   "opens (a listing of nothing): answering it from the stand-in directory would let chmod and "
                   "the like change objmount's own directory")
@MOUNTS
def test_ls_in_a_removed_working_directory(differential, mount):
    differential(
        [["mkdir", "d"], sh("cwd.sh", "cd d || exit 3\nrmdir ../d\nls > ../listed 2>/dev/null; echo $? >> ../listed\n"),
         ["run", "cwd.sh"], ["cat", "listed"]],
        mount=mount)


@MOUNTS
def test_a_program_running_while_another_process_writes_it(differential, mount):
    """ETXTBSY both ways: executing a file open for writing, and opening a running
    program's file for writing."""
    differential(
        [["put", "prog", "#!/bin/sh\nsleep 0.5\n", 0o755],
         sh("w.sh", "./prog & sleep 0.2; (exec 3>>prog) 2>/dev/null; echo $? > open-while-running; wait\n"
                    "exec 3>>prog; ./prog 2>/dev/null; echo $? > run-while-open\n"),
         ["run", "w.sh"], ["cat", "open-while-running"], ["cat", "run-while-open"]],
        mount=mount)


@MOUNTS
def test_processes_creating_one_new_file_at_once(differential, mount):
    """Several processes open a name that does not exist yet with O_CREAT and write at
    their own offsets: one file gets every write."""
    body = "".join(f"printf {c}{c}{c}{c} | dd of=n bs=1 seek={4 * i} conv=notrunc status=none &\n"
                   for i, c in enumerate("ABCDEFGH"))
    differential(
        [sh("mk.sh", body + "wait\n"), ["run", "mk.sh"], ["cat", "n"], ["stat", "n", False]],
        [["cat", "n"]],
        mount=mount)


@MOUNTS
def test_append_set_and_cleared_with_fcntl(differential, cache_dir, mount):
    """O_APPEND turned on (F_SETFL) after the open: the writes land at the end, and the
    bytes at the position stay what they were (they were recorded as written there, never
    fetched, and went up as zeros); turned off, writes land at the position again."""
    differential(
        [["put", "f", TWENTY_MIB]],
        not_local(cache_dir),
        [["open", "f", "RDWR", 0o644, "a"], ["lseek", "a", 5_000_000],
         ["syscall", 72, {"fdnum": "a"}, 4, 1024 | 2], ["write", "a", "END"],
         ["syscall", 72, {"fdnum": "a"}, 4, 2], ["lseek", "a", 6_000_000], ["write", "a", "MID"],
         ["pread", "a", 8, 5_000_000], ["pread", "a", 8, 6_000_000], ["fstat", "a", False], ["close", "a"]],
        not_local(cache_dir),
        [["open", "f", "RDONLY", 0o644, "r"], ["pread", "r", 8, 5_000_000], ["pread", "r", 8, 6_000_000],
         ["pread", "r", 8, 20_971_517], ["fstat", "r", False], ["close", "r"]],
        mount=mount)


# What the program given a descriptor does with it: reads near the start and far past what
# the open fetched, writes, and says what it read.
CHILD = ("import os; fd = %d; head = os.pread(fd, 8, 0); far = os.pread(fd, 8, 3_000_000); "
         "os.pwrite(fd, b'CHILD', 10); open('child-saw', 'wb').write(head + b'|' + far)")


def _descriptor_elsewhere(differential, cache_dir, mount, name: str, script: str, saw: str) -> None:
    """Run `script` (a 4 MiB file "f" given to, or taken by, another program, which writes
    `saw`) in a run with nothing of "f" local; then what it read, and what it wrote, as a
    later reader and a later run see it."""
    differential(
        [["put", "f", FOUR_MIB]],
        not_local(cache_dir),
        [["put", name, script, 0o755], ["run", name], ["cat", saw],
         ["open", "f", "RDONLY", 0o644, "r"], ["pread", "r", 8, 8], ["close", "r"]],
        not_local(cache_dir),
        [["open", "f", "RDONLY", 0o644, "r"], ["pread", "r", 8, 8], ["close", "r"]],
        mount=mount)


PASS_FDS = """#!/usr/bin/env python3
import os, subprocess, sys
os.chdir(os.path.dirname(os.path.abspath(sys.argv[0])))
fd = os.open("f", os.O_RDWR)   # close-on-exec, as Python opens everything
child = CHILD % fd
subprocess.run([sys.executable, "-c", child], pass_fds=[fd], check=True)
os.close(fd)
"""


@MOUNTS
def test_a_descriptor_passed_to_a_subprocess_made_inheritable(differential, cache_dir, mount):
    """subprocess's pass_fds clears close-on-exec in the child with ioctl(FIONCLEX): the
    program it runs reads ranges never fetched and writes through the descriptor."""
    _descriptor_elsewhere(differential, cache_dir, mount, "pass.py", PASS_FDS, "child-saw")


INHERIT = """#!/usr/bin/env python3
import os, sys
os.chdir(os.path.dirname(os.path.abspath(sys.argv[0])))
fd = os.open("f", os.O_RDWR)   # close-on-exec, as Python opens everything
os.set_inheritable(fd, True)   # ioctl(FIONCLEX)
child = CHILD % fd
os.execv(sys.executable, [sys.executable, "-c", child])
"""


@MOUNTS
def test_a_descriptor_made_inheritable_with_ioctl_and_kept_across_exec(differential, cache_dir, mount):
    """ioctl(FIONCLEX) (Python's os.set_inheritable, libuv) clears close-on-exec: the
    program the process execs reads ranges never fetched and writes through it."""
    _descriptor_elsewhere(differential, cache_dir, mount, "inherit.py", INHERIT, "child-saw")


GETFD = """#!/usr/bin/env python3
import ctypes, os, sys
os.chdir(os.path.dirname(os.path.abspath(sys.argv[0])))
up_r, up_w = os.pipe()
down_r, down_w = os.pipe()
pid = os.fork()
if pid == 0:
    fd = os.open("f", os.O_RDWR)
    os.write(up_w, str(fd).encode())
    os.read(down_r, 1)   # until the parent has its copy
    os.close(fd)
    os._exit(0)
child_fd = int(os.read(up_r, 16))
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(pid)
fd = libc.syscall(438, pidfd, child_fd, 0)
os.write(down_w, b"x")
os.waitpid(pid, 0)
head, far = os.pread(fd, 8, 0), os.pread(fd, 8, 3_000_000)
os.pwrite(fd, b"TAKEN", 10)
open("saw", "wb").write(head + b"|" + far)
os.close(fd)
"""


@MOUNTS
def test_a_descriptor_taken_from_another_process_with_pidfd_getfd(differential, cache_dir, mount):
    _descriptor_elsewhere(differential, cache_dir, mount, "getfd.py", GETFD, "saw")
