"""A file renamed while it is open for writing: the writes after the rename, and the close,
land at the new name."""

from __future__ import annotations


def test_writes_after_a_rename_of_an_open_file_land_at_the_new_name(objmount, s3, bucket):
    b = f"/objmount/s3/{bucket}"
    code = (f"import os\nf = open('{b}/a.txt', 'w')\nf.write('first\\n'); f.flush()\n"
            f"os.rename('{b}/a.txt', '{b}/b.txt')\nf.write('second\\n')\nf.close()\n"
            f"print(open('{b}/b.txt').read(), end='')")
    run = objmount(["python3", "-c", code])
    assert run.returncode == 0, run.stderr
    assert run.text == "first\nsecond\n"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["b.txt"]
    assert s3.get_object(Bucket=bucket, Key="b.txt")["Body"].read() == b"first\nsecond\n"


def test_files_open_for_writing_move_with_their_directory(objmount, s3, bucket):
    b = f"/objmount/s3/{bucket}"
    code = (f"import os\nos.mkdir('{b}/d')\nf = open('{b}/d/f.txt', 'w')\nf.write('first\\n'); f.flush()\n"
            f"os.rename('{b}/d', '{b}/e')\nf.write('second\\n')\nf.close()\n")
    run = objmount(["python3", "-c", code])
    assert run.returncode == 0, run.stderr
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    assert [k for k in keys if not k.endswith("/")] == ["e/f.txt"]
    assert s3.get_object(Bucket=bucket, Key="e/f.txt")["Body"].read() == b"first\nsecond\n"
