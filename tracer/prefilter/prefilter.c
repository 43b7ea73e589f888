/* In-process prefilter: preloaded into dynamically linked tracees, it answers the path
 * calls that cannot concern the supervisor without stopping the process.
 *
 * The seccomp filter stops every path syscall (BPF cannot read strings), except those
 * issued from one instruction: the `syscall` in a stub this library maps at a fixed
 * address (PREFILTER_PAGE). Each interposed libc function reads its path here, in the
 * process, and issues the syscall from that stub when the path is plainly local; when it
 * may be the supervisor's business (under one of the roots, relative to a directory the
 * supervisor emulates, through '..', a descriptor at or above the descriptor base or
 * open on one of the supervisor's files) it
 * issues the same syscall from an ordinary instruction, which stops as before. Either
 * way the program gets what the kernel (or the supervisor) answered.
 *
 * No libc headers and no libc calls on the fast path: the library works with any libc
 * that exports these names, and cannot recurse into itself. Configuration comes from
 * the environment (see tracer/prefilter.py); without it the library does nothing.
 * x86_64 only.
 */

#if !defined(__x86_64__)
#error "the prefilter is x86_64 only"
#endif

#ifndef PREFILTER_PAGE
#error "build with -DPREFILTER_PAGE=<address> (tracer/prefilter.py does)"
#endif

typedef unsigned long size_t;
typedef long ssize_t;
typedef unsigned int mode_t;
typedef __builtin_va_list va_list;
#define va_start(ap, last) __builtin_va_start(ap, last)
#define va_arg(ap, type) __builtin_va_arg(ap, type)
#define va_end(ap) __builtin_va_end(ap)
#define va_copy(dst, src) __builtin_va_copy(dst, src)

#define EXPORT __attribute__((visibility("default")))

#define AT_FDCWD (-100)
#define AT_SYMLINK_NOFOLLOW 0x100
#define AT_REMOVEDIR 0x200
#define ENOSYS 38
#define EEXIST 17
#define ENOENT 2
#define EACCES 13
#define ENOEXEC 8
#define ESTALE 116
#define ENODEV 19
#define ETIMEDOUT 110
#define O_RDONLY 0
#define O_WRONLY 01
#define O_CREAT 0100
#define O_TRUNC 01000
#define O_RDWR 02
#define O_EXCL 0200
#define O_APPEND 02000
#define O_NONBLOCK 04000
#define O_DIRECTORY 0200000
#define O_CLOEXEC 02000000
#define O_TMPFILE (020000000 | O_DIRECTORY)

#define EINVAL 22
#define EFAULT 14
#define ENOTDIR 20
#define ENAMETOOLONG 36
#define ELOOP 40
#define ENOMEM 12
#define S_IFMT 0170000
#define S_IFDIR 0040000

enum {
    NR_execve = 59, NR_execveat = 322, NR_truncate = 76, NR_mkdirat = 258, NR_fchownat = 260,
    NR_unlinkat = 263, NR_linkat = 265, NR_symlinkat = 266, NR_fchmodat = 268,
    NR_utimensat = 280, NR_renameat2 = 316, NR_fchmodat2 = 452,
    NR_close = 3, NR_fstat = 5, NR_mmap = 9, NR_mprotect = 10, NR_munmap = 11, NR_getcwd = 79,
    NR_openat = 257, NR_newfstatat = 262,
    NR_readlinkat = 267, NR_faccessat = 269, NR_statx = 332, NR_faccessat2 = 439,
    NR_rt_sigprocmask = 14, NR_statfs = 137,
};

#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define MAP_PRIVATE 0x02
#define MAP_ANONYMOUS 0x20
#define MAP_FIXED_NOREPLACE 0x100000

#define PATH_MAX 4096
/* Buffers on the stack stay small: open() may run in a signal handler on an 8 KiB
 * alternate stack, or in a thread with a small stack. A path that does not fit is not
 * decided here: the call stops (or goes to libc), which is always correct. */
#define SMALL_PATH 1024

#include "lexical.h"

/* Weak: in a dynamic program without libc these stay null and the library stays out. */
extern char **environ __attribute__((weak));
extern int *__errno_location(void) __attribute__((weak));
extern void *fdopendir(int fd) __attribute__((weak));
extern void *fdopen(int fd, const char *mode) __attribute__((weak));
extern void *malloc(size_t n) __attribute__((weak));
extern void *dlsym(void *handle, const char *name) __attribute__((weak));
#define RTLD_NEXT ((void *)-1L)

/* The stub copied to PREFILTER_PAGE: a C-callable long stub(nr, a1, ..., a6) whose
 * `syscall` instruction ends at offset 25, the address the seccomp filter trusts. */
static const unsigned char stub[] = {
    0x48, 0x89, 0xf8,             /* mov %rdi,%rax      nr */
    0x48, 0x89, 0xf7,             /* mov %rsi,%rdi      a1 */
    0x48, 0x89, 0xd6,             /* mov %rdx,%rsi      a2 */
    0x48, 0x89, 0xca,             /* mov %rcx,%rdx      a3 */
    0x4d, 0x89, 0xc2,             /* mov %r8,%r10       a4 */
    0x4d, 0x89, 0xc8,             /* mov %r9,%r8        a5 */
    0x4c, 0x8b, 0x4c, 0x24, 0x08, /* mov 8(%rsp),%r9    a6 */
    0x0f, 0x05,                   /* syscall            (ends at offset 25) */
    0xc3,                         /* ret */
};
_Static_assert(sizeof(stub) == 26, "the trusted instruction pointer is PREFILTER_PAGE + 25");

typedef long (*stub_fn)(long, long, long, long, long, long, long);

static int ready;                   /* configured and the stub is mapped */
static int fd_base;                 /* descriptors at or above it may be virtual */
static char roots_buf[PATH_MAX];
static char defer_cwd[PATH_MAX];
static char defer_under[PATH_MAX];  /* descriptors of files below it are the supervisor's */
static char self_path[SMALL_PATH];  /* this library as LD_PRELOAD names it ("": unknown) */
/* read_mark: "NAME=VALUE", an extended attribute the supervisor puts on a file whose reads
 * need no stop (see "reads of a marked file" below): split at the '=' into these. */
static char mark_name[64];
static char mark_value[40];
static long mark_len;

