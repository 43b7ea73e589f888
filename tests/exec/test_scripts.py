"""#! scripts stored in the bucket run as the kernel would run them from a local disk:
the interpreter may itself be in the bucket (a venv), may be a script in turn, and sees
the script's path as the program named it. Each case runs on a local directory and on a
virtual one; the answers must be the same but for the root's name."""

from __future__ import annotations

import subprocess

import pytest

SETUP = r'''
set -e
cd "$R"
printf '#!/bin/sh\necho "0=$0" "$@"\n' > args.sh
printf '#!/bin/sh\necho "tool:" "$@"\n' > tool
printf '#!%s/tool opt with space\n' "$R" > s1
printf '#!%s/s1 two\n' "$R" > s2
for i in 3 4 5; do printf '#!%s/s%d\n' "$R" $((i - 1)) > s$i; done
printf '#!   \n' > empty
printf '#!%s/missing\n' "$R" > lost
printf '#!/bin/sh\necho never\n' > noexec
chmod 755 args.sh tool s1 s2 s3 s4 s5 empty lost
'''
RUN = r'''
cd "$R"
"$R"/args.sh a 'b c'; ./args.sh d; sh -c '"$R"/args.sh e'
"$R"/s1 x; "$R"/s2 y; "$R"/s4 z
python3 -c '
import os, sys, errno
for name in ("empty", "lost", "noexec", "s5"):   # s5: a sixth level of #! (s4 is the fifth)
    try:
        os.execv(os.path.join(sys.argv[1], name), [name])
    except OSError as e:
        print(name, errno.errorcode[e.errno])
' "$R"
'''


def both(objmount, bucket, tmp_path, script: str, prefix: str = "") -> tuple[str, str]:
    local = tmp_path / "local"
    local.mkdir(exist_ok=True)
    native = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env={"R": str(local), "PATH": "/usr/bin:/bin"})
    url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    run = objmount(["sh", "-c", script], "-m", f"/w={url}", env={"R": "/w"})
    assert run.returncode == native.returncode, run.stderr
    return native.stdout.replace(str(local), "ROOT"), run.text.replace("/w", "ROOT")


@pytest.mark.parametrize("prefix", ["", "pre/fix"])
def test_scripts_run_as_from_a_local_disk(objmount, bucket, tmp_path, prefix):
    local, virtual = both(objmount, bucket, tmp_path, SETUP + RUN, prefix)
    assert virtual == local
    assert local.splitlines()[:5] == ["0=ROOT/args.sh a b c", "0=./args.sh d", "0=ROOT/args.sh e",
                                      "tool: opt with space ROOT/s1 x", "tool: opt with space ROOT/s1 two ROOT/s2 y"]


def test_a_venv_in_the_bucket_runs_scripts_naming_its_python(objmount, bucket, tmp_path):
    script = r'''
set -e
python3 -m venv --without-pip "$R/venv"
printf '#!%s/venv/bin/python\nimport sys\nprint(sys.prefix, sys.argv)\n' "$R" > "$R/hello.py"
chmod 755 "$R/hello.py"
"$R/hello.py" arg
cd "$R" && ./hello.py here
'''
    local, virtual = both(objmount, bucket, tmp_path, script)
    assert virtual == local
    assert local.splitlines() == ["ROOT/venv ['ROOT/hello.py', 'arg']", "ROOT/venv ['./hello.py', 'here']"]
