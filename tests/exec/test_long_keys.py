"""S3 takes keys of up to 1,024 bytes. A longer name is refused when it is made
(ENAMETOOLONG), not accepted and then lost at its close, when the upload fails (AWS says
KeyTooLongError; moto takes such keys, so these tests see the refusal, not the failure)."""

from __future__ import annotations

D = "d" * 250    # four such directories: a key of 1,004 bytes; five: over 1,024

SCRIPT = r'''
import errno, os, sys
root = sys.argv[1]
deep = os.path.join(root, *[sys.argv[2]] * 4)
def try_(what, fn, *args):
    try:
        fn(*args)
        print(what, "ok")
    except OSError as exc:
        print(what, errno.errorcode[exc.errno])
os.makedirs(deep)
try_("mkdir fifth", os.mkdir, os.path.join(deep, "e" * 30))
try_("create", lambda p: open(p, "w").write("lost?"), os.path.join(deep, "f" * 30))
try_("create short", lambda p: open(p, "w").write("kept"), os.path.join(deep, "f" * 19))
try_("symlink", os.symlink, "x", os.path.join(deep, "l" * 30))
try_("link", os.link, os.path.join(deep, "f" * 19), os.path.join(deep, "h" * 30))
try_("rename file", os.rename, os.path.join(deep, "f" * 19), os.path.join(deep, "r" * 30))
os.mkdir(os.path.join(root, "top"))
open(os.path.join(root, "top", "g" * 200), "w").write("inside")
try_("rename dir", os.rename, os.path.join(root, "top"), os.path.join(root, *[sys.argv[2]] * 3, "t" * 80))
print(sorted(os.listdir(deep)), sorted(os.listdir(os.path.join(root, "top"))))
'''


def test_names_whose_keys_are_too_long_are_refused_when_made(objmount, s3, bucket):
    run = objmount(["python3", "-c", SCRIPT, f"/objmount/s3/{bucket}", D])
    assert run.returncode == 0, run.stderr
    assert run.text.splitlines() == [
        "mkdir fifth ENAMETOOLONG", "create ENAMETOOLONG", "create short ok", "symlink ENAMETOOLONG",
        "link ENAMETOOLONG", "rename file ENAMETOOLONG", "rename dir ENAMETOOLONG",
        f"[{'f' * 19!r}] [{'g' * 200!r}]"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert "/".join([D] * 4 + ["f" * 19]) in keys and f"top/{'g' * 200}" in keys
    assert max(len(k) for k in keys) <= 1024
