"""Special files (fifos, sockets, device nodes) and user.* extended attributes on virtual
paths: compared with a local directory, and stored as s3fs-fuse stores them."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import sys
import textwrap
import urllib.parse

import pytest

V = "/objmount/s3"
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="device nodes need root")


def _s3fs_xattr(attrs: dict[str, bytes]) -> str:
    """The `xattr` metadata value s3fs-fuse writes (string_util.cpp raw_build_xattrs, then
    urlEncodePath): names sorted, values base64."""
    body = ",".join(f'"{k}":"{base64.b64encode(v).decode()}"' for k, v in sorted(attrs.items()))
    return urllib.parse.quote("{" + body + "}", safe="-_.~/")


def test_xattr_codec_matches_s3fs():
    from vfs import xattrs as vx
    # s3fs's own unit test (test_string_util.cpp test_parse_xattrs), URL-encoded as stored.
    assert urllib.parse.unquote(vx.encode({"foo": b"bar", "1234": b"5678"})) == '{"1234":"NTY3OA==","foo":"YmFy"}'
    assert vx.encode({"user.a": b"v"}) == "%7B%22user.a%22%3A%22dg%3D%3D%22%7D"
    assert vx.decode(vx.encode({"user.x": b"\0\xff", "user.y": b""})) == {"user.x": b"\0\xff", "user.y": b""}
    assert vx.decode("garbage") == {} and vx.decode(None) == {}


@pytest.mark.not_rclone("a dir/ marker above keys is refused (InternalError)")
def test_xattrs_like_a_local_directory(differential, s3, bucket):
    d = differential(
        [["put", "f", "data"], ["mkdir", "d"], ["symlink", "f", "l"],
         ["setxattr", "f", "user.a", "1"],
         ["setxattr", "f", "user.b", {"hex": "00ff10"}],
         ["setxattr", "f", "user.empty", ""],
         ["getxattr", "f", "user.a"], ["getxattr", "f", "user.b"], ["getxattr", "f", "user.empty"],
         ["listxattr", "f"],
         ["getxattr", "f", "user.missing"],
         ["setxattr", "f", "user.a", "2", os.XATTR_CREATE],
         ["setxattr", "f", "user.new", "2", os.XATTR_REPLACE],
         ["setxattr", "f", "user.a", "3", os.XATTR_REPLACE],
         ["setxattr", "f", "user.c", "3", os.XATTR_CREATE],
         ["setxattr", "f", "user.bad", "3", 4],
         ["setxattr", "f", "user." + "n" * 251, "x"],
         ["setxattr", "f", "user.", "x"],
         ["setxattr", "f", "system.foo", "x"],
         ["setxattr", "f", "nonsense.foo", "x"],
         ["getxattr", "f", "nonsense.foo"],
         ["getxattr", "f", "security.selinux"],
         ["removexattr", "f", "user.c"], ["removexattr", "f", "user.c"],
         ["rawxattr", "f", "user.a", 0], ["rawxattr", "f", "user.a", 1], ["rawxattr", "f", "user.a", 8],
         ["rawxattr", "f", None, 0], ["rawxattr", "f", None, 3],
         ["setxattr", "d", "user.dir", "on a directory"], ["getxattr", "d", "user.dir"],
         ["getxattr", "l", "user.a"],                       # follows the link
         ["setxattr", "l", "user.link", "x", 0, False],     # the link itself: EPERM
         ["getxattr", "l", "user.a", False], ["listxattr", "l", False],
         ["getxattr", "nope", "user.a"], ["setxattr", "nope", "user.a", "x"],
         ["open", "f", "RDONLY", 0o644, "a"], ["fxattrs", "a"], ["close", "a"]],
        # a fresh run reads them back from the bucket
        [["listxattr", "f"], ["getxattr", "f", "user.a"], ["getxattr", "f", "user.b"],
         ["listxattr", "d"], ["getxattr", "d", "user.dir"],
         ["chmod", "f", 0o600], ["listxattr", "f"],                        # chmod keeps them
         ["open", "f", "WRONLY|APPEND", 0o644, "w"], ["write", "w", "more"], ["close", "w"], ["getxattr", "f", "user.a"],        # so does a write
         ["rename", "f", "g"], ["getxattr", "g", "user.a"]],
        [["listxattr", "g"], ["getxattr", "g", "user.b"], ["cat", "g"]],
    )
    head = s3.head_object(Bucket=bucket, Key="g")
    assert head["Metadata"]["xattr"] == _s3fs_xattr({"user.a": b"3", "user.b": b"\0\xff\x10", "user.empty": b""})
    marker = s3.head_object(Bucket=bucket, Key="d/")
    assert marker["Metadata"]["xattr"] == _s3fs_xattr({"user.dir": b"on a directory"})
    assert d is not None


def test_xattrs_written_by_s3fs_are_read(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="obj", Body=b"x",
                  Metadata={"mode": "33188", "xattr": _s3fs_xattr({"user.from": b"s3fs", "user.z": b"1"})})
    run = objmount(f"getfattr -d {V}/{bucket}/obj; setfattr -x user.z {V}/{bucket}/obj; "
                   f"setfattr -n user.more -v 2 {V}/{bucket}/obj; getfattr -d {V}/{bucket}/obj")
    assert run.returncode == 0, run.stderr
    assert run.text.count('user.from="s3fs"') == 2 and 'user.z="1"' in run.text and 'user.more="2"' in run.text
    head = s3.head_object(Bucket=bucket, Key="obj")
    assert head["Metadata"]["xattr"] == _s3fs_xattr({"user.from": b"s3fs", "user.more": b"2"})
    assert head["Metadata"]["mode"] == "33188"


@pytest.mark.not_rclone("a dir/ marker above keys is refused (InternalError)")
def test_xattr_on_a_directory_without_marker_makes_one(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="implied/x", Body=b"x")
    run = objmount(f"setfattr -n user.d -v 1 {V}/{bucket}/implied && getfattr -n user.d --only-values {V}/{bucket}/implied")
    assert run.returncode == 0, run.stderr
    assert run.text == "1"
    marker = s3.head_object(Bucket=bucket, Key="implied/")
    assert marker["Metadata"]["xattr"] == _s3fs_xattr({"user.d": b"1"})
    assert stat.S_ISDIR(int(marker["Metadata"]["mode"])) and marker["ContentType"] == "application/x-directory"


def test_ls_asks_no_object_for_xattrs(objmount, s3, bucket):
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"dir/f{i}", Body=b"x")
    run = objmount(f"ls -l {V}/{bucket}/dir >/dev/null")
    assert run.returncode == 0, run.stderr
    # stat's truth costs one HEAD per listed file (made in parallel, see README); the
    # xattr reads of ls -l add none
    assert run.requests("HeadObject") <= 5 + 2


def test_special_files_like_a_local_directory(differential, s3, bucket):
    differential(
        [["mkfifo", "p", 0o640], ["nodestat", "p"], ["mkfifo", "p"],
         ["mknod", "s", stat.S_IFSOCK | 0o644], ["nodestat", "s"],
         ["mknod", "r", stat.S_IFREG | 0o600], ["nodestat", "r"],
         ["mknod", "bad", stat.S_IFDIR | 0o755],
         ["open", "s", "RDONLY", 0o644, "a"],
         ["setxattr", "p", "user.a", "x"], ["getxattr", "p", "user.a"], ["listxattr", "p"],
         ["listdir", "."]],
        [["nodestat", "p"], ["nodestat", "s"], ["nodestat", "r"], ["tree"], ["unlink", "p"], ["listdir", "."]],
    )
    head = s3.head_object(Bucket=bucket, Key="s")
    assert stat.S_ISSOCK(int(head["Metadata"]["mode"])) and head["ContentLength"] == 0


@ROOT_ONLY
def test_device_nodes_as_root(differential, s3, bucket):
    differential(
        [["mknod", "null", stat.S_IFCHR | 0o666, os.makedev(1, 3)], ["nodestat", "null"],
         ["mknod", "blk", stat.S_IFBLK | 0o600, os.makedev(259, 70000)], ["nodestat", "blk"]],
        [["nodestat", "null"], ["nodestat", "blk"]],
    )
    head = s3.head_object(Bucket=bucket, Key="null")
    assert stat.S_ISCHR(int(head["Metadata"]["mode"])) and head["Metadata"]["rdev"] == str(os.makedev(1, 3))


@ROOT_ONLY
def test_device_node_does_not_open(objmount, bucket):
    run = objmount(f"mknod {V}/{bucket}/zero c 1 5 && stat -c '%F %t:%T' {V}/{bucket}/zero && "
                   f"head -c 4 {V}/{bucket}/zero; echo rc=$?")
    assert run.text.splitlines() == ["character special file 1:5", "rc=1"], run.stderr  # statx's rdev
    assert "Permission denied" in run.stderr


def test_fifo_between_two_processes(objmount, s3, bucket):
    d = f"{V}/{bucket}"
    run = objmount(f"cd {d} && mkfifo p && (cat p > out &) && echo hi > p && wait && sleep 0.2; "
                   f"while [ ! -s out ]; do sleep 0.1; done; cat out; stat -c %F p; ls -l p | cut -c1")
    assert run.returncode == 0, run.stderr
    assert run.text.split("\n")[:3] == ["hi", "fifo", "p"]
    # a later run opens it again as a fifo (a new one: nothing is kept in it)
    run = objmount(f"cd {d} && (cat p > out2 &) && printf again > p; wait; while [ ! -s out2 ]; do sleep 0.1; done; "
                   f"cat out2")
    assert run.returncode == 0, run.stderr
    assert run.text == "again"
    assert s3.get_object(Bucket=bucket, Key="p")["Body"].read() == b""


SERVER_CLIENT = textwrap.dedent("""
    import os, socket, sys, stat
    path = sys.argv[1]
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    pid = os.fork()
    if pid == 0:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)
        c.sendall(b"ping")
        c.close()
        os._exit(0)
    conn, _ = srv.accept()
    data = conn.recv(100)
    os.waitpid(pid, 0)
    again = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        again.bind(path)
    except OSError as e:
        print("rebind", e.errno)
    print(data.decode(), stat.S_ISSOCK(os.lstat(path).st_mode), os.path.basename(path) in os.listdir(os.path.dirname(path) or "."))