/* A syscall from here stops in the supervisor like any other. */
static long traced6(long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

static long traced(long nr, long a1, long a2, long a3, long a4, long a5) {
    return traced6(nr, a1, a2, a3, a4, a5, 0);
}

/* A syscall from the stub never stops. */
static long direct(long nr, long a1, long a2, long a3, long a4, long a5) {
    return ((stub_fn)PREFILTER_PAGE)(nr, a1, a2, a3, a4, a5, 0);
}

/* A decision of local_lookup(): run it now; if it fails, its dirfd (a1) may be the
 * stand-in for a virtual directory (empty, so every lookup there fails): ask the
 * supervisor then. */
#define LOCAL_UNLESS_STAND_IN 2
static int dir_is_deferred(int dirfd);

static long after_supervised(long nr, long r);

static long call(int local, long nr, long a1, long a2, long a3, long a4, long a5) {
    if (local == LOCAL_UNLESS_STAND_IN) {
        long r = direct(nr, a1, a2, a3, a4, a5);
        if (r >= 0 || !dir_is_deferred((int)a1)) return r;
        return after_supervised(nr, traced(nr, a1, a2, a3, a4, a5));
    }
    return local ? direct(nr, a1, a2, a3, a4, a5) : after_supervised(nr, traced(nr, a1, a2, a3, a4, a5));
}

static void set_errno(int e) {
    if (__errno_location) *__errno_location() = e;
}

static long result(long r) {
    if (r < 0 && r > -4096) {
        set_errno((int)-r);
        return -1;
    }
    return r;
}

/* --- small string helpers (no libc) ------------------------------------------------- */
static const char *env(const char *name) {
    size_t n = slen(name);
    if (!environ) return 0;
    for (char **e = environ; *e; e++)
        if (starts(*e, name) && (*e)[n] == '=') return *e + n + 1;
    return 0;
}

static int parse_int(const char *s) {
    int v = 0;
    if (!s || !*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000000) return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* Could a relative path's first component lead into a root (e.g. "objmount/s3/b" from
 * "/")? The supervisor resolves such paths itself; so do we defer them. */
static int names_root_component(const char *rel, size_t n) {
    for (int i = 0; i < n_roots; i++) {
        const char *r = roots[i];
        while (*r) {
            while (*r == '/') r++;
            const char *q = r;
            while (*q && *q != '/') q++;
            if ((size_t)(q - r) == n && n > 0) {
                size_t k = 0;
                while (k < n && r[k] == rel[k]) k++;
                if (k == n) return 1;
            }
            r = q;
        }
    }
    return 0;
}

/* The directory a relative path starts from, read with stub syscalls; 0 if unknown. */
static int base_dir(int dirfd, char *out, size_t cap) {
    if (dirfd == AT_FDCWD) {
        long n = direct(NR_getcwd, (long)out, (long)cap, 0, 0, 0);
        return n > 1 && out[0] == '/';
    }
    if (dirfd < 0) return 0;
    char link[32] = "/proc/self/fd/";
    size_t i = 14;
    char digits[12];
    int d = 0;
    for (unsigned v = (unsigned)dirfd; d == 0 || v; v /= 10) digits[d++] = (char)('0' + v % 10);
    while (d) link[i++] = digits[--d];
    link[i] = 0;
    long n = direct(NR_readlinkat, AT_FDCWD, (long)link, (long)out, (long)cap - 1, 0);
    if (n <= 0 || n >= (long)cap - 1 || out[0] != '/') return 0;   /* pipes, anon inodes, too long */
    out[n] = 0;
    return 1;
}

/* A descriptor below the base may be virtual: the kernel gives virtual files the lowest
 * free number like any other. Such descriptors are files in `defer_under`. */
#define SLOW __attribute__((noinline))   /* keeps big frames off the common path */

static SLOW int fd_is_local(int fd) {
    char target[SMALL_PATH];
    if (!ready || fd < 0 || fd >= fd_base) return 0;
    if (!defer_under[0] || !base_dir(fd, target, sizeof target)) return 1;
    size_t n = slen(defer_under);
    return !(starts(target, defer_under) && (target[n] == '/' || target[n] == 0));
}

/* A virtual directory (and an O_PATH descriptor of a virtual file or link) is open on
 * the directory that stands in for it, defer_cwd: a relative path from there is the
 * supervisor's. One fstat compares device and inode (cheaper than reading the link). */
static unsigned long stand_in[2];   /* st_dev, st_ino of defer_cwd once known */

static SLOW int dir_is_deferred(int dirfd) {
    unsigned long st[18];   /* the kernel's struct stat: st_dev, st_ino first */
    if (!defer_cwd[0]) return 0;
    if (!stand_in[1]) {
        long r = direct(NR_newfstatat, AT_FDCWD, (long)defer_cwd, (long)st, 0, 0);
        if (r == -ENOENT) return 0;   /* none yet: nothing open on it */
        if (r != 0) {
            /* EACCES: a process that dropped privileges, shut out of the private cache the
             * stand-in lies in; its descriptor's path still tells (as local_from_base). */
            char buf[SMALL_PATH];
            return base_dir(dirfd, buf, sizeof buf) && same(buf, defer_cwd);
        }
        stand_in[0] = st[0];
        stand_in[1] = st[1];
    }
    if (direct(NR_fstat, dirfd, (long)st, 0, 0, 0) != 0) return 0;   /* EBADF: the kernel says so */
    return st[0] == stand_in[0] && st[1] == stand_in[1];
}

/* Is `path`, joined to the directory in `buf` (SMALL_PATH bytes, overwritten), outside
 * every root? objmount/paths.py: not under_roots(join(base, path)). */
static SLOW int joined_local(char *buf, const char *path) {
    size_t b = slen(buf), n = slen(path);
    if (b + 1 + n + 1 > SMALL_PATH) return 0;
    buf[b] = '/';
    for (size_t i = 0; i <= n; i++) buf[b + 1 + i] = path[i];
    if (pops_below_root(buf) || !normalize(buf, buf, SMALL_PATH)) return 0;
    return !under_root(buf);
}

static SLOW int local_from_base(int dirfd, const char *path) {
    char buf[SMALL_PATH];   /* base, then base/path, normalized in place */
    if (!base_dir(dirfd, buf, sizeof buf)) return 0;
    if (defer_cwd[0] && same(buf, defer_cwd)) return 0;   /* a virtual directory */
    return joined_local(buf, path);
}

static SLOW int normalized_local(const char *path) {
    char norm[SMALL_PATH];
    return !pops_below_root(path) && normalize(path, norm, sizeof norm) && !under_root(norm);
}

/* Is the kernel cwd the directory that stands in for an emulated (virtual) one? Asked
 * each time, not cached: a vfork child's chdir would change a cached answer under its
 * parent. A longer cwd is not defer_cwd (shorter, checked at start). */
static SLOW int cwd_deferred(void) {
    char buf[SMALL_PATH];
    if (!defer_cwd[0]) return 0;
    long n = direct(NR_getcwd, (long)buf, sizeof buf, 0, 0, 0);
    return n > 0 && same(buf, defer_cwd);
}

/* Only '.' components ("." "./."): the one kind of lookup that succeeds in the empty
 * stand-in directory. */
static int only_dots(const char *path) {
    for (const char *c = path; *c; c++)
        if (*c != '.' && *c != '/') return 0;
    for (const char *c = path; *c; c++)
        if (c[0] == '.' && c[1] == '.') return 0;
    return 1;
}

/* What a path string says by itself. The numbers and answers of objmount/paths.py's
 * lexical_class (tests/test_paths.py holds the two to one table); a path too long for
 * the small buffers is VIRTUAL here: the supervisor decides. */
enum { LX_LOCAL = 0, LX_VIRTUAL = 1, LX_FD_LINK = 2, LX_RELATIVE = 3, LX_CLIMBS = 4 };

static int lexical_class(const char *path) {
    if (path[0] == '/') {
        /* /proc/PID/fd/N and /dev/fd/N may name a virtual descriptor. */
        if (fd_link_name(path)) return LX_FD_LINK;
        if (needs_normalizing(path)) {
            char norm[SMALL_PATH];
            if (!normalize(path, norm, sizeof norm)) return LX_VIRTUAL;
            if (fd_link_name(norm)) return LX_FD_LINK;
            return under_root(norm) || pops_below_root(path) ? LX_VIRTUAL : LX_LOCAL;
        }
        return under_root(path) ? LX_VIRTUAL : LX_LOCAL;
    }
    if (starts(path, "s3:/")) return LX_VIRTUAL;   /* s3://bucket/key, s3:/bucket/key */
    /* '..' anywhere, or a root's component as the first name ("objmount/s3/b" from "/";
     * "./objmount" too), could lead into a root. */
    int first = 1;
    for (const char *p = path; *p;) {
        const char *q = p;
        while (*q && *q != '/') q++;
        size_t n = (size_t)(q - p);
        if (n == 2 && p[0] == '.' && p[1] == '.') return LX_CLIMBS;
        if (first && n && !(n == 1 && p[0] == '.')) {
            if (names_root_component(p, n)) return LX_CLIMBS;
            first = 0;
        }
        p = *q ? q + 1 : q;
    }
    return LX_RELATIVE;
}

/* Can this process read the path string? A bad pointer must get the kernel's EFAULT
 * (from the supervisor), not kill the program here. One syscall probes each page the
 * string spans: rt_sigprocmask with an invalid `how` copies its 8-byte set in first
 * (EFAULT when it cannot) and then fails with EINVAL, changing nothing. The probed word
 * is aligned, so it lies in the page being checked. A string without a NUL within
 * PATH_MAX is not read further (ENAMETOOLONG is the supervisor's to give). */
#define PAGE_SIZE 4096UL
static int word_readable(unsigned long a) {
    return a >= PAGE_SIZE   /* null-ish: never mapped (mmap_min_addr) */
        && direct(NR_rt_sigprocmask, -1, (long)(a & ~7UL), 0, 8, 0) != -EFAULT;
}

static int string_readable(const char *s, size_t limit) {
    unsigned long a = (unsigned long)s;
    for (size_t n = 0; n < limit;) {
        unsigned long at = a + n;
        if (!word_readable(at)) return 0;
        for (unsigned long end = (at | (PAGE_SIZE - 1)) + 1; a + n < end && n < limit; n++)
            if (!s[n]) return 1;
    }
    return 0;
}

static int readable(const char *path) { return string_readable(path, PATH_MAX); }

static void init_once(void);

/* Set up (once) if a call comes before this library's constructor ran: a library loaded
 * with the program (libselinux: statfs and /proc/filesystems in every ls, cp, sed) may
 * have its constructor run first, and call in from there. */
static inline int configured(void) {
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) init_once();
    return __atomic_load_n(&ready, __ATOMIC_ACQUIRE);
}

