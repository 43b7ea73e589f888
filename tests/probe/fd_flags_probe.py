"""Descriptor probe: numbers, descriptor and status flags of opens of files in DIR, and
how many opens fit under a small RLIMIT_NOFILE. Usage: fd_flags_probe.py DIR"""

import ctypes
import errno
import fcntl
import os
import resource
import subprocess
import sys

top = sys.argv[1]
if sys.argv[2:] == ["limit"]:
    # the limit set before the first open: objmount's socket then takes the top number,
    # which must not cost the program an open
    resource.setrlimit(resource.RLIMIT_NOFILE, (24, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    fds = []
    try:
        while True:
            fds.append(os.open(os.path.join(top, "f"), os.O_RDONLY))
    except OSError as exc:
        print("limit first: opened", len(fds), "then", errno.errorcode[exc.errno], "last", fds[-1])
    sys.exit(0)
with open(os.path.join(top, "f"), "wb") as f:
    f.write(b"x" * 10)
path = os.path.join(top, "f")
libc = ctypes.CDLL(None, use_errno=True)
for name, flags in [("rdonly", os.O_RDONLY), ("cloexec", os.O_RDONLY | os.O_CLOEXEC),
                    ("append", os.O_WRONLY | os.O_APPEND), ("rdwr-nonblock", os.O_RDWR | os.O_NONBLOCK),
                    ("trunc", os.O_WRONLY | os.O_TRUNC), ("dir", os.O_RDONLY | os.O_DIRECTORY)]:
    fd = libc.open(os.fsencode(top if name == "dir" else path), flags)   # os.open adds O_CLOEXEC
    fl = fcntl.fcntl(fd, fcntl.F_GETFL) & ~0o100000   # O_LARGEFILE is the kernel's to add
    print(name, fd, fcntl.fcntl(fd, fcntl.F_GETFD), oct(fl), os.fstat(fd).st_size if name != "dir" else "", flush=True)
    os.close(fd)
# a program that closes every descriptor, or puts its own at high numbers, still gets
# its files (objmount's socket for handing descriptors over is made again)
os.closerange(3, 1 << 20)
print("after closerange", os.open(path, os.O_RDONLY), flush=True)
null = os.open("/dev/null", os.O_RDONLY)
for high in (1022, 1023, 1024):
    os.dup2(null, high)
fd = os.open(path, os.O_RDONLY)
print("after dup2 high", fd, os.read(fd, 3), flush=True)
os.closerange(3, 1 << 20)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (24, hard))
fds = []
try:
    while True:
        fds.append(os.open(path, os.O_RDONLY))
except OSError as exc:
    print("opened", len(fds), "then", errno.errorcode[exc.errno], "last", fds[-1])
os.close(fds[3])
print("reopen takes", os.open(path, os.O_RDONLY) == fds[3])
os.closerange(3, 1 << 20)
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
sys.stdout.flush()
subprocess.run([sys.executable, __file__, top, "limit"], check=True)
