"""The benchmark scenarios. Each returns rows: objmount's figure, the baseline measured in
the same run, their ratio, the target, and what objmount sent to the server."""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from .harness import Harness

MiB = 1024 * 1024


@dataclass
class Row:
    scenario: str
    metric: str
    objmount: float
    baseline: float | None = None
    unit: str = "s"
    target: str = ""
    ok: bool | None = None
    requests: dict = field(default_factory=dict)
    bytes_sent: int = 0
    bytes_received: int = 0
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.objmount / self.baseline


def _bucket(h: Harness) -> str:
    name = f"bench-{uuid.uuid4().hex[:10]}"
    h.client().create_bucket(Bucket=name)
    return name


class _Timed:
    def __init__(self, seconds: float):
        self.seconds = seconds


def _timed(fn) -> _Timed:
    """Time a baseline call made in this process (boto3 transfers)."""
    start = time.perf_counter()
    fn()
    return _Timed(time.perf_counter() - start)


def _row_from(result, **kw) -> Row:
    return Row(requests=result.requests(), bytes_sent=result.sent, bytes_received=result.received, **kw)


# --- 1. local work untouched ----------------------------------------------------------
# A small autotools project: the checks a typical configure script makes (compiler,
# headers, functions, sizes, libraries), each a few shells, compiles and links.
CONFIGURE_AC = """AC_INIT([benchproj], [1.0])
AC_CONFIG_SRCDIR([main.c])
AC_CONFIG_HEADERS([config.h])
AC_PROG_CC
AC_PROG_MAKE_SET
AC_PROG_LN_S
AC_PROG_AWK
AC_PROG_GREP
AC_PROG_SED
AC_CHECK_HEADERS([fcntl.h sys/stat.h sys/time.h time.h errno.h limits.h locale.h signal.h \\
                  pthread.h dlfcn.h sys/mman.h sys/socket.h netinet/in.h arpa/inet.h poll.h \\
                  sys/select.h termios.h wchar.h])
AC_CHECK_FUNCS([memset strchr strdup strerror strtol gettimeofday mmap munmap socket \\
                select poll realpath setlocale getcwd mkstemp])
AC_CHECK_SIZEOF([int])
AC_CHECK_SIZEOF([long])
AC_CHECK_SIZEOF([void *])
AC_CHECK_SIZEOF([size_t])
AC_TYPE_SIZE_T
AC_TYPE_PID_T
AC_TYPE_OFF_T
AC_C_CONST
AC_C_INLINE
AC_C_BIGENDIAN
AC_SEARCH_LIBS([pthread_create], [pthread])
AC_SEARCH_LIBS([dlopen], [dl])
AC_SEARCH_LIBS([sqrt], [m])
AC_CONFIG_FILES([Makefile])
AC_OUTPUT
"""
MAKEFILE_IN = """CC = @CC@
CFLAGS = @CFLAGS@
DEFS = @DEFS@
LIBS = @LIBS@
prog: main.o
\t$(CC) $(CFLAGS) -o $@ main.o $(LIBS)
main.o: main.c config.h
\t$(CC) $(CFLAGS) $(DEFS) -I. -c main.c -o $@
"""
MAIN_C = """#include "config.h"
#include <stdio.h>
int main(void) { printf("%s %d\\n", PACKAGE_STRING, (int)SIZEOF_LONG); return 0; }
"""


def autotools_project(where) -> "os.PathLike | None":
    """A configure script generated with autoconf (and autoheader); None without them."""
    if not (shutil.which("autoconf") and shutil.which("autoheader")):
        return None
    where.mkdir(parents=True, exist_ok=True)
    (where / "configure.ac").write_text(CONFIGURE_AC)
    (where / "Makefile.in").write_text(MAKEFILE_IN)
    (where / "main.c").write_text(MAIN_C)
    for tool in ("autoconf", "autoheader"):
        subprocess.run([tool], cwd=where, check=True, capture_output=True)
    return where


def _c_project(where, files: int) -> None:
    where.mkdir(exist_ok=True)
    for i in range(files):
        (where / f"f{i}.c").write_text(f"#include <stdio.h>\n#include <string.h>\n"
                                       f"int f{i}(int x) {{ return x * {i}; }}\n")
    (where / "main.c").write_text("int main(void) { return 0; }\n")
    objs = " ".join(f"f{i}.o" for i in range(files))
    (where / "Makefile").write_text(f"all: prog\nprog: main.o {objs}\n\tcc -o $@ $^\n%.o: %.c\n\tcc -O0 -c $< -o $@\n"
                                    "clean:\n\trm -f *.o prog\n")


