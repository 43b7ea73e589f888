"""Real programs writing into the bucket; every result checked with boto3 or a fresh run.
Each runs on a bucket mount and on a prefix mount (`mounted`)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sqlite3
import stat
import tarfile

import pytest

MiB = 1024 * 1024


def test_shell_redirects_create_and_append(mounted):
    run = mounted.run(f"echo one > {mounted.root}/f.txt && echo two >> {mounted.root}/f.txt && "
                   f"cat {mounted.root}/f.txt")
    assert run.returncode == 0, run.stderr
    assert run.text == "one\ntwo\n"
    assert mounted.get("f.txt") == b"one\ntwo\n"
    assert stat.S_ISREG(int(mounted.meta("f.txt")["mode"]))


def test_cp_and_cp_a_copy_bytes_and_attributes(mounted, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    data = os.urandom(3 * MiB + 17)
    (src / "big.bin").write_bytes(data)
    (src / "sub" / "x.sh").write_text("#!/bin/sh\necho x\n")
    (src / "sub" / "x.sh").chmod(0o750)
    os.utime(src / "big.bin", (1_600_000_000, 1_600_000_000))
    run = mounted.run(f"cp {src}/big.bin {mounted.root}/plain.bin && cp -a {src} {mounted.root}/tree")
    assert run.returncode == 0, run.stderr
    assert mounted.get("plain.bin") == data
    assert mounted.get("tree/big.bin") == data
    assert int(mounted.meta("tree/sub/x.sh")["mode"]) & 0o777 == 0o750
    assert float(mounted.meta("tree/big.bin")["mtime"]) == 1_600_000_000
    fresh = mounted.run(["stat", "-c", "%A", f"{mounted.root}/tree/sub/x.sh"])
    assert fresh.text == "-rwxr-x---\n"


def test_mkdir_p_touch_chmod_ln_s_mv_rm_r(mounted):
    b = f"{mounted.root}"
    run = mounted.run(f"mkdir -p {b}/a/b/c && touch -d '2020-01-02 03:04:05 UTC' {b}/a/b/c/t && chmod 600 {b}/a/b/c/t "
                   f"&& ln -s b/c/t {b}/a/link && mv {b}/a/b {b}/a/moved && cat {b}/a/moved/c/t && readlink {b}/a/link")
    assert run.returncode == 0, run.stderr
    assert run.text == "b/c/t\n"
    assert "a/moved/c/t" in mounted.keys()
    assert not any(k.startswith("a/b/") for k in mounted.keys())
    m = mounted.meta("a/moved/c/t")
    assert int(m["mode"]) & 0o777 == 0o600 and float(m["mtime"]) == 1577934245
    assert mounted.get("a/link") == b"b/c/t" and int(mounted.meta("a/link")["mode"]) == 0o120777
    fresh = mounted.run(["stat", "-c", "%a %Y %F", f"{b}/a/moved/c/t"])
    assert fresh.text == "600 1577934245 regular empty file\n"
    gone = mounted.run(f"rm -r {b}/a && ls {b}")
    assert gone.returncode == 0, gone.stderr
    assert mounted.keys() == []


def test_rmdir_of_a_non_empty_directory_is_enotempty(mounted):
    mounted.put("d/f", b"x")
    run = mounted.run(["python3", "-c", f"import os\ntry: os.rmdir('{mounted.root}/d')\nexcept OSError as e: print(e.errno)"])
    assert run.text.strip() == "39"


def test_rename_noreplace_is_honoured(mounted):
    mounted.put("a", b"a")
    mounted.put("b", b"b")
    script = f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
r = libc.renameat2(-100, b'{mounted.root}/a', -100, b'{mounted.root}/b', 1)
print(r, ctypes.get_errno())
"""
    run = mounted.run(["python3", "-c", script])
    assert run.text.split() == ["-1", "17"]
    assert mounted.get("b") == b"b"