/* Supervisor.fd_link's and proc_link's shapes (split on '/', after paths.fd_link_form:
 * normalized, the /dev/std* links as /dev/fd/N): /dev/fd/N and /proc/P/fd/N, what lies
 * below them (a virtual directory's descriptor), and /proc/P/cwd and below (a virtual
 * working directory; for this process's own, only while its kernel cwd is the stand-in).
 * Any other path under /proc/ or /dev/fd/ the supervisor classifies as it does every
 * absolute path (objmount/supervisor.py, classify): local unless it normalizes into a root. */
static SLOW int fd_link_shape(const char *path) {
    char norm[SMALL_PATH];
    if (needs_normalizing(path)) {
        if (!normalize(path, norm, sizeof norm)) return 1;   /* cannot tell: the supervisor decides */
        path = norm;
    }
    if (std_link(path)) return 1;
    int slashes = 0;
    for (const char *c = path; *c; c++) slashes += *c == '/';
    if (starts(path, "/dev/fd/")) return slashes >= 3;
    if (!starts(path, "/proc/") || slashes < 3) return 0;
    const char *third = path + 6;
    while (*third && *third != '/') third++;
    if (starts(third, "/fd/")) return slashes >= 4;
    if (same(third, "/cwd") || starts(third, "/cwd/")) {
        if (starts(path, "/proc/self/") || starts(path, "/proc/thread-self/")) return cwd_deferred();
        return 1;
    }
    return 0;
}

/* 1 when the call on (dirfd, path) is plainly local and may run without a stop; 0 when
 * it must stop; with `lookup` (a call that changes nothing), LOCAL_UNLESS_STAND_IN
 * instead of checking a directory descriptor up front (see call()). */
static int decide(int dirfd, const char *path, int lookup) {
    if (!configured() || !path || !readable(path)) return 0;
    if (dirfd != AT_FDCWD && dirfd >= fd_base) return 0;
    if (!path[0] && dirfd != AT_FDCWD) return fd_is_local(dirfd);   /* AT_EMPTY_PATH */
    int cls = lexical_class(path);
    if (cls == LX_LOCAL) return 1;
    if (cls == LX_FD_LINK && !fd_link_shape(path)) return normalized_local(path);
    if (cls != LX_RELATIVE && cls != LX_CLIMBS) return 0;   /* a root's, or a descriptor's */
    int check_later = 0;
    if (dirfd == AT_FDCWD) {
        if (cwd_deferred()) return 0;
    } else if (lookup && !only_dots(path)) {
        check_later = 1;
    } else if (dir_is_deferred(dirfd)) {
        return 0;
    }
    /* '..' or a root's name could lead into a root (fts climbs with openat(fd, "..")):
     * resolve against the directory's real path, as the supervisor would (which also
     * finds the stand-in directory). */
    if (cls == LX_CLIMBS) return local_from_base(dirfd, path);
    return check_later ? LOCAL_UNLESS_STAND_IN : 1;
}

static int local(int dirfd, const char *path) { return decide(dirfd, path, 0); }
static int local_lookup(int dirfd, const char *path) { return decide(dirfd, path, 1); }

static void learn_watched(void);

static int copy_env(const char *value, char *out, size_t cap) {
    size_t n = slen(value);
    if (n + 1 > cap) return 0;
    for (size_t i = 0; i <= n; i++) out[i] = value[i];
    return 1;
}