def local(h: Harness, scale: float) -> list[Row]:
    """Work on local files only: what a CI job or a build pays for running under objmount.
    Each job natively and under objmount, alternated, best of 3; every ptrace stop of the
    objmount run is counted by kind (benchmarks/stopcount.py)."""
    loops = max(2, int(20 * scale))
    forks = max(20, int(500 * scale))
    files = max(2, int(20 * scale))
    # The real interpreter: `python3` on PATH may be a shell shim (pyenv) that execs several programs.
    interpreter = shlex.quote(os.path.realpath(sys.executable))
    py = ["sh", "-c", f"for i in $(seq {loops}); do {interpreter} -c 'import json, email, http.client, asyncio'; done"]
    proj = h.tmp / "cproj"
    _c_project(proj, files)
    make = ["sh", "-c", f"make -s -C {proj} clean && make -s -j2 -C {proj}"]
    fork = ["sh", "-c", f"for i in $(seq {forks}); do /bin/true; done"]
    find = ["sh", "-c", "find /usr -type f | wc -l"]
    jobs: list[tuple[str, list[str], tuple[str, ...], str | None, float | None]] = []
    auto = autotools_project(h.tmp / "autoproj")
    if auto is not None:
        configure = ["sh", "-c", "./configure -q && rm -f config.status config.log"]
        jobs += [("./configure (autoconf)", configure, (), str(auto), 1.1),
                 ("./configure (autoconf)", configure, ("--no-fast-path",), str(auto), None)]
    jobs += [(f"make -j2, {files} C files", make, (), None, 1.1),
             (f"fork+exec /bin/true x{forks}", fork, (), None, 1.5),
             (f"fork+exec /bin/true x{forks}", fork, ("--no-fast-path",), None, None),
             (f"python imports x{loops}", py, (), None, 1.05),
             (f"python imports x{loops}", py, ("--no-fast-path",), None, None),
             ("find /usr", find, (), None, 1.1)]
    rows = []
    if auto is None:
        rows.append(Row("1 local", "./configure (autoconf)", float("nan"), target="ratio <= 1.1", ok=False,
                        note="skipped: autoconf is not installed"))
    for name, cmd, options, cwd, limit in jobs:
        label = name + (f" ({' '.join(options)})" if options else "")
        try:
            native, om = h.versus(3, lambda: h.native(cmd, cwd=cwd),
                                  lambda: h.objmount(cmd, *options, cwd=cwd, count_stops=True))
        except RuntimeError as exc:  # one failing job must not hide the other rows
            rows.append(Row("1 local", label, float("nan"), ok=False, note=f"failed: {str(exc)[-200:]}"))
            continue
        stops = om.ptrace_stops
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(stops.items(), key=lambda kv: -kv[1]) if k != "total")
        note = f"{stops.get('total', 0)} ptrace stops: {kinds}"
        if name.startswith("fork+exec"):
            note = f"{stops.get('total', 0) / forks:.1f} stops per fork+exec; " + note
        row = _row_from(om, scenario="1 local", metric=label, objmount=om.seconds, baseline=native.seconds,
                        target=f"ratio <= {limit}" if limit else "report", note=note)
        if limit:
            row.ok = row.ratio <= limit
        rows.append(row)
    return rows