def test_tar_x_into_the_mount(mounted, tmp_path):
    archive = tmp_path / "a.tar"
    files = {f"proj/src/m{i}.c": os.urandom(100 + i) for i in range(30)}
    with tarfile.open(archive, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o640, 1_500_000_000
            tar.addfile(info, io.BytesIO(data))
    run = mounted.run(["tar", "xf", str(archive), "-C", f"{mounted.root}"])
    assert run.returncode == 0, run.stderr
    for name, data in files.items():
        assert mounted.get(name) == data
    assert float(mounted.meta("proj/src/m0.c")["mtime"]) == 1_500_000_000


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync not installed")
def test_rsync_a_into_the_mount(mounted, tmp_path):
    src = tmp_path / "r"
    (src / "d").mkdir(parents=True)
    (src / "d" / "one").write_bytes(b"1" * 5000)
    (src / "two").write_bytes(b"2")
    run = mounted.run(["rsync", "-a", f"{src}/", f"{mounted.root}/r/"])
    assert run.returncode == 0, run.stderr
    assert mounted.get("r/d/one") == b"1" * 5000 and mounted.get("r/two") == b"2"
    assert not [k for k in mounted.keys() if "/." in k]  # rsync's temporary files are gone


def test_sed_in_place(mounted):
    mounted.put("conf", b"colour=red\nsize=1\n")
    run = mounted.run(["sed", "-i", "s/red/blue/", f"{mounted.root}/conf"])
    assert run.returncode == 0, run.stderr
    assert mounted.get("conf") == b"colour=blue\nsize=1\n"


def test_python_writes_seeks_and_reads_back(mounted):
    script = f"""
p = '{mounted.root}/py.bin'
with open(p, 'wb') as f:
    f.write(b'a' * 10000); f.seek(5000); f.write(b'XYZ'); f.seek(20000); f.write(b'end')
with open(p, 'r+b') as f:
    f.seek(1); f.write(b'b'); f.seek(0); print(f.read(4))
"""
    run = mounted.run(["python3", "-c", script])
    assert run.returncode == 0, run.stderr
    expected = bytearray(b"a" * 10000 + bytes(10000) + b"end")
    expected[5000:5003] = b"XYZ"
    expected[1:2] = b"b"
    assert mounted.get("py.bin") == bytes(expected)


def test_git_init_add_commit_status(mounted):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    d = f"{mounted.root}/repo"
    run = mounted.run(f"mkdir {d} && cd {d} && git init -q && echo hello > README && git add README && "
                   f"git -c user.email=t@e -c user.name=T commit -qm first && git status --porcelain && git log --oneline | wc -l",
                   timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.text == "1\n"
    assert "repo/.git/HEAD" in mounted.keys()
    again = mounted.run(f"cd {d} && git log --format=%s && git status --porcelain", timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.text == "first\n"


def test_sqlite_creates_and_updates_a_database(mounted, tmp_path):
    script = f"""
import sqlite3
db = sqlite3.connect('{mounted.root}/app.db')
db.execute('create table t (k integer primary key, v text)')
db.executemany('insert into t (v) values (?)', [(str(i),) for i in range(500)])
db.commit()
db.execute("update t set v = 'changed' where k = 7"); db.commit()
db.close()
"""
    run = mounted.run(["python3", "-c", script])
    assert run.returncode == 0, run.stderr
    local = tmp_path / "app.db"
    local.write_bytes(mounted.get("app.db"))
    con = sqlite3.connect(local)
    assert con.execute("select count(*), (select v from t where k = 7) from t").fetchone() == (500, "changed")
    assert not [k for k in mounted.keys() if k.endswith("-journal")]


@pytest.mark.not_rclone("no UploadPartCopy (answers 200 with an empty part)")
def test_appending_to_a_large_object_sends_only_the_changed_part(mounted, tmp_path):
    block = os.urandom(MiB)
    mounted.s3.upload_fileobj(io.BytesIO(block * 256), mounted.bucket, mounted.prefix + "big")
    extra = tmp_path / "extra"
    extra.write_bytes(os.urandom(MiB))
    run = mounted.run(f"cat {extra} >> {mounted.root}/big")
    assert run.returncode == 0, run.stderr
    assert run.stats["vfs"]["bytes_sent"] < 32 * MiB
    assert run.requests("UploadPartCopy") > 0
    body = mounted.get("big")
    assert len(body) == 257 * MiB
    assert hashlib.sha256(body).digest() == hashlib.sha256(block * 256 + extra.read_bytes()).digest()
    one = mounted.run(["python3", "-c", f"f = open('{mounted.root}/big', 'r+b'); f.seek(100 * {MiB}); f.write(b'!'); f.close()"])
    assert one.returncode == 0, one.stderr
    assert one.stats["vfs"]["bytes_sent"] < 32 * MiB
    body = mounted.get("big")
    assert body[100 * MiB] == ord("!") and len(body) == 257 * MiB and body[:MiB] == block


def test_hard_links_share_content_and_count_within_a_run(mounted):
    b = f"{mounted.root}"
    run = mounted.run(f"echo v1 > {b}/orig && ln {b}/orig {b}/alias && stat -c %h {b}/orig {b}/alias && "
                   f"echo v2 > {b}/orig && cat {b}/alias")
    assert run.returncode == 0, run.stderr
    assert run.text == "2\n2\nv2\n"
    assert mounted.get("alias") == b"v2\n" and mounted.get("orig") == b"v2\n"


def test_write_syscalls_from_python(mounted):
    script = f"""
import errno, mmap, os
b = '{mounted.root}'
fd = os.open(b + '/x', os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
try:
    os.open(b + '/x', os.O_RDWR | os.O_CREAT | os.O_EXCL)
except OSError as e:
    print('excl', e.errno)
os.pwritev(fd, [b'abc', b'def'], 10)
os.ftruncate(fd, 8)                      # cuts 'abcdef' away again
os.posix_fallocate(fd, 0, 4096)          # extends with zeros
os.fsync(fd)
print('size', os.fstat(fd).st_size)
m = mmap.mmap(fd, 4096)
m[0:5] = b'MMAP!'; m.flush(); m.close()
os.close(fd)
with open(b + '/c', 'w') as f:           # creat-style truncating open
    f.write('x' * 10)
os.chown(b + '/c', 1234, 5678)
print(open(b + '/x', 'rb').read(6))
"""
    run = mounted.run(["python3", "-c", script])
    assert run.returncode == 0, run.stderr
    assert run.text.splitlines() == ["excl 17", "size 4096", "b'MMAP!\\x00'"]
    body = mounted.get("x")
    assert len(body) == 4096 and body[:5] == b"MMAP!" and body[5:] == bytes(4091)
    assert int(mounted.meta("x")["mode"]) & 0o777 == 0o600
    m = mounted.meta("c")
    assert (m["uid"], m["gid"]) == ("1234", "5678")
    assert mounted.get("c") == b"x" * 10


def test_without_dir_markers_empty_directories_last_for_the_run(mounted):
    b = f"{mounted.root}"
    run = mounted.run(f"mkdir -p {b}/x/y && ls {b}/x && echo f > {b}/x/y/f && cat {b}/x/y/f", "--no-dir-markers")
    assert run.returncode == 0, run.stderr
    assert run.text == "y\nf\n"
    assert mounted.keys() == ["x/y/f"]
    # renamed, an empty one stays this run's (its rename wrote a marker at the new name)
    moved = mounted.run(f"mkdir {b}/e && mv {b}/e {b}/m && ls {b}", "--no-dir-markers")
    assert moved.returncode == 0, moved.stderr
    assert moved.text == "m\nx\n"
    assert mounted.keys() == ["x/y/f"]


def test_shared_mapping_writes_are_uploaded_at_munmap(mounted):
    mounted.put("m", b"." * 8192)
    script = f"""
import mmap, os, boto3
fd = os.open('{mounted.root}/m', os.O_RDWR)
m = mmap.mmap(fd, 8192)
os.close(fd)                      # the mapping outlives the descriptor
m[100:105] = b'HELLO'
m.close()                         # munmap: the object must be in the bucket now
print(boto3.client('s3').get_object(Bucket='{mounted.bucket}', Key='{mounted.prefix}m')['Body'].read()[100:105])
"""
    run = mounted.run(["python3", "-c", script])
    assert run.returncode == 0, run.stderr
    assert run.text.strip() == "b'HELLO'"