""")


def test_unix_socket_at_a_virtual_path(objmount, s3, bucket, tmp_path):
    script = tmp_path / "sc.py"
    script.write_text(SERVER_CLIENT)
    run = objmount([sys.executable, str(script), f"{V}/{bucket}/sock"])
    assert run.returncode == 0, run.stderr
    assert run.text.split("\n")[:2] == ["rebind 98", "ping True True"]  # EADDRINUSE
    head = s3.head_object(Bucket=bucket, Key="sock")
    assert stat.S_ISSOCK(int(head["Metadata"]["mode"]))
    # a relative path in a virtual working directory
    run = objmount(f"cd {V}/{bucket} && {sys.executable} {script} rel.sock")
    assert run.returncode == 0, run.stderr
    assert run.text.split("\n")[:2] == ["rebind 98", "ping True True"]
    assert stat.S_ISSOCK(int(s3.head_object(Bucket=bucket, Key="rel.sock")["Metadata"]["mode"]))
    # a later run finds no listener behind the object: ECONNREFUSED, as for a stale socket
    run = objmount([sys.executable, "-c", "import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
                    "try: s.connect(sys.argv[1])\nexcept OSError as e: print(e.errno)", f"{V}/{bucket}/sock"])
    assert run.text.strip() == "111", run.stderr
    # inet sockets are untouched
    run = objmount([sys.executable, "-c", "import socket\ns=socket.socket()\ns.bind(('127.0.0.1', 0))\n"
                    "s.listen()\nc=socket.create_connection(s.getsockname())\nprint('ok')"])
    assert run.text.strip() == "ok", run.stderr


def test_xattrs_on_a_file_being_written(differential, s3, bucket):
    differential(
        [["open", "w", "WRONLY|CREAT|TRUNC", 0o644, "w"], ["write", "w", "first"],
         ["setxattr", "w", "user.during", "write"], ["getxattr", "w", "user.during"],
         ["write", "w", " second"], ["listxattr", "w"], ["close", "w"],
         ["getxattr", "w", "user.during"]],
        [["getxattr", "w", "user.during"], ["cat", "w"],
         ["open", "w", "WRONLY|TRUNC", 0o644, "w"], ["write", "w", "rewritten"], ["close", "w"],
         ["listxattr", "w"]],
        [["listxattr", "w"], ["cat", "w"]],
    )
    assert s3.head_object(Bucket=bucket, Key="w")["Metadata"]["xattr"] == _s3fs_xattr({"user.during": b"write"})


def test_cp_preserves_xattrs_both_ways(objmount, s3, bucket, tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"payload")
    os.setxattr(src, "user.origin", b"local")
    back = tmp_path / "back"
    run = objmount(f"cp -a {src} {V}/{bucket}/copy && cp -a {V}/{bucket}/copy {back}")
    assert run.returncode == 0, run.stderr
    assert s3.head_object(Bucket=bucket, Key="copy")["Metadata"]["xattr"] == _s3fs_xattr({"user.origin": b"local"})
    assert os.getxattr(back, "user.origin") == b"local" and back.read_bytes() == b"payload"


def test_setxattr_on_listed_special_objects(objmount, s3, bucket):
    """A listing shows a symlink or fifo object as a file: setxattr asks the bucket first."""
    s3.put_object(Bucket=bucket, Key="dir/fifo", Body=b"", Metadata={"mode": str(stat.S_IFIFO | 0o644)})
    s3.put_object(Bucket=bucket, Key="dir/link", Body=b"target", Metadata={"mode": str(stat.S_IFLNK | 0o777)})
    run = objmount(f"cd {V}/{bucket}/dir && ls >/dev/null && setfattr -n user.a -v 1 fifo; "
                   f"setfattr -h -n user.a -v 1 link; echo done")
    assert run.text.strip() == "done"
    assert run.stderr.count("Operation not permitted") == 2, run.stderr
    assert "xattr" not in s3.head_object(Bucket=bucket, Key="dir/fifo")["Metadata"]


def test_names_s3fs_cannot_keep_are_refused(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="f", Body=b"x")
    code = ("import os, sys\nfor n in ['user.a,b', 'user.q\"', 'user.b\\\\s', 'user.ok', 'user.\\u00e9t\\u00e9']:\n"
            "    try: os.setxattr(sys.argv[1], n, b'v'); print('ok')\n"
            "    except OSError as e: print(e.errno)\n"
            "print(sorted(os.listxattr(sys.argv[1])))")
    run = objmount([sys.executable, "-c", code, f"{V}/{bucket}/f"])
    assert run.text.splitlines() == ["22", "22", "22", "ok", "ok", "['user.ok', 'user.été']"], run.stderr


@pytest.mark.parametrize("store", ["bucket", "file"])
def test_ls_l_of_a_mount_root_is_quiet_and_its_xattrs_read_as_none(objmount, bucket, tmp_path, store):
    if store == "file":
        (tmp_path / "st").mkdir()
        (tmp_path / "st" / "f").write_bytes(b"x")
        url = f"file://{tmp_path / 'st'}"
    else:
        url = f"s3://{bucket}"
    script = ("import os\nfor p in ('/m', '/m/f'):\n"
              "    print(os.listxattr(p), os.listxattr(p, follow_symlinks=False))")
    run = objmount(f"echo x > /m/f; ls -l /m > /dev/null && python3 -c \"{script}\"", "-m", f"/m={url}")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""   # before: "ls: /m: No such file or directory" (llistxattr of the root)
    assert run.text == "[] []\n[] []\n"


def test_a_virtual_file_read_through_its_descriptors_names(objmount, tmp_path):
    """`cmd /dev/stdin < file`, //proc/self/fd/N, /dev/./fd/N: the object's bytes (the
    supervisor reopens the object), never the bare cache file, with and without the fast
    path and the quick loop."""
    store = tmp_path / "store"
    store.mkdir()
    data = os.urandom(3 << 20)   # past the open's first window: the cache file starts sparse
    (store / "big").write_bytes(data)
    want = hashlib.md5(data).hexdigest()
    job = ("exec 3</data/big; exec 0</data/big; md5sum /dev/stdin; cat //proc/self/fd/3 | md5sum; "
           "cat /dev/./fd/3 | md5sum; md5sum /proc/self/fd/3")
    for options in ((), ("--no-fast-path",)):
        for quick in ("1", "0"):
            cache = tmp_path / f"cache-{len(options)}-{quick}"   # a cold cache: the file is sparse
            run = objmount(["sh", "-c", job], "--cache-dir", str(cache), "-m", f"/data=file://{store}", *options,
                           env={"OBJMOUNT_QUICK_LOOP": quick})
            assert run.returncode == 0, run.stderr
            assert [line.split()[0] for line in run.text.splitlines()] == [want] * 4, (options, quick)