# --- 2. sequential read ---------------------------------------------------------------
def _put_big(h: Harness, bucket: str, key: str, size: int) -> None:
    path = h.tmp / "big.src"
    with open(path, "wb") as f:
        block = os.urandom(MiB)
        for _ in range(size // MiB):
            f.write(block)
    h.client().upload_file(str(path), bucket, key)
    path.unlink()


def sequential_read(h: Harness, scale: float) -> list[Row]:
    size = max(16, int(1024 * scale)) * MiB
    bucket = _bucket(h)
    _put_big(h, bucket, "big", size)
    counter: Counter = Counter()
    s3 = h.client(counter)
    dest = h.tmp / "dl"

    def baseline():
        t = _timed(lambda: s3.download_file(bucket, "big", str(dest)))
        dest.unlink()
        return t

    base = h.best(2, baseline)
    om = h.best(2, lambda: h.objmount(["sh", "-c", f"cat s3://{bucket}/big > /dev/null"]))
    row = _row_from(om, scenario="2 sequential read", metric=f"cat {size // MiB} MiB",
                    objmount=om.seconds, baseline=base.seconds, target="ratio <= 1.0",
                    note=f"{size / MiB / om.seconds:.0f} MB/s vs boto3 {size / MiB / base.seconds:.0f} MB/s "
                         f"(boto3 made {sum(counter.values()) // 2} requests)")
    row.ok = row.ratio <= 1.0
    return [row]


# --- 3. random read -------------------------------------------------------------------
RANDOM_SCRIPT = """
import json, os, random, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
rng = random.Random(42)
lat = []
for _ in range(int(sys.argv[2])):
    off = rng.randrange(0, size - 4096)
    t = time.perf_counter(); os.pread(fd, 4096, off); lat.append(time.perf_counter() - t)
lat.sort()
print(json.dumps({"p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)]}))
"""


def random_read(h: Harness, scale: float) -> list[Row]:
    size = max(16, int(1024 * scale)) * MiB
    reads = max(50, int(1000 * min(scale * 4, 1)))
    bucket = _bucket(h)
    _put_big(h, bucket, "big", size)
    om = h.objmount(["python3", "-c", RANDOM_SCRIPT, f"/objmount/s3/{bucket}/big", str(reads)])
    lat = json.loads(om.stdout)
    limit = 64 * MiB * reads / 1000
    row = _row_from(om, scenario="3 random read", metric=f"{reads} x 4 KiB of {size // MiB} MiB",
                    objmount=om.received / MiB, unit="MiB fetched", target=f"<= {limit / MiB:.0f} MiB",
                    note=f"p50 {lat['p50'] * 1e3:.2f} ms, p99 {lat['p99'] * 1e3:.2f} ms per read")
    row.ok = om.received <= limit
    return [row]


# --- 4. write -------------------------------------------------------------------------
def write(h: Harness, scale: float) -> list[Row]:
    size = max(16, int(1024 * scale)) * MiB
    bucket = _bucket(h)
    src = h.tmp / "upload.src"
    with open(src, "wb") as f:
        block = os.urandom(MiB)
        for _ in range(size // MiB):
            f.write(block)
    s3 = h.client()

    base = h.best(2, lambda: _timed(lambda: s3.upload_file(str(src), bucket, "base")))
    om = h.best(2, lambda: h.objmount(["cp", str(src), f"/objmount/s3/{bucket}/copy"]))
    src.unlink()
    row = _row_from(om, scenario="4 write", metric=f"cp {size // MiB} MiB in", objmount=om.seconds,
                    baseline=base.seconds, target="ratio <= 1.2",
                    note=f"{size / MiB / om.seconds:.0f} MB/s vs boto3 {size / MiB / base.seconds:.0f} MB/s")
    row.ok = row.ratio <= 1.2
    return [row]


# --- 5. partial update (moto: rclone has no UploadPartCopy) ------------------------------
def partial_update(h: Harness, scale: float) -> list[Row]:
    size = max(32, int(256 * scale)) * MiB
    bucket = _bucket(h)
    _put_big(h, bucket, "big", size)
    src = h.tmp / "whole.src"
    with open(src, "wb") as f:
        f.write(os.urandom(size + MiB))
    s3 = h.client()

    base = _timed(lambda: s3.upload_file(str(src), bucket, "whole"))
    chunk = h.tmp / "chunk"
    chunk.write_bytes(os.urandom(MiB))
    om = h.objmount(["sh", "-c", f"cat {chunk} >> /objmount/s3/{bucket}/big"])
    src.unlink()
    rows = [
        _row_from(om, scenario="5 partial update", metric=f"append 1 MiB to {size // MiB} MiB (bytes)",
                  objmount=om.sent / MiB, unit="MiB sent", target="<= 16 MiB"),
        _row_from(om, scenario="5 partial update", metric="append 1 MiB (time vs whole upload)",
                  objmount=om.seconds, baseline=base.seconds, target="ratio <= 0.2"),
    ]
    rows[0].ok = om.sent <= 16 * MiB
    rows[1].ok = rows[1].ratio <= 0.2
    return rows


# --- 6. metadata ----------------------------------------------------------------------
def metadata(h: Harness, scale: float) -> list[Row]:
    dirs = max(4, int(100 * scale))
    per_dir = 100
    bucket = _bucket(h)
    s3 = h.client()
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b"x"),
                      [f"d{d:03d}/f{i:03d}" for d in range(dirs) for i in range(per_dir)]))
    total = dirs * per_dir
    pages = dirs + 1 + dirs * ((per_dir - 1) // 1000)
    rows = []
    # ls -l shows stored attributes, which a listing does not carry: one HEAD per entry
    # (files and directory markers), asked in parallel; find stats the directories only.
    # A run longer than --metadata-ttl also looks each directory up again as ls enters it
    # (HEAD d, LIST d/, HEAD d/).
    for name, cmd, heads in (("ls -lR", ["sh", "-c", f"ls -lR /objmount/s3/{bucket} > /dev/null"], total + 4 * dirs),
                             ("find -type f", ["sh", "-c", f"find /objmount/s3/{bucket} -type f | wc -l"], dirs)):
        om = h.objmount(cmd)
        reqs = sum(om.requests().values())
        bound = f"{pages} LIST pages + {heads} HEADs + 10"
        row = _row_from(om, scenario="6 metadata", metric=f"{name} over {total} objects", objmount=om.seconds,
                        target=f"requests <= {bound}", note=f"{reqs} requests")
        row.ok = reqs <= pages + heads + 10
        rows.append(row)
    files = max(100, int(2000 * scale))
    archive = h.tmp / "small.tar"
    with tarfile.open(archive, "w") as tar:
        for i in range(files):
            data = os.urandom(200)
            info = tarfile.TarInfo(f"t/d{i % 20}/f{i}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    # rclone serve s3 stores a 'dir/' marker as a file and then refuses keys below it
    om = h.objmount(["tar", "xf", str(archive), "-C", f"/objmount/s3/{bucket}"], "--no-dir-markers")
    rows.append(_row_from(om, scenario="6 metadata", metric=f"tar x {files} small files",
                          objmount=files / om.seconds, unit="files/s", target="report"))
    return rows


# --- 7. interception cost -------------------------------------------------------------
STAT_SCRIPT = """
import os, sys, time
p, n = sys.argv[1], int(sys.argv[2])
os.stat(p)
t = time.perf_counter()
for _ in range(n): os.stat(p)
print(time.perf_counter() - t)
"""


def interception(h: Harness, scale: float) -> list[Row]:
    n = max(200, int(5000 * scale))
    bucket = _bucket(h)
    h.client().put_object(Bucket=bucket, Key="k", Body=b"x")
    py = os.path.realpath(sys.executable)
    local = [py, "-c", STAT_SCRIPT, "/etc/hostname", str(n)]
    local_native = float(h.native(local).stdout)
    local_fast = float(h.objmount(local).stdout)
    local_om = float(h.objmount(local, "--no-fast-path").stdout)
    virt_om = float(h.objmount([py, "-c", STAT_SCRIPT, f"/objmount/s3/{bucket}/k", str(n)],
                               "--metadata-ttl", "3600").stdout)
    return _cached_database(h, bucket, scale) + [
        Row("7 interception", "stat of a local path (fast path, no stop)", (local_fast - local_native) / n * 1e6,
            unit="us per call", target="report", note=f"native stat {local_native / n * 1e6:.2f} us"),
        Row("7 interception", "stat of a local path (stopped, --no-fast-path)", (local_om - local_native) / n * 1e6,
            unit="us per stop", target="report"),
        Row("7 interception", "stat of a virtual path (emulated)", (virt_om - local_native) / n * 1e6,
            unit="us per stop", target="report"),
    ]


# A query twice in one process tree: the first fetches the database, the second reads it
# from the cache (sqlite3's preads: each one a stop unless the file is marked, see
# objmount/direct_reads.py). Only the second is timed, inside the job.
SECOND_QUERY = ('sqlite3 "$0" "$1" > /dev/null; s=$(date +%s%N); sqlite3 "$0" "$1" > /dev/null; '
                'e=$(date +%s%N); echo $((e - s))')
QUERY = "select count(*), sum(length(b)) from t where b like '%needle%'"


def _cached_database(h: Harness, bucket: str, scale: float) -> list[Row]:
    if shutil.which("sqlite3") is None:
        return []
    import sqlite3
    db = h.tmp / "bench.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("create table t(a integer, b text)")
        con.executemany("insert into t values (?, ?)", ((i, f"{i:08d}" * 25) for i in range(max(2000, int(200_000 * scale)))))
    h.client().upload_file(str(db), bucket, "bench.sqlite")

    def best(run) -> float:
        return min(int(run().stdout) for _ in range(3)) / 1e9
    native = best(lambda: h.native(["sh", "-c", SECOND_QUERY, str(db), QUERY]))
    om = best(lambda: h.objmount(["sh", "-c", SECOND_QUERY, f"/objmount/s3/{bucket}/bench.sqlite", QUERY]))
    return [Row("7 interception", f"sqlite3 query of a cached {db.stat().st_size / MiB:.0f} MiB database",
                om, baseline=native, target="report",
                note="the second query of a run, timed inside it: its preads read the cache without stopping")]


# --- 8. latency: a bucket 20 ms away ---------------------------------------------------
def _floor(h: Harness, bucket: str, keys: list[str], prefixes: list[str] = (), head: bool = False) -> _Timed:
    """What boto3 needs with 8 threads for the same requests: the floor for that many bytes
    and round trips (LIST pages of each prefix, then a GET or HEAD of every key)."""
    from concurrent.futures import ThreadPoolExecutor
    s3 = h.client()

    def one(key: str) -> None:
        if head:
            s3.head_object(Bucket=bucket, Key=key)
        else:
            s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def work() -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda p: s3.list_objects_v2(Bucket=bucket, Prefix=p, Delimiter="/"), prefixes))
            list(pool.map(one, keys))
    return _timed(work)