static void prefilter_init(void) {
    if (!environ || !__errno_location || !fdopendir || !fdopen || !malloc || !dlsym) return;
    const char *root_list = env("TRACER_PREFILTER_ROOTS");
    const char *base = env("TRACER_PREFILTER_FD_BASE");
    const char *cwd = env("TRACER_PREFILTER_DEFER_CWD");
    const char *under = env("TRACER_PREFILTER_DEFER_FDS_UNDER");
    const char *self = env("TRACER_PREFILTER_LIB");
    const char *mark = env("TRACER_PREFILTER_READ_MARK");
    if (self && !copy_env(self, self_path, sizeof self_path)) self_path[0] = 0;
    if (mark && copy_env(mark, mark_name, sizeof mark_name)) {
        char *eq = mark_name;
        while (*eq && *eq != '=') eq++;
        long n = slen(eq);   /* "=VALUE" */
        if (*eq && n > 1 && n <= (long)sizeof mark_value) {
            *eq = 0;
            copy_env(eq + 1, mark_value, sizeof mark_value);
            mark_len = n - 1;
        } else {
            mark_name[0] = 0;
        }
    }
    fd_base = parse_int(base);
    if (!root_list || !*root_list || fd_base <= 0) return;   /* not configured: stay out */
    if (!copy_env(root_list, roots_buf, sizeof roots_buf)) return;
    if (cwd && (!copy_env(cwd, defer_cwd, sizeof defer_cwd) || slen(defer_cwd) >= SMALL_PATH - 1)) return;
    if (under && !copy_env(under, defer_under, sizeof defer_under)) return;
    for (char *p = roots_buf; *p && n_roots < MAX_ROOTS;) {
        char *q = p;
        while (*q && *q != ':') q++;
        int more = *q == ':';
        *q = 0;
        if (p[0] != '/') return;   /* a malformed list: stay out rather than guess */
        roots[n_roots] = p;
        root_len[n_roots] = (size_t)(q - p);
        n_roots++;
        p = more ? q + 1 : q;
    }
    if (n_roots == MAX_ROOTS) return;

    long page = traced6(NR_mmap, PREFILTER_PAGE, 4096, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (page != (long)PREFILTER_PAGE) {
        /* Taken (or a kernel without NOREPLACE put it elsewhere): every call stops. */
        if (page > 0) traced(NR_munmap, page, 4096, 0, 0, 0);
        return;
    }
    for (size_t i = 0; i < sizeof stub; i++) ((volatile unsigned char *)page)[i] = stub[i];
    if (traced(NR_mprotect, page, 4096, PROT_READ | PROT_EXEC, 0, 0) != 0) return;
    __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    learn_watched();
}

/* 0: not yet, 1: being set up (by another thread, or by the code this call interrupted:
 * the call then stops, which is always correct), 2: done. */
static int init_state;

static void init_once(void) {
    int expected = 0;
    if (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) != 0) return;
    if (!__atomic_compare_exchange_n(&init_state, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return;
    if (&environ && !environ) {   /* libc not set up yet: try again on a later call */
        __atomic_store_n(&init_state, 0, __ATOMIC_RELEASE);
        return;
    }
    prefilter_init();
    __atomic_store_n(&init_state, 2, __ATOMIC_RELEASE);
}

__attribute__((constructor)) static void prefilter_constructor(void) { init_once(); }

/* --- open ---------------------------------------------------------------------------- */
static int open_at(int dirfd, const char *path, int flags, mode_t mode) {
    int creates = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
    int fast = creates ? local(dirfd, path) : local_lookup(dirfd, path);
    return (int)result(call(fast, NR_openat, dirfd, (long)path, flags, mode, 0));
}

static int wants_mode(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

EXPORT int open(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (wants_mode(flags)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    return open_at(AT_FDCWD, path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (wants_mode(flags)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    return open_at(AT_FDCWD, path, flags, mode);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...) {
    mode_t mode = 0;
    if (wants_mode(flags)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    return open_at(dirfd, path, flags, mode);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...) {
    mode_t mode = 0;
    if (wants_mode(flags)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    return open_at(dirfd, path, flags, mode);
}

/* _FORTIFY_SOURCE variants (no mode argument) */
EXPORT int __open_2(const char *path, int flags) { return open_at(AT_FDCWD, path, flags, 0); }
EXPORT int __open64_2(const char *path, int flags) { return open_at(AT_FDCWD, path, flags, 0); }
EXPORT int __openat_2(int dirfd, const char *path, int flags) { return open_at(dirfd, path, flags, 0); }
EXPORT int __openat64_2(int dirfd, const char *path, int flags) { return open_at(dirfd, path, flags, 0); }

EXPORT int creat(const char *path, mode_t mode) {
    return open_at(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}
EXPORT int creat64(const char *path, mode_t mode) {
    return open_at(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

/* opendir opens through libc internals that no preload can see: open here, then let
 * libc wrap the descriptor. */
EXPORT void *opendir(const char *path) {
    int fd = open_at(AT_FDCWD, path, O_RDONLY | O_NONBLOCK | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0) return 0;
    void *dir = fdopendir(fd);
    if (!dir) {
        int saved = __errno_location ? *__errno_location() : 0;
        traced(NR_close, fd, 0, 0, 0, 0);
        set_errno(saved);
    }
    return dir;
}

/* --- stat ---------------------------------------------------------------------------- */
static int stat_at(int dirfd, const char *path, void *buf, int flags) {
    return (int)result(call(local_lookup(dirfd, path), NR_newfstatat, dirfd, (long)path, (long)buf, flags, 0));
}

EXPORT int stat(const char *path, void *buf) { return stat_at(AT_FDCWD, path, buf, 0); }
EXPORT int stat64(const char *path, void *buf) { return stat_at(AT_FDCWD, path, buf, 0); }
EXPORT int lstat(const char *path, void *buf) { return stat_at(AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW); }
EXPORT int lstat64(const char *path, void *buf) { return stat_at(AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW); }
EXPORT int fstatat(int dirfd, const char *path, void *buf, int flags) { return stat_at(dirfd, path, buf, flags); }
EXPORT int fstatat64(int dirfd, const char *path, void *buf, int flags) { return stat_at(dirfd, path, buf, flags); }

/* glibc before 2.33 exported these; older binaries still call them (ver 1 on x86_64,
 * where struct stat is the kernel's). */
EXPORT int __xstat(int ver, const char *path, void *buf) { (void)ver; return stat_at(AT_FDCWD, path, buf, 0); }
EXPORT int __xstat64(int ver, const char *path, void *buf) { (void)ver; return stat_at(AT_FDCWD, path, buf, 0); }
EXPORT int __lxstat(int ver, const char *path, void *buf) {
    (void)ver;
    return stat_at(AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW);
}
EXPORT int __lxstat64(int ver, const char *path, void *buf) {
    (void)ver;
    return stat_at(AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW);
}
EXPORT int __fxstatat(int ver, int dirfd, const char *path, void *buf, int flags) {
    (void)ver;
    return stat_at(dirfd, path, buf, flags);
}
EXPORT int __fxstatat64(int ver, int dirfd, const char *path, void *buf, int flags) {
    (void)ver;
    return stat_at(dirfd, path, buf, flags);
}

EXPORT int statx(int dirfd, const char *path, int flags, unsigned int mask, void *buf) {
    return (int)result(call(local_lookup(dirfd, path), NR_statx, dirfd, (long)path, flags, mask, (long)buf));
}

/* --- access, readlink ---------------------------------------------------------------- */
EXPORT int access(const char *path, int mode) {
    return (int)result(call(local(AT_FDCWD, path), NR_faccessat, AT_FDCWD, (long)path, mode, 0, 0));
}

EXPORT int faccessat(int dirfd, const char *path, int mode, int flags) {
    if (flags == 0)
        return (int)result(call(local_lookup(dirfd, path), NR_faccessat, dirfd, (long)path, mode, 0, 0));
    return (int)result(call(local_lookup(dirfd, path), NR_faccessat2, dirfd, (long)path, mode, flags, 0));
}

EXPORT ssize_t readlink(const char *path, char *buf, size_t size) {
    return result(call(local(AT_FDCWD, path), NR_readlinkat, AT_FDCWD, (long)path, (long)buf, (long)size, 0));
}

EXPORT ssize_t readlinkat(int dirfd, const char *path, char *buf, size_t size) {
    return result(call(local_lookup(dirfd, path), NR_readlinkat, dirfd, (long)path, (long)buf, (long)size, 0));
}

/* statfs: libselinux's constructor asks it of /sys/fs/selinux and /selinux in every
 * program linked with it (ls, cp, sed, find...). glibc's statfs64 is the same call. */
EXPORT int statfs(const char *path, void *buf) {
    return (int)result(call(local(AT_FDCWD, path), NR_statfs, (long)path, (long)buf, 0, 0, 0));
}
EXPORT int statfs64(const char *path, void *buf) { return statfs(path, buf); }

/* --- mkstemp family: glibc's makes its open inside libc (__gen_tempname), where no
 * preload sees it; compilers make a temporary file or two per compile (gcc's mkstemps).
 * The same steps here, with glibc's rules: the template must end in XXXXXX (before a
 * suffix of suffixlen bytes), those become random letters and digits, and the file is
 * created with O_RDWR | O_CREAT | O_EXCL and mode 0600 (plus mkostemp's flags), again
 * with other letters while the name exists. Each attempt's name is decided like any
 * open's: local ones from the stub, the others stop. A template this library cannot
 * read, or any call before it is set up, goes to libc's own function. */
enum { NR_getrandom = 318 };
#define O_ACCMODE 03
#define TEMP_ATTEMPTS (62 * 62 * 62)
typedef int (*mkostemps_fn)(char *, int, int);
typedef int (*mkostemp_fn)(char *, int);   /* mkstemps has the same arguments */
typedef int (*mkstemp_fn)(char *);

static int next_temp(const char *name, char *tmpl, int suffixlen, int flags, int shape) {
    void *next = dlsym ? dlsym(RTLD_NEXT, name) : 0;
    if (!next) { set_errno(ENOSYS); return -1; }
    if (shape == 0) return ((mkstemp_fn)next)(tmpl);
    if (shape == 1) return ((mkostemp_fn)next)(tmpl, flags);
    if (shape == 2) return ((mkostemp_fn)next)(tmpl, suffixlen);
    return ((mkostemps_fn)next)(tmpl, suffixlen, flags);
}

/* shape: 0 mkstemp, 1 mkostemp, 2 mkstemps, 3 mkostemps (which arguments the name takes) */
static int gen_tempname(const char *name, char *tmpl, int suffixlen, int flags, int shape) {
    static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    if (!configured() || !tmpl || !readable(tmpl) || suffixlen < 0) return next_temp(name, tmpl, suffixlen, flags, shape);
    size_t len = slen(tmpl);
    if (len < 6 + (size_t)suffixlen) { set_errno(EINVAL); return -1; }
    char *x = tmpl + len - 6 - suffixlen;
    for (int i = 0; i < 6; i++)
        if (x[i] != 'X') { set_errno(EINVAL); return -1; }
    for (long attempt = 0; attempt < TEMP_ATTEMPTS; attempt++) {
        unsigned char rnd[6];
        if (direct(NR_getrandom, (long)rnd, sizeof rnd, 1 /* GRND_NONBLOCK */, 0, 0) != (long)sizeof rnd) {
            unsigned long t = (unsigned long)__builtin_ia32_rdtsc() ^ (unsigned long)attempt * 0x9E3779B97F4A7C15UL;
            for (int i = 0; i < 6; i++, t >>= 8) rnd[i] = (unsigned char)(t ^ (t >> 29));
        }
        for (int i = 0; i < 6; i++) x[i] = letters[rnd[i] % 62];
        long fd = call(local(AT_FDCWD, tmpl), NR_openat, AT_FDCWD, (long)tmpl,
                       (flags & ~O_ACCMODE) | O_RDWR | O_CREAT | O_EXCL, 0600, 0);
        if (fd != -EEXIST) return (int)result(fd);
    }
    set_errno(EEXIST);
    return -1;
}

EXPORT int mkstemp(char *tmpl) { return gen_tempname("mkstemp", tmpl, 0, 0, 0); }
EXPORT int mkstemp64(char *tmpl) { return gen_tempname("mkstemp64", tmpl, 0, 0, 0); }
EXPORT int mkostemp(char *tmpl, int flags) { return gen_tempname("mkostemp", tmpl, 0, flags, 1); }
EXPORT int mkostemp64(char *tmpl, int flags) { return gen_tempname("mkostemp64", tmpl, 0, flags, 1); }
EXPORT int mkstemps(char *tmpl, int suffixlen) { return gen_tempname("mkstemps", tmpl, suffixlen, 0, 2); }
EXPORT int mkstemps64(char *tmpl, int suffixlen) { return gen_tempname("mkstemps64", tmpl, suffixlen, 0, 2); }
EXPORT int mkostemps(char *tmpl, int suffixlen, int flags) {
    return gen_tempname("mkostemps", tmpl, suffixlen, flags, 3);
}
EXPORT int mkostemps64(char *tmpl, int suffixlen, int flags) {
    return gen_tempname("mkostemps64", tmpl, suffixlen, flags, 3);
}

/* --- exec: shells and subprocess modules try execve in each PATH directory; a program
 * at a local path needs nothing from the supervisor (it follows the exec by its event).
 *
 * Preload order: symbols resolve in LD_PRELOAD order, and this library issues syscalls
 * itself, so a preload listed after it (faketime appends its own) would never see the
 * calls this library answers. An exec whose LD_PRELOAD names another library after this
 * one gets this one moved to the end: the others interpose first and reach this library
 * as their next definition, so their answers are the same with and without it. */
#define MAX_ENV 4096
#define MAX_PRELOAD 4096

static int is_sep(char c) { return c == ':' || c == ' ' || c == '\t'; }

static int token_is(const char *t, size_t n, const char *word) {
    size_t i = 0;
    for (; i < n; i++) if (!word[i] || word[i] != t[i]) return 0;
    return word[i] == 0;
}

/* The index of an LD_PRELOAD entry of envp naming another library after this one; -1. */
/* Can envp be read here, as execve will (an array of strings up to a null pointer)? A
 * bad pointer is the kernel's EFAULT to give, not a crash of ours. */
#define MAX_ARG_STRLEN (32 * PAGE_SIZE)
static SLOW int env_readable(char *const envp[]) {
    unsigned long page = ~0UL;   /* none checked yet */
    for (int i = 0; i < MAX_ENV; i++) {
        unsigned long slot = (unsigned long)&envp[i];
        if (slot / PAGE_SIZE != page) {
            if (!word_readable(slot)) return 0;
            page = slot / PAGE_SIZE;
        }
        if (!envp[i]) break;
        if (!string_readable(envp[i], MAX_ARG_STRLEN)) return 0;
    }
    return 1;
}

static int preload_to_fix(char *const envp[]) {
    if (!self_path[0] || !envp || !env_readable(envp)) return -1;
    for (int i = 0; envp[i] && i < MAX_ENV; i++) {
        if (!starts(envp[i], "LD_PRELOAD=")) continue;
        const char *v = envp[i] + 11;
        if (slen(v) > MAX_PRELOAD) return -1;
        int seen_self = 0;
        while (*v) {
            while (is_sep(*v)) v++;
            const char *t = v;
            while (*v && !is_sep(*v)) v++;
            if (v == t) break;
            if (token_is(t, (size_t)(v - t), self_path)) seen_self = 1;
            else if (seen_self) return i;
        }
        return -1;
    }
    return -1;
}

/* Exec with envp's LD_PRELOAD (entry idx) reordered: built on the stack, as exec may
 * follow vfork (no allocation in the child). */
static __attribute__((noinline)) long exec_preload_last(int at, long dirfd, const char *path, char *const argv[],
                                                         char *const envp[], int idx, long flags) {
    size_t n = 0;
    while (envp[n]) n++;
    const char *v = envp[idx] + 11;
    char value[slen(v) + slen(self_path) + 16];
    char *vec[n + 1];
    size_t o = 0;
    for (const char *c = "LD_PRELOAD="; *c; c++) value[o++] = *c;
    while (*v) {
        while (is_sep(*v)) v++;
        const char *t = v;
        while (*v && !is_sep(*v)) v++;
        if (v == t || token_is(t, (size_t)(v - t), self_path)) continue;
        while (t < v) value[o++] = *t++;
        value[o++] = ':';
    }
    for (const char *c = self_path; *c; c++) value[o++] = *c;
    value[o] = 0;
    for (size_t i = 0; i < n; i++) vec[i] = envp[i];
    vec[idx] = value;
    vec[n] = 0;
    if (at)
        return call(local((int)dirfd, path), NR_execveat, dirfd, (long)path, (long)argv, (long)vec, flags);
    return call(local(AT_FDCWD, path), NR_execve, (long)path, (long)argv, (long)vec, 0, 0);
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[]) {
    int fix = preload_to_fix(envp);
    if (fix >= 0) return (int)result(exec_preload_last(0, AT_FDCWD, path, argv, envp, fix, 0));
    return (int)result(call(local(AT_FDCWD, path), NR_execve, (long)path, (long)argv, (long)envp, 0, 0));
}

EXPORT int execv(const char *path, char *const argv[]) {
    return execve(path, argv, environ);
}

EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags) {
    int fix = preload_to_fix(envp);
    if (fix >= 0) return (int)result(exec_preload_last(1, dirfd, path, argv, envp, fix, flags));
    return (int)result(call(local(dirfd, path), NR_execveat, dirfd, (long)path, (long)argv, (long)envp, flags));
}

/* execvp's PATH search happens inside libc: do it here, with glibc's rules, so that each
 * probe goes through execve above. */
static int get_errno(void) { return __errno_location ? *__errno_location() : 0; }

static void exec_script(const char *path, char *const argv[], char *const envp[]) {
    int argc = 0;
    while (argv[argc]) argc++;
    char *args[argc + 3];
    args[0] = (char *)"/bin/sh";
    args[1] = (char *)path;
    for (int i = 1; i <= argc; i++) args[i + 1] = argv[i];
    if (argc == 0) args[2] = 0;
    execve("/bin/sh", args, envp);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[]) {
    if (!file || !*file) { set_errno(ENOENT); return -1; }
    for (const char *c = file; *c; c++) {
        if (*c == '/') {
            execve(file, argv, envp);
            if (get_errno() == ENOEXEC) exec_script(file, argv, envp);
            return -1;
        }
    }
    size_t flen = slen(file);
    if (flen > 255) { set_errno(ENAMETOOLONG); return -1; }
    const char *path = env("PATH");
    if (!path) path = "/bin:/usr/bin";
    int got_eacces = 0;
    for (const char *p = path;; ) {
        const char *q = p;
        while (*q && *q != ':') q++;
        size_t n = (size_t)(q - p);
        char buf[SMALL_PATH];
        if (n + 1 + flen + 1 > sizeof buf) {   /* libc searches it all over, with room */
            typedef int (*execvpe_fn)(const char *, char *const[], char *const[]);
            execvpe_fn next = dlsym ? (execvpe_fn)dlsym(RTLD_NEXT, "execvpe") : 0;
            return next ? next(file, argv, envp) : -1;
        }
        size_t o = 0;
        for (size_t i = 0; i < n; i++) buf[o++] = p[i];
        if (n) buf[o++] = '/';              /* an empty element is the current directory */
        for (size_t i = 0; i <= flen; i++) buf[o++] = file[i];
        execve(buf, argv, envp);
        int e = get_errno();
        if (e == ENOEXEC) { exec_script(buf, argv, envp); e = get_errno(); }
        if (e == EACCES) got_eacces = 1;
        else if (e != ENOENT && e != ESTALE && e != ENOTDIR && e != ENODEV && e != ETIMEDOUT) return -1;
        if (!*q) break;
        p = q + 1;
    }
    if (got_eacces) set_errno(EACCES);
    return -1;
}

EXPORT int execvp(const char *file, char *const argv[]) { return execvpe(file, argv, environ); }

/* execl* build an argv and exec as above (libc's own would call its internal execve).
 * The argument list ends with a null pointer; execle's envp follows it. */
static int exec_list(const char *target, int search, int with_envp, const char *arg, va_list ap) {
    va_list count;
    int n = 0;
    va_copy(count, ap);
    if (arg) while (va_arg(count, char *)) n++;
    va_end(count);
    char *argv[n + 2];
    argv[0] = (char *)arg;
    for (int i = 1; i <= n; i++) argv[i] = va_arg(ap, char *);
    argv[n + 1] = 0;
    char **envp = environ;
    if (with_envp) {
        if (arg) (void)va_arg(ap, char *);   /* the terminating null */
        envp = va_arg(ap, char **);
    }
    return search ? execvpe(target, argv, envp) : execve(target, argv, envp);
}

EXPORT int execl(const char *path, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    int r = exec_list(path, 0, 0, arg, ap);
    va_end(ap);
    return r;
}

EXPORT int execlp(const char *file, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    int r = exec_list(file, 1, 0, arg, ap);
    va_end(ap);
    return r;
}

EXPORT int execle(const char *path, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    int r = exec_list(path, 0, 1, arg, ap);
    va_end(ap);
    return r;
}

/* --- realpath: libc's own readlinks each component from inside libc, where no preload
 * sees them. Resolve here, with the same syscalls from the stub, as long as every step is
 * local; on the first step that is not, hand the whole call to libc's realpath (whose
 * calls then stop and are answered by the supervisor). */
typedef char *(*realpath_fn)(const char *, char *);

/* 1 resolved into out (SMALL_PATH bytes), 0 failed with errno set, -1 not ours to
 * resolve (a step that is not local, or longer than our small buffers: libc's realpath
 * then does it all). */
static int resolve(const char *path, char *out) {
    char rest[SMALL_PATH], link[SMALL_PATH];
    size_t o, links = 0;
    if (!local(AT_FDCWD, path)) return -1;
    if (!path[0]) { set_errno(ENOENT); return 0; }
    if (slen(path) >= sizeof rest) return -1;
    for (size_t i = 0; (rest[i] = path[i]); i++) {}
    if (path[0] == '/') {
        out[0] = '/'; o = 1;
    } else {
        long n = direct(NR_getcwd, (long)out, SMALL_PATH, 0, 0, 0);
        if (n <= 0) return -1;
        o = (size_t)n - 1;
        if (o > 1 || out[0] != '/') { out[o++] = '/'; }
    }
    out[o] = 0;
    const char *p = rest;
    while (*p) {
        while (*p == '/') p++;
        if (!*p) break;
        const char *q = p;
        while (*q && *q != '/') q++;
        size_t n = (size_t)(q - p);
        if (n == 1 && p[0] == '.') { p = q; continue; }
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (o > 1) { o--; while (o > 1 && out[o - 1] != '/') o--; }
            out[o] = 0;
            p = q;
            continue;
        }
        size_t start = o;
        if (o + n + 2 > SMALL_PATH) return -1;
        for (size_t i = 0; i < n; i++) out[o++] = p[i];
        out[o] = 0;
        if (!local(AT_FDCWD, out)) return -1;
        long r = direct(NR_readlinkat, AT_FDCWD, (long)out, (long)link, sizeof link - 1, 0);
        if (r == -EINVAL) {            /* not a link: a directory if anything follows */
            const char *next = q;
            while (*next == '/') next++;
            if (*next || *q == '/') {
                unsigned char st[144];
                long s2 = direct(NR_newfstatat, AT_FDCWD, (long)out, (long)st, 0, 0);
                if (s2 < 0) { set_errno((int)-s2); return 0; }
                if ((*(unsigned int *)(st + 24) & S_IFMT) != S_IFDIR) { set_errno(ENOTDIR); return 0; }
            }
            out[o++] = '/';
            out[o] = 0;
            p = q;
            continue;
        }
        if (r < 0) { set_errno((int)-r); return 0; }
        if (++links > 40) { set_errno(ELOOP); return 0; }
        /* rest = link target + what followed the link (built in `link`, then copied) */
        size_t tail = slen(q);
        if ((size_t)r + tail + 1 > sizeof link) return -1;
        for (size_t i = 0; i <= tail; i++) link[r + i] = q[i];
        for (size_t i = 0; i <= (size_t)r + tail; i++) rest[i] = link[i];
        p = rest;
        if (link[0] == '/') { o = 1; } else { o = start; }
        out[o] = 0;
    }
    if (o > 1 && out[o - 1] == '/') o--;
    out[o] = 0;
    return 1;
}

EXPORT char *realpath(const char *path, char *resolved) {
    char buf[SMALL_PATH];
    int r = path ? resolve(path, buf) : -1;
    if (r < 0) {
        realpath_fn next = dlsym ? (realpath_fn)dlsym(RTLD_NEXT, "realpath") : 0;
        if (!next) { set_errno(ENOMEM); return 0; }
        return next(path, resolved);
    }
    if (r == 0) return 0;
    char *dst = resolved ? resolved : (char *)malloc(slen(buf) + 1);
    if (!dst) { set_errno(ENOMEM); return 0; }
    for (size_t i = 0; (dst[i] = buf[i]); i++) {}
    return dst;
}

EXPORT char *canonicalize_file_name(const char *path) { return realpath(path, 0); }

/* --- namespace and attribute changes: one syscall each; two-path calls run in the
 * process only when both paths are local. */
static int both_local(int fd1, const char *p1, int fd2, const char *p2) {
    return local(fd1, p1) && local(fd2, p2);
}

EXPORT int mkdir(const char *path, mode_t mode) {
    return (int)result(call(local(AT_FDCWD, path), NR_mkdirat, AT_FDCWD, (long)path, mode, 0, 0));
}
EXPORT int mkdirat(int dirfd, const char *path, mode_t mode) {
    return (int)result(call(local(dirfd, path), NR_mkdirat, dirfd, (long)path, mode, 0, 0));
}
EXPORT int unlink(const char *path) {
    return (int)result(call(local(AT_FDCWD, path), NR_unlinkat, AT_FDCWD, (long)path, 0, 0, 0));
}
EXPORT int rmdir(const char *path) {
    return (int)result(call(local(AT_FDCWD, path), NR_unlinkat, AT_FDCWD, (long)path, AT_REMOVEDIR, 0, 0));
}
EXPORT int unlinkat(int dirfd, const char *path, int flags) {
    return (int)result(call(local(dirfd, path), NR_unlinkat, dirfd, (long)path, flags, 0, 0));
}
EXPORT int renameat2(int olddirfd, const char *old, int newdirfd, const char *new, unsigned int flags) {
    return (int)result(call(both_local(olddirfd, old, newdirfd, new), NR_renameat2,
                            olddirfd, (long)old, newdirfd, (long)new, flags));
}
EXPORT int renameat(int olddirfd, const char *old, int newdirfd, const char *new) {
    return renameat2(olddirfd, old, newdirfd, new, 0);
}
EXPORT int rename(const char *old, const char *new) { return renameat2(AT_FDCWD, old, AT_FDCWD, new, 0); }

EXPORT int linkat(int olddirfd, const char *old, int newdirfd, const char *new, int flags) {
    return (int)result(call(both_local(olddirfd, old, newdirfd, new), NR_linkat,
                            olddirfd, (long)old, newdirfd, (long)new, flags));
}
EXPORT int link(const char *old, const char *new) { return linkat(AT_FDCWD, old, AT_FDCWD, new, 0); }

/* Only where the link is made matters: its target is just a string. */
EXPORT int symlinkat(const char *target, int newdirfd, const char *linkpath) {
    return (int)result(call(local(newdirfd, linkpath), NR_symlinkat, (long)target, newdirfd, (long)linkpath, 0, 0));
}
EXPORT int symlink(const char *target, const char *linkpath) { return symlinkat(target, AT_FDCWD, linkpath); }

EXPORT int truncate(const char *path, long length) {
    return (int)result(call(local(AT_FDCWD, path), NR_truncate, (long)path, length, 0, 0, 0));
}
EXPORT int truncate64(const char *path, long length) { return truncate(path, length); }

EXPORT int chmod(const char *path, mode_t mode) {
    return (int)result(call(local(AT_FDCWD, path), NR_fchmodat, AT_FDCWD, (long)path, mode, 0, 0));
}

typedef int (*fchmodat_fn)(int, const char *, mode_t, int);

/* libc emulates AT_SYMLINK_NOFOLLOW with an O_PATH open and a chmod of /proc/self/fd/N;
 * fchmodat2 (Linux 6.6) does it in one call. Older kernels: libc's way. */
EXPORT int fchmodat(int dirfd, const char *path, mode_t mode, int flags) {
    int fast = local(dirfd, path);
    if (flags == 0)
        return (int)result(call(fast, NR_fchmodat, dirfd, (long)path, mode, 0, 0));
    long r = call(fast, NR_fchmodat2, dirfd, (long)path, mode, flags, 0);
    if (r == -ENOSYS) {
        fchmodat_fn next = dlsym ? (fchmodat_fn)dlsym(RTLD_NEXT, "fchmodat") : 0;
        if (next) return next(dirfd, path, mode, flags);
    }
    return (int)result(r);
}

EXPORT int fchownat(int dirfd, const char *path, unsigned uid, unsigned gid, int flags) {
    return (int)result(call(local(dirfd, path), NR_fchownat, dirfd, (long)path, uid, gid, flags));
}
EXPORT int chown(const char *path, unsigned uid, unsigned gid) { return fchownat(AT_FDCWD, path, uid, gid, 0); }
EXPORT int lchown(const char *path, unsigned uid, unsigned gid) {
    return fchownat(AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW);
}

/* A null path (futimens) acts on dirfd itself: local when it is an ordinary descriptor. */
EXPORT int utimensat(int dirfd, const char *path, const void *times, int flags) {
    int fast = path ? local(dirfd, path) : fd_is_local(dirfd);
    return (int)result(call(fast, NR_utimensat, dirfd, (long)path, (long)times, flags, 0));
}

struct timeval_ { long sec, usec; };
struct timespec_ { long sec, nsec; };

static int utimes_at(int dirfd, const char *path, const struct timeval_ *tv, int flags) {
    struct timespec_ ts[2];
    if (tv) {
        for (int i = 0; i < 2; i++) {
            if (tv[i].usec < 0 || tv[i].usec >= 1000000) { set_errno(EINVAL); return -1; }
            ts[i].sec = tv[i].sec;
            ts[i].nsec = tv[i].usec * 1000;
        }
    }
    return utimensat(dirfd, path, tv ? ts : 0, flags);
}
EXPORT int utimes(const char *path, const struct timeval_ tv[2]) { return utimes_at(AT_FDCWD, path, tv, 0); }
EXPORT int lutimes(const char *path, const struct timeval_ tv[2]) {
    return utimes_at(AT_FDCWD, path, tv, AT_SYMLINK_NOFOLLOW);
}
EXPORT int futimesat(int dirfd, const char *path, const struct timeval_ tv[2]) {
    return utimes_at(dirfd, path, tv, 0);
}

struct utimbuf_ { long actime, modtime; };
EXPORT int utime(const char *path, const struct utimbuf_ *times) {
    struct timespec_ ts[2];
    if (times) {
        ts[0].sec = times->actime; ts[0].nsec = 0;
        ts[1].sec = times->modtime; ts[1].nsec = 0;
    }
    return utimensat(AT_FDCWD, path, times ? ts : 0, 0);
}

EXPORT int futimens(int fd, const void *times) { return utimensat(fd, 0, times, 0); }
EXPORT int futimes(int fd, const struct timeval_ tv[2]) { return utimes_at(fd, 0, tv, 0); }

/* --- fopen: libc opens from inside itself. Open here, then let libc wrap the descriptor;
 * modes fdopen cannot express (",ccs=", "m") go to libc's fopen, whose open then stops. */
typedef void *(*fopen_fn)(const char *, const char *);

static void *fopen_via(const char *name, const char *path, const char *mode) {
    int flags, access;
    char base[4] = {0};
    int extra = 0;
    switch (mode ? mode[0] : 0) {
    case 'r': access = O_RDONLY; flags = 0; break;
    case 'w': access = O_WRONLY; flags = O_CREAT | O_TRUNC; break;
    case 'a': access = O_WRONLY; flags = O_CREAT | O_APPEND; break;
    default: extra = 1; access = flags = 0;
    }
    for (const char *m = mode && !extra ? mode + 1 : ""; *m && !extra; m++) {
        switch (*m) {
        case '+': access = O_RDWR; break;
        case 'x': flags |= O_EXCL; break;
        case 'e': flags |= O_CLOEXEC; break;
        case 'b': case 't': case 'c': break;
        default: extra = 1;   /* 'm', ",ccs=", anything new */
        }
    }
    if (!configured() || extra || !path) {
        fopen_fn next = dlsym ? (fopen_fn)dlsym(RTLD_NEXT, name) : 0;
        if (!next) { set_errno(ENOMEM); return 0; }
        return next(path, mode);
    }
    int fd = open_at(AT_FDCWD, path, access | flags, 0666);
    if (fd < 0) return 0;
    base[0] = mode[0];
    if (access == O_RDWR) base[1] = '+';
    void *f = fdopen(fd, base);
    if (!f) {
        int saved = __errno_location ? *__errno_location() : 0;
        traced(NR_close, fd, 0, 0, 0, 0);
        set_errno(saved);
    }
    return f;
}

EXPORT void *fopen(const char *path, const char *mode) { return fopen_via("fopen", path, mode); }
EXPORT void *fopen64(const char *path, const char *mode) { return fopen_via("fopen64", path, mode); }

/* --- watched numbers: a local file at a number an extra filter watches ----------------
 * A virtual descriptor below the base gets an extra seccomp filter stopping the calls
 * that name its number, and filters outlive the descriptor (and exec): a local file the
 * kernel later gives that number (a Python's next import, a compiler's next source)
 * would stop on every call. The filters say which numbers they watch (a probe close(),
 * see tracer/seccomp.py FD_PROBE_FD); on those numbers the calls below look at what the
 * descriptor is, with one readlink of /proc/thread-self/fd/N from the stub, and issue a local
 * file's call from the stub. A descriptor of a file under defer_under, or one that
 * cannot be told, is the supervisor's: its call stops as before. What is known is read
 * at start and again after an open the supervisor answered (a virtual open adds the
 * filters); a number learned late only costs its stops. Other numbers go to libc's own
 * function (read and close stay cancellation points; without glibc's __read and
 * friends, the plain syscall). */
#define FD_PROBE_FD 0xF1D00000L
#define FD_PROBE_BIAS 1024
#define MAX_WATCHED 4096
#define MAX_FD_FILTERS 256
#define EBADF 9
#define AT_EMPTY_PATH 0x1000
enum { NR_read = 0, NR_write = 1, NR_pread64 = 17, NR_pwrite64 = 18, NR_lseek = 8 };

static unsigned char watched_fds[MAX_WATCHED / 8];
static int fd_filters_known;

static void learn_watched(void) {
    if (!ready || !defer_under[0]) return;
    int k = __atomic_load_n(&fd_filters_known, __ATOMIC_RELAXED);
    for (; k < MAX_FD_FILTERS; k++) {
        long lo = -traced(NR_close, FD_PROBE_FD | (long)k << 1, 0, 0, 0, 0) - FD_PROBE_BIAS;
        if (lo < 0) break;   /* EBADF: no filter k (one call in a process without any) */
        long hi = -traced(NR_close, FD_PROBE_FD | (long)k << 1 | 1, 0, 0, 0, 0) - FD_PROBE_BIAS;
        if (hi <= lo || hi > 4095 - FD_PROBE_BIAS) break;
        for (long fd = lo; fd < hi && fd < MAX_WATCHED; fd++)
            __atomic_fetch_or(&watched_fds[fd >> 3], (unsigned char)(1u << (fd & 7)), __ATOMIC_RELAXED);
    }
    __atomic_store_n(&fd_filters_known, k, __ATOMIC_RELAXED);
}

static int watched(long fd) {
    return fd >= 0 && fd < MAX_WATCHED && fd < fd_base
        && (__atomic_load_n(&watched_fds[fd >> 3], __ATOMIC_RELAXED) >> (fd & 7) & 1);
}

static long after_supervised(long nr, long r) {
    if (nr == NR_openat && r >= 0 && r < fd_base && !watched(r)) learn_watched();
    return r;
}

/* 1: the descriptor at this watched number is surely a local file (or pipe, socket...);
 * 0: it is the supervisor's, or cannot be told. */
static SLOW int watched_but_local(int fd) {
    char link[40] = "/proc/thread-self/fd/", target[SMALL_PATH], digits[12];
    size_t i = 21;   /* this thread's table: one may have unshared it */
    int d = 0;
    for (unsigned v = (unsigned)fd; d == 0 || v; v /= 10) digits[d++] = (char)('0' + v % 10);
    while (d) link[i++] = digits[--d];
    link[i] = 0;
    long n = direct(NR_readlinkat, AT_FDCWD, (long)link, (long)target, sizeof target - 1, 0);
    if (n <= 0 || n >= (long)sizeof target - 1) return 0;
    target[n] = 0;
    if (target[0] != '/') return 1;   /* pipe:[N], socket:[N], anon_inode:...: never virtual */
    size_t u = slen(defer_under);
    return !(starts(target, defer_under) && (target[u] == '/' || target[u] == 0));
}

static int fast_fd(int fd) { return ready && defer_under[0] && watched(fd) && watched_but_local(fd); }

/* --- reads of a marked file ----------------------------------------------------------
 * A virtual descriptor is a descriptor of its sparse cache file; its reads stop so that
 * the supervisor can fetch the range first and keep atime. Once every byte is local and a
 * read would change nothing it keeps, the supervisor marks the file with read_mark (an
 * extended attribute whose value is its run's own: a mark left by another run, or by a
 * run that died, never matches) and takes the mark off before anything that could change
 * that. A read or pread on a watched number whose file carries the mark goes to the
 * kernel from the stub: one fgetxattr instead of a stop. Anything else (no mark, no
 * extended attributes on the cache's filesystem, a file the caller may not read the
 * attributes of) is decided as before. */
enum { NR_fgetxattr = 193 };

static int read_marked(int fd) {
    if (!mark_len) return 0;
    char value[sizeof mark_value];
    long n = direct(NR_fgetxattr, fd, (long)mark_name, (long)value, sizeof value, 0);
    if (n != mark_len) return 0;
    for (long i = 0; i < n; i++)
        if (value[i] != mark_value[i]) return 0;
    return 1;
}

static int fast_read_fd(int fd) {
    return ready && defer_under[0] && watched(fd) && (read_marked(fd) || watched_but_local(fd));
}

extern ssize_t __read(int, void *, size_t) __attribute__((weak));
extern ssize_t __write(int, const void *, size_t) __attribute__((weak));
extern ssize_t __pread64(int, void *, size_t, long) __attribute__((weak));
extern ssize_t __pwrite64(int, const void *, size_t, long) __attribute__((weak));
extern int __close(int) __attribute__((weak));

EXPORT ssize_t read(int fd, void *buf, size_t n) {
    if (fast_read_fd(fd)) return result(direct(NR_read, fd, (long)buf, (long)n, 0, 0));
    return __read ? __read(fd, buf, n) : result(traced(NR_read, fd, (long)buf, (long)n, 0, 0));
}

EXPORT ssize_t write(int fd, const void *buf, size_t n) {
    if (fast_fd(fd)) return result(direct(NR_write, fd, (long)buf, (long)n, 0, 0));
    return __write ? __write(fd, buf, n) : result(traced(NR_write, fd, (long)buf, (long)n, 0, 0));
}

EXPORT ssize_t pread64(int fd, void *buf, size_t n, long off) {
    if (fast_read_fd(fd)) return result(direct(NR_pread64, fd, (long)buf, (long)n, off, 0));
    return __pread64 ? __pread64(fd, buf, n, off) : result(traced(NR_pread64, fd, (long)buf, (long)n, off, 0));
}
EXPORT ssize_t pread(int fd, void *buf, size_t n, long off) { return pread64(fd, buf, n, off); }

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, long off) {
    if (fast_fd(fd)) return result(direct(NR_pwrite64, fd, (long)buf, (long)n, off, 0));
    return __pwrite64 ? __pwrite64(fd, buf, n, off) : result(traced(NR_pwrite64, fd, (long)buf, (long)n, off, 0));
}
EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, long off) { return pwrite64(fd, buf, n, off); }

EXPORT long lseek64(int fd, long off, int whence) {
    return result(call(fast_fd(fd), NR_lseek, fd, off, whence, 0, 0));
}
EXPORT long lseek(int fd, long off, int whence) { return lseek64(fd, off, whence); }

EXPORT int close(int fd) {
    if (fast_fd(fd)) return (int)result(direct(NR_close, fd, 0, 0, 0, 0));
    return __close ? __close(fd) : (int)result(traced(NR_close, fd, 0, 0, 0, 0));
}

/* As glibc's: a negative descriptor is EBADF (not AT_FDCWD's directory). */
EXPORT int fstat(int fd, void *buf) {
    if (fd < 0) { set_errno(EBADF); return -1; }
    return (int)result(call(fast_fd(fd), NR_newfstatat, fd, (long)"", (long)buf, AT_EMPTY_PATH, 0));
}
EXPORT int fstat64(int fd, void *buf) { return fstat(fd, buf); }
EXPORT int __fxstat(int ver, int fd, void *buf) { (void)ver; return fstat(fd, buf); }
EXPORT int __fxstat64(int ver, int fd, void *buf) { (void)ver; return fstat(fd, buf); }

/* --- euidaccess/eaccess: shells look each command up with it (bash: stat, then eaccess),
 * and glibc's makes its stat and access calls inside libc, where no preload sees them.
 * The same steps here, in glibc's order and with its rules, each from the stub when its
 * path is local. A set-user-ID or set-group-ID process gets libc's own (which stops). */
enum { NR_getuid = 102, NR_getgid = 104, NR_geteuid = 107, NR_getegid = 108 };
typedef int (*euidaccess_fn)(const char *, int);

static int euidaccess_via(const char *name, const char *path, int mode) {
    if (traced(NR_getuid, 0, 0, 0, 0, 0) != traced(NR_geteuid, 0, 0, 0, 0, 0)
        || traced(NR_getgid, 0, 0, 0, 0, 0) != traced(NR_getegid, 0, 0, 0, 0, 0)) {
        euidaccess_fn next = dlsym ? (euidaccess_fn)dlsym(RTLD_NEXT, name) : 0;
        if (!next) { set_errno(ENOSYS); return -1; }
        return next(path, mode);
    }
    unsigned long st[18];   /* struct stat: 144 bytes on x86_64 */
    if (result(call(local_lookup(AT_FDCWD, path), NR_newfstatat, AT_FDCWD, (long)path, (long)st, 0, 0)) != 0)
        return -1;
    mode &= 7;   /* R_OK | W_OK | X_OK */
    if (mode == 0) return 0;   /* F_OK: the file exists */
    return (int)result(call(local(AT_FDCWD, path), NR_faccessat, AT_FDCWD, (long)path, mode, 0, 0));
}

EXPORT int euidaccess(const char *path, int mode) { return euidaccess_via("euidaccess", path, mode); }
EXPORT int eaccess(const char *path, int mode) { return euidaccess_via("eaccess", path, mode); }
