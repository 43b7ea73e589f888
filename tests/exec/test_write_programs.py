"""Real programs writing into the bucket; every result checked with boto3 or a fresh run."""

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


def get(s3, bucket, key) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def keys(s3, bucket) -> list[str]:
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out += [o["Key"] for o in page.get("Contents", [])]
    return sorted(out)


def meta(s3, bucket, key) -> dict:
    return s3.head_object(Bucket=bucket, Key=key)["Metadata"]


def test_shell_redirects_create_and_append(objmount, s3, bucket):
    run = objmount(f"echo one > /objmount/s3/{bucket}/f.txt && echo two >> /objmount/s3/{bucket}/f.txt && "
                   f"cat /objmount/s3/{bucket}/f.txt")
    assert run.returncode == 0, run.stderr
    assert run.text == "one\ntwo\n"
    assert get(s3, bucket, "f.txt") == b"one\ntwo\n"
    assert stat.S_ISREG(int(meta(s3, bucket, "f.txt")["mode"]))


def test_cp_and_cp_a_copy_bytes_and_attributes(objmount, s3, bucket, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    data = os.urandom(3 * MiB + 17)
    (src / "big.bin").write_bytes(data)
    (src / "sub" / "x.sh").write_text("#!/bin/sh\necho x\n")
    (src / "sub" / "x.sh").chmod(0o750)
    os.utime(src / "big.bin", (1_600_000_000, 1_600_000_000))
    run = objmount(f"cp {src}/big.bin /objmount/s3/{bucket}/plain.bin && cp -a {src} /objmount/s3/{bucket}/tree")
    assert run.returncode == 0, run.stderr
    assert get(s3, bucket, "plain.bin") == data
    assert get(s3, bucket, "tree/big.bin") == data
    assert int(meta(s3, bucket, "tree/sub/x.sh")["mode"]) & 0o777 == 0o750
    assert float(meta(s3, bucket, "tree/big.bin")["mtime"]) == 1_600_000_000
    fresh = objmount(["stat", "-c", "%A", f"/objmount/s3/{bucket}/tree/sub/x.sh"])
    assert fresh.text == "-rwxr-x---\n"


def test_mkdir_p_touch_chmod_ln_s_mv_rm_r(objmount, s3, bucket):
    b = f"/objmount/s3/{bucket}"
    run = objmount(f"mkdir -p {b}/a/b/c && touch -d '2020-01-02 03:04:05 UTC' {b}/a/b/c/t && chmod 600 {b}/a/b/c/t "
                   f"&& ln -s b/c/t {b}/a/link && mv {b}/a/b {b}/a/moved && cat {b}/a/moved/c/t && readlink {b}/a/link")
    assert run.returncode == 0, run.stderr
    assert run.text == "b/c/t\n"
    assert "a/moved/c/t" in keys(s3, bucket)
    assert not any(k.startswith("a/b/") for k in keys(s3, bucket))
    m = meta(s3, bucket, "a/moved/c/t")
    assert int(m["mode"]) & 0o777 == 0o600 and float(m["mtime"]) == 1577934245
    assert get(s3, bucket, "a/link") == b"b/c/t" and int(meta(s3, bucket, "a/link")["mode"]) == 0o120777
    fresh = objmount(["stat", "-c", "%a %Y %F", f"{b}/a/moved/c/t"])
    assert fresh.text == "600 1577934245 regular empty file\n"
    gone = objmount(f"rm -r {b}/a && ls {b}")
    assert gone.returncode == 0, gone.stderr
    assert keys(s3, bucket) == []


def test_rmdir_of_a_non_empty_directory_is_enotempty(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="d/f", Body=b"x")
    run = objmount(["python3", "-c", f"import os\ntry: os.rmdir('/objmount/s3/{bucket}/d')\nexcept OSError as e: print(e.errno)"])
    assert run.text.strip() == "39"


def test_rename_noreplace_is_honoured(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    script = f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
r = libc.renameat2(-100, b'/objmount/s3/{bucket}/a', -100, b'/objmount/s3/{bucket}/b', 1)
print(r, ctypes.get_errno())
"""
    run = objmount(["python3", "-c", script])
    assert run.text.split() == ["-1", "17"]
    assert get(s3, bucket, "b") == b"b"


def test_tar_x_into_the_mount(objmount, s3, bucket, tmp_path):
    archive = tmp_path / "a.tar"
    files = {f"proj/src/m{i}.c": os.urandom(100 + i) for i in range(30)}
    with tarfile.open(archive, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o640, 1_500_000_000
            tar.addfile(info, io.BytesIO(data))
    run = objmount(["tar", "xf", str(archive), "-C", f"/objmount/s3/{bucket}"])
    assert run.returncode == 0, run.stderr
    for name, data in files.items():
        assert get(s3, bucket, name) == data
    assert float(meta(s3, bucket, "proj/src/m0.c")["mtime"]) == 1_500_000_000


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync not installed")
def test_rsync_a_into_the_mount(objmount, s3, bucket, tmp_path):
    src = tmp_path / "r"
    (src / "d").mkdir(parents=True)
    (src / "d" / "one").write_bytes(b"1" * 5000)
    (src / "two").write_bytes(b"2")
    run = objmount(["rsync", "-a", f"{src}/", f"/objmount/s3/{bucket}/r/"])
    assert run.returncode == 0, run.stderr
    assert get(s3, bucket, "r/d/one") == b"1" * 5000 and get(s3, bucket, "r/two") == b"2"
    assert not [k for k in keys(s3, bucket) if "/." in k]  # rsync's temporary files are gone


def test_sed_in_place(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="conf", Body=b"colour=red\nsize=1\n")
    run = objmount(["sed", "-i", "s/red/blue/", f"/objmount/s3/{bucket}/conf"])
    assert run.returncode == 0, run.stderr
    assert get(s3, bucket, "conf") == b"colour=blue\nsize=1\n"


def test_python_writes_seeks_and_reads_back(objmount, s3, bucket):
    script = f"""
p = '/objmount/s3/{bucket}/py.bin'
with open(p, 'wb') as f:
    f.write(b'a' * 10000); f.seek(5000); f.write(b'XYZ'); f.seek(20000); f.write(b'end')
with open(p, 'r+b') as f:
    f.seek(1); f.write(b'b'); f.seek(0); print(f.read(4))
"""
    run = objmount(["python3", "-c", script])
    assert run.returncode == 0, run.stderr
    expected = bytearray(b"a" * 10000 + bytes(10000) + b"end")
    expected[5000:5003] = b"XYZ"
    expected[1:2] = b"b"
    assert get(s3, bucket, "py.bin") == bytes(expected)


def test_git_init_add_commit_status(objmount, s3, bucket):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    d = f"/objmount/s3/{bucket}/repo"
    run = objmount(f"mkdir {d} && cd {d} && git init -q && echo hello > README && git add README && "
                   f"git -c user.email=t@e -c user.name=T commit -qm first && git status --porcelain && git log --oneline | wc -l",
                   timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.text == "1\n"
    assert "repo/.git/HEAD" in keys(s3, bucket)
    again = objmount(f"cd {d} && git log --format=%s && git status --porcelain", timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.text == "first\n"


def test_sqlite_creates_and_updates_a_database(objmount, s3, bucket, tmp_path):
    script = f"""
import sqlite3
db = sqlite3.connect('/objmount/s3/{bucket}/app.db')
db.execute('create table t (k integer primary key, v text)')
db.executemany('insert into t (v) values (?)', [(str(i),) for i in range(500)])
db.commit()
db.execute("update t set v = 'changed' where k = 7"); db.commit()
db.close()
"""
    run = objmount(["python3", "-c", script])
    assert run.returncode == 0, run.stderr
    local = tmp_path / "app.db"
    local.write_bytes(get(s3, bucket, "app.db"))
    con = sqlite3.connect(local)
    assert con.execute("select count(*), (select v from t where k = 7) from t").fetchone() == (500, "changed")
    assert not [k for k in keys(s3, bucket) if k.endswith("-journal")]


def test_appending_to_a_large_object_sends_only_the_changed_part(objmount, s3, bucket, tmp_path):
    block = os.urandom(MiB)
    s3.upload_fileobj(io.BytesIO(block * 256), bucket, "big")
    extra = tmp_path / "extra"
    extra.write_bytes(os.urandom(MiB))
    run = objmount(f"cat {extra} >> /objmount/s3/{bucket}/big")
    assert run.returncode == 0, run.stderr
    assert run.stats["vfs"]["bytes_sent"] < 32 * MiB
    assert run.requests("UploadPartCopy") > 0
    body = get(s3, bucket, "big")
    assert len(body) == 257 * MiB
    assert hashlib.sha256(body).digest() == hashlib.sha256(block * 256 + extra.read_bytes()).digest()
    one = objmount(["python3", "-c", f"f = open('/objmount/s3/{bucket}/big', 'r+b'); f.seek(100 * {MiB}); f.write(b'!'); f.close()"])
    assert one.returncode == 0, one.stderr
    assert one.stats["vfs"]["bytes_sent"] < 32 * MiB
    body = get(s3, bucket, "big")
    assert body[100 * MiB] == ord("!") and len(body) == 257 * MiB and body[:MiB] == block


def test_hard_links_share_content_and_count_within_a_run(objmount, s3, bucket):
    b = f"/objmount/s3/{bucket}"
    run = objmount(f"echo v1 > {b}/orig && ln {b}/orig {b}/alias && stat -c %h {b}/orig {b}/alias && "
                   f"echo v2 > {b}/orig && cat {b}/alias")
    assert run.returncode == 0, run.stderr
    assert run.text == "2\n2\nv2\n"
    assert get(s3, bucket, "alias") == b"v2\n" and get(s3, bucket, "orig") == b"v2\n"


def test_write_syscalls_from_python(objmount, s3, bucket):
    script = f"""
import errno, mmap, os
b = '/objmount/s3/{bucket}'
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
    run = objmount(["python3", "-c", script])
    assert run.returncode == 0, run.stderr
    assert run.text.splitlines() == ["excl 17", "size 4096", "b'MMAP!\\x00'"]
    body = get(s3, bucket, "x")
    assert len(body) == 4096 and body[:5] == b"MMAP!" and body[5:] == bytes(4091)
    assert int(meta(s3, bucket, "x")["mode"]) & 0o777 == 0o600
    m = meta(s3, bucket, "c")
    assert (m["uid"], m["gid"]) == ("1234", "5678")
    assert get(s3, bucket, "c") == b"x" * 10


def test_without_dir_markers_empty_directories_last_for_the_run(objmount, s3, bucket):
    b = f"/objmount/s3/{bucket}"
    run = objmount(f"mkdir -p {b}/x/y && ls {b}/x && echo f > {b}/x/y/f && cat {b}/x/y/f", "--no-dir-markers")
    assert run.returncode == 0, run.stderr
    assert run.text == "y\nf\n"
    assert keys(s3, bucket) == ["x/y/f"]


def test_shared_mapping_writes_are_uploaded_at_munmap(objmount, s3, bucket):
    s3.put_object(Bucket=bucket, Key="m", Body=b"." * 8192)
    script = f"""
import mmap, os, boto3
fd = os.open('/objmount/s3/{bucket}/m', os.O_RDWR)
m = mmap.mmap(fd, 8192)
os.close(fd)                      # the mapping outlives the descriptor
m[100:105] = b'HELLO'
m.close()                         # munmap: the object must be in the bucket now
print(boto3.client('s3').get_object(Bucket='{bucket}', Key='m')['Body'].read()[100:105])
"""
    run = objmount(["python3", "-c", script])
    assert run.returncode == 0, run.stderr
    assert run.text.strip() == "b'HELLO'"