def _per_op(requests: dict) -> str:
    """'1253 requests: GetObject 400, HeadObject 410, ...' (most first)."""
    ops = ", ".join(f"{op} {n}" for op, n in sorted(requests.items(), key=lambda kv: -kv[1]))
    return f"{sum(requests.values())} requests: {ops}"


def _round_trip(h: Harness, bucket: str, key: str, tries: int = 5) -> float:
    """One request's round trip (a HEAD on a kept-alive connection), the best of a few."""
    s3 = h.client()
    s3.head_object(Bucket=bucket, Key=key)   # the connection
    return min(_timed(lambda: s3.head_object(Bucket=bucket, Key=key)).seconds for _ in range(tries))


def latency(h: Harness, scale: float) -> list[Row]:
    """The issue-11 scenarios with every request delayed by --latency-ms in front of the
    server; ratios are to boto3 with 8 threads making the same requests in the same run.
    One process opening files one after another asks the bucket at each open under
    close-to-open (the default): its rows say that floor (opens x round trip); the same
    jobs run again with --no-close-to-open."""
    from concurrent.futures import ThreadPoolExecutor

    from boto3.s3.transfer import TransferConfig

    from .latency import delayed

    delay = h.latency_ms
    bucket = _bucket(h)
    s3 = h.client()
    n_big = max(4, int(48 * scale))
    n_dirs, per_dir = max(2, int(10 * scale)), max(4, int(40 * scale))
    n_copy = max(20, int(1000 * scale))
    big_keys = [f"big/f{i:02d}" for i in range(n_big)]
    small_keys = [f"small/d{d}/f{i:03d}" for d in range(n_dirs) for i in range(per_dir)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=os.urandom(MiB)), big_keys))
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=os.urandom(3000) + b"\nneedle\n"),
                      small_keys))
    seq_size = max(16, int(256 * scale)) * MiB
    _put_big(h, bucket, "seq", seq_size)
    src = h.tmp / "tree"
    for i in range(n_copy):
        (src / f"d{i % 10}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 10}" / f"f{i}").write_bytes(os.urandom(2000))
    root = f"/objmount/s3/{bucket}"
    small_dirs = [f"small/d{d}/" for d in range(n_dirs)]
    rows = []
    with delayed(h.endpoint, delay) as far:
        fh = h.via(far)

        def row(metric: str, cmd: str, base: _Timed, limit: float, note: str = "", options=()) -> None:
            try:
                om = fh.objmount(["sh", "-c", cmd], *options)
            except RuntimeError as exc:  # one failing job must not hide the other rows
                rows.append(Row(f"8 latency {delay:g} ms", metric, float("nan"), base.seconds, ok=False,
                                target=f"ratio <= {limit}", note=f"failed: {str(exc)[-200:]}"))
                return
            r = _row_from(om, scenario=f"8 latency {delay:g} ms", metric=metric, objmount=om.seconds,
                          baseline=base.seconds, target=f"ratio <= {limit}",
                          note=(note + " " if note else "") + _per_op(om.requests()))
            r.ok = r.ratio <= limit
            rows.append(r)

        rtt = _round_trip(fh, bucket, big_keys[0])

        def cto_floor(opens: int, base: _Timed) -> str:
            """The least one process opening files in turn needs when each open asks."""
            least = opens * rtt
            return (f"close-to-open floor: {opens} opens x {rtt * 1000:.0f} ms = {least:.2f} s "
                    f"(ratio {least / base.seconds:.1f});")

        big_floor = _floor(fh, bucket, big_keys, ["big/"])
        cat_big = f"cat {root}/big/* > /dev/null"
        row(f"cat {n_big} x 1 MiB, one process", cat_big, big_floor, 2, note=cto_floor(n_big, big_floor))
        row(f"cat {n_big} x 1 MiB, one process, --no-close-to-open", cat_big, big_floor, 2,
            options=("--no-close-to-open",))
        row(f"xargs -P8 sha256sum, {n_big} x 1 MiB",
            f"ls -d {root}/big/* | xargs -P8 -n{max(1, n_big // 8)} sha256sum > /dev/null", big_floor, 1.5)
        small_floor = _floor(fh, bucket, small_keys, small_dirs)
        n_small = len(small_keys)
        grep = f"grep -rl needle {root}/small > /dev/null"
        row(f"grep -rl over {n_small} small files", grep, small_floor, 4, note=cto_floor(n_small, small_floor))
        row(f"grep -rl over {n_small} small files, --no-close-to-open", grep, small_floor, 4,
            options=("--no-close-to-open",))
        row(f"xargs -P8 cat, {n_small} small files",
            f"find {root}/small -type f | xargs -P8 -n{max(1, n_small // 8)} cat > /dev/null", small_floor, 2)
        list_floor = _floor(fh, bucket, small_keys, small_dirs + ["small/"], head=True)
        row(f"ls -lR of {n_small} files", f"ls -lR {root}/small > /dev/null", list_floor, 2,
            note="floor: LIST each directory and HEAD each file, 8 threads;")
        seq_floor = _timed(lambda: fh.client().download_file(bucket, "seq", str(h.tmp / "seq.dl"),
                                                             Config=TransferConfig(max_concurrency=8)))
        (h.tmp / "seq.dl").unlink()
        row(f"cat {seq_size // MiB} MiB", f"cat {root}/seq > /dev/null", seq_floor, 1.0)
        files = sorted(p for p in src.rglob("*") if p.is_file())
        s3_far = fh.client()
        put_loop = _timed(lambda: [s3_far.put_object(Bucket=bucket, Key=f"loop/{p.relative_to(src)}",
                                                     Body=p.read_bytes()) for p in files])
        # rclone serve s3 stores a 'dir/' marker as a file and then refuses keys below it
        row(f"cp -r {n_copy} small files in", f"cp -r {src} {root}/copied", put_loop, 1.3,
            note="baseline: a boto3 loop of the same PUTs;", options=("--no-dir-markers",))
        get_loop = _timed(lambda: [s3_far.get_object(Bucket=bucket, Key=f"loop/{p.relative_to(src)}")["Body"].read()
                                   for p in files])
        out = h.tmp / "out"
        row(f"cp -r {n_copy} small files out", f"cp -r {root}/copied {out}", get_loop, 1.3,
            note="baseline: a boto3 loop of the same GETs;")
    return rows


SCENARIOS = {
    "local": (local, "rclone"),
    "seqread": (sequential_read, "rclone"),
    "randread": (random_read, "rclone"),
    "write": (write, "rclone"),
    "partial": (partial_update, "moto"),
    "metadata": (metadata, "rclone"),
    "interception": (interception, "rclone"),
    "latency": (latency, "rclone"),
}
