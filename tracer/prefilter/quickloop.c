/* The tracer's quick loop: waits for ptrace stops and answers, without the Python loop,
 * the ones that need no decision, so the traced program is resumed within microseconds:
 *
 *  - a new child's first stop (its auto-attach SIGSTOP, never delivered);
 *  - fork, vfork and clone events (the child is booked as traced), exec events;
 *  - a signal about to be delivered (resumed with it; a group-stop without it);
 *  - a seccomp stop of a path call whose path is absolute and plainly outside every
 *    virtual root (the same lexical rule as the preloaded library: lexical.h);
 *  - an exit.
 *
 * Everything else is returned to the Python loop (tracer/tracer.py), as is every status
 * of a thread Python marked special (a stop a worker owns, an injected call on its way,
 * a call awaited to its exit, a signal held back and sent again). What Python must know
 * of the events answered here (who was born, who exec'd, who is gone) is written to a log
 * it reads before it handles anything else, so its books are as they would have been.
 *
 * All calls come from the tracing thread (ptrace takes requests from it alone), with the
 * GIL let go (ctypes), except `om_flags` and `om_list`, which may come from any thread
 * (Tracer._mark, Tracer.traced): hence the lock. */

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lexical.h"

#define EXPORT __attribute__((visibility("default")))

#define EV_FORK 1
#define EV_VFORK 2
#define EV_CLONE 3
#define EV_EXEC 4
#define EV_SECCOMP 7
#define SYSCALL_TRAP (SIGTRAP | 0x80)

#define NR_clone 56
#define NR_vfork 58
#define NR_clone3 435
#define CLONE_VM_ 0x100
#define CLONE_VFORK_ 0x4000

/* --- threads: what the loop knows of each, by tid ----------------------------------- */
#define F_KNOWN 1      /* traced, in the books */
#define F_SPECIAL 2    /* every status goes to Python */
#define F_EXPECTED 4   /* announced by its parent's event; first stop not seen yet */
#define F_EARLY 8      /* first stop seen before its parent's event: left stopped */

#define SLOTS (1 << 17)
static int keys[SLOTS];            /* 0: empty (linear probing, deletion by shifting back) */
static unsigned char flags_of[SLOTS];
static int live;
static int pending;                /* threads EXPECTED or EARLY: their first stop is due */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned home(int tid) { return ((unsigned)tid * 2654435761u) & (SLOTS - 1); }

static int slot(int tid) {
    for (unsigned i = home(tid); keys[i]; i = (i + 1) & (SLOTS - 1))
        if (keys[i] == tid) return (int)i;
    return -1;
}

static unsigned get(int tid) {
    int i = slot(tid);
    return i < 0 ? 0 : flags_of[i];
}

static void drop_slot(unsigned i) {
    keys[i] = 0;
    live--;
    for (unsigned j = (i + 1) & (SLOTS - 1); keys[j]; j = (j + 1) & (SLOTS - 1)) {
        unsigned h = home(keys[j]);
        /* may the entry at j move to the hole at i? (its home is not between i and j) */
        if ((j > i && (h <= i || h > j)) || (j < i && h <= i && h > j)) {
            keys[i] = keys[j];
            flags_of[i] = flags_of[j];
            keys[j] = 0;
            i = j;
        }
    }
}

/* Set or clear flags; returns 0 when the table is full (more threads than slots / 2). */
static int change(int tid, unsigned set, unsigned clear) {
    int i = slot(tid);
    if (i < 0) {
        if (!set) return 1;
        if (live >= SLOTS / 2) return 0;
        unsigned k = home(tid);
        while (keys[k]) k = (k + 1) & (SLOTS - 1);
        keys[k] = tid;
        flags_of[k] = 0;
        live++;
        i = (int)k;
    }
    unsigned before = flags_of[i];
    flags_of[i] = (unsigned char)((before | set) & ~clear);
    pending += !!(flags_of[i] & (F_EXPECTED | F_EARLY)) - !!(before & (F_EXPECTED | F_EARLY));
    if (!flags_of[i]) drop_slot((unsigned)i);
    return 1;
}

/* --- configuration -------------------------------------------------------------------- */
static char roots_buf[8192];
static unsigned char path_arg[512];   /* syscall nr -> 1 + index of its path argument; 0: never passed */
static int on;                        /* configured: seccomp stops may be passed */
static volatile int ending;           /* the tree is being killed: new children too */

/* roots: "a\0b\0\0" (absolute, normalized); table: 512 bytes as path_arg. */
EXPORT int om_configure(const char *roots_in, size_t size, const unsigned char *table) {
    if (size > sizeof roots_buf) return 0;
    memcpy(roots_buf, roots_in, size);
    n_roots = 0;
    for (char *p = roots_buf; p < roots_buf + size && *p; p += strlen(p) + 1) {
        if (n_roots == MAX_ROOTS) return 0;
        roots[n_roots] = p;
        root_len[n_roots] = strlen(p);
        n_roots++;
    }
    memcpy(path_arg, table, sizeof path_arg);
    on = 1;
    return 1;
}

/* --- the log Python reads -------------------------------------------------------------- */
struct om_entry {
    int kind;      /* EV_FORK / EV_VFORK / EV_CLONE: born; EV_EXEC; 0: gone */
    int tid;
    int other;     /* the child; the former tid of an exec; 0 */
    int pad;
    unsigned long value;   /* clone flags; the wait status of an exit */
};
#define LOG_SIZE 512
static struct om_entry entries[LOG_SIZE];
static int logged;

static void note(int kind, int tid, int other, unsigned long value) {
    struct om_entry *e = &entries[logged++];
    e->kind = kind;
    e->tid = tid;
    e->other = other;
    e->pad = 0;
    e->value = value;
}

EXPORT int om_take_log(struct om_entry *out, int max) {
    int n = logged < max ? logged : max;
    memcpy(out, entries, (size_t)n * sizeof *out);
    memmove(entries, entries + n, (size_t)(logged - n) * sizeof *out);
    logged -= n;
    return n;
}

/* --- counters (stops by kind; passed seccomp stops by syscall number) ------------------ */
/* Every status reaped here, by kind (whoever answers it), and how many went to Python. */
enum { C_SECCOMP, C_FORK, C_VFORK, C_CLONE, C_EXEC, C_OTHER_EVENT, C_SYSCALL, C_SIGNAL, C_EXIT,
       C_SECCOMP_PASSED, C_RETURNED, C_N };
static unsigned long counts[C_N];
static unsigned long passed_nr[512];

EXPORT void om_counts(unsigned long *out, unsigned long *by_nr) {
    memcpy(out, counts, sizeof counts);
    memcpy(by_nr, passed_nr, sizeof passed_nr);
}

/* --- the books, as Python changes them ------------------------------------------------- */
EXPORT int om_flags(int tid, unsigned set, unsigned clear) {
    pthread_mutex_lock(&lock);
    int ok = change(tid, set, clear);
    pthread_mutex_unlock(&lock);
    return ok;
}

/* Tids with any of `mask` (up to max); returns how many there are in all. */
EXPORT int om_list(unsigned mask, int *out, int max) {
    int n = 0;
    pthread_mutex_lock(&lock);
    for (unsigned i = 0; i < SLOTS; i++)
        if (keys[i] && (flags_of[i] & mask)) {
            if (n < max) out[n] = keys[i];
            n++;
        }
    pthread_mutex_unlock(&lock);
    return n;
}

EXPORT int om_pending(void) {
    return pending;
}

/* The tree is being killed (om_ending): a child whose parent died before its fork
 * event was reported would otherwise wait in its first stop for ever. */
EXPORT void om_ending(void) {
    ending = 1;
}

/* A new tracer: nothing traced, nothing logged or counted, no path passed. */
EXPORT void om_reset(void) {
    pthread_mutex_lock(&lock);
    memset(keys, 0, sizeof keys);
    memset(flags_of, 0, sizeof flags_of);
    live = pending = logged = on = ending = 0;
    memset(counts, 0, sizeof counts);
    memset(passed_nr, 0, sizeof passed_nr);
    pthread_mutex_unlock(&lock);
}

/* A child announced by its parent's event: resumed now if its first stop came first
 * (returns 1), else expected. */
static int announce(int child) {
    unsigned f = get(child);
    if (f & F_EARLY) {
        change(child, F_KNOWN, F_EARLY);
        ptrace(PTRACE_CONT, child, 0, 0);
        return 1;
    }
    change(child, F_KNOWN | F_EXPECTED, 0);
    return 0;
}

EXPORT int om_announce(int child) {
    pthread_mutex_lock(&lock);
    int early = announce(child);
    pthread_mutex_unlock(&lock);
    return early;
}

/* --- reading a path ------------------------------------------------------------------- */
/* The NUL-terminated string at addr in tid (up to cap bytes with the NUL), page by page:
 * 1, or 0 when it cannot be read whole (EFAULT, no NUL within cap). */
static int read_path(int tid, unsigned long addr, char *buf, size_t cap) {
    size_t got = 0;
    while (got < cap) {
        unsigned long at = addr + got;
        size_t n = 4096 - (at & 4095);
        if (n > cap - got) n = cap - got;
        struct iovec local = {buf + got, n}, remote = {(void *)at, n};
        if (process_vm_readv(tid, &local, 1, &remote, 1, 0) != (ssize_t)n) return 0;
        if (memchr(buf + got, 0, n)) return 1;
        got += n;
    }
    return 0;
}

/* An absolute path plainly outside every root: the kernel's answer is the right one. */
static int plainly_local(const char *path) {
    static char norm[4096];
    if (path[0] != '/') return 0;
    if (fd_link_name(path)) return 0;   /* may name a virtual descriptor */
    if (needs_normalizing(path)) {
        if (!normalize(path, norm, sizeof norm) || fd_link_name(norm) || pops_below_root(path)) return 0;
        path = norm;
    }
    return !under_root(path);
}

static unsigned long arg_of(const struct user_regs_struct *r, int i) {
    switch (i) {
    case 0: return r->rdi;
    case 1: return r->rsi;
    case 2: return r->rdx;
    case 3: return r->r10;
    case 4: return r->r8;
    default: return r->r9;
    }
}

static void count(int status) {
    if (!WIFSTOPPED(status)) {
        counts[C_EXIT]++;
        return;
    }
    int sig = WSTOPSIG(status), event = status >> 16;
    if (sig == SYSCALL_TRAP) counts[C_SYSCALL]++;
    else if (sig != SIGTRAP || !event) counts[C_SIGNAL]++;
    else if (event == EV_SECCOMP) counts[C_SECCOMP]++;
    else if (event == EV_FORK) counts[C_FORK]++;
    else if (event == EV_VFORK) counts[C_VFORK]++;
    else if (event == EV_CLONE) counts[C_CLONE]++;
    else if (event == EV_EXEC) counts[C_EXEC]++;
    else counts[C_OTHER_EVENT]++;
}

/* --- the loop ------------------------------------------------------------------------- */
struct om_stop {
    int tid;
    int status;
    int has_regs;      /* a seccomp stop's registers, read already */
    int pad;
    struct user_regs_struct regs;
};

static char path_buf[4096];

/* A seccomp stop: 1 if resumed here. */
static int seccomp_stop(int tid, struct om_stop *out) {
    struct user_regs_struct *r = &out->regs;
    if (ptrace(PTRACE_GETREGS, tid, 0, r) != 0) return 0;
    out->has_regs = 1;
    unsigned long nr = r->orig_rax;
    if (!on || nr >= sizeof path_arg || !path_arg[nr]) return 0;
    unsigned long addr = arg_of(r, path_arg[nr] - 1);
    if (!addr || !read_path(tid, addr, path_buf, sizeof path_buf) || !plainly_local(path_buf)) return 0;
    counts[C_SECCOMP_PASSED]++;
    passed_nr[nr]++;
    ptrace(PTRACE_CONT, tid, 0, 0);
    return 1;
}

/* The clone flags of the call that made a fork, vfork or clone event (tracer.py's
 * _clone_flags): a fork event may be a clone/clone3 with SIGCHLD that shares files or fs. */
static unsigned long clone_flags(int tid) {
    struct user_regs_struct r;
    if (ptrace(PTRACE_GETREGS, tid, 0, &r) != 0) return 0;
    if (r.orig_rax == NR_clone) return r.rdi;
    if (r.orig_rax == NR_clone3) {
        unsigned long v = 0;
        struct iovec local = {&v, 8}, remote = {(void *)r.rdi, 8};
        if (process_vm_readv(tid, &local, 1, &remote, 1, 0) != 8) return 0;
        return v;
    }
    if (r.orig_rax == NR_vfork) return CLONE_VM_ | CLONE_VFORK_;
    return 0;
}

/* One status of a thread Python does not treat specially: 1 if answered here. */
static int quick(int tid, int status, struct om_stop *out) {
    unsigned f = get(tid);
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
        if (f & F_SPECIAL) return 0;
        change(tid, 0, 0xff);
        note(0, tid, 0, (unsigned long)status);
        return 1;
    }
    if (!WIFSTOPPED(status)) return 1;
    if (!(f & F_KNOWN) || (f & F_EXPECTED)) {   /* a new child's first stop */
        if (f & F_EXPECTED) {
            change(tid, 0, F_EXPECTED);
            ptrace(PTRACE_CONT, tid, 0, 0);
        } else if (ending) {
            kill(tid, SIGKILL);        /* its parent may be gone before naming it */
        } else {
            change(tid, F_EARLY, 0);   /* resumed when its parent's event names it */
        }
        return 1;
    }
    if (f & F_SPECIAL) return 0;
    int sig = WSTOPSIG(status), event = status >> 16;
    if (sig == SIGTRAP && event) {
        if (event == EV_SECCOMP) return seccomp_stop(tid, out);
        if (event == EV_FORK || event == EV_VFORK || event == EV_CLONE) {
            unsigned long child = 0;
            if (live >= SLOTS / 2 - 1 || ptrace(PTRACE_GETEVENTMSG, tid, 0, &child) != 0) return 0;
            unsigned long flags = clone_flags(tid);
            note(event, tid, (int)child, flags);
            announce((int)child);
            ptrace(PTRACE_CONT, tid, 0, 0);
            return 1;
        }
        if (event == EV_EXEC) {
            unsigned long former = 0;
            if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &former) != 0) return 0;
            if ((int)former != tid) change((int)former, 0, 0xff);
            note(EV_EXEC, tid, (int)former, 0);
            ptrace(PTRACE_CONT, tid, 0, 0);
            return 1;
        }
        return 0;
    }
    if (sig == SYSCALL_TRAP) return 0;
    if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
        siginfo_t info;
        if (ptrace(PTRACE_GETSIGINFO, tid, 0, &info) != 0) {   /* a group-stop: not honoured */
            ptrace(PTRACE_CONT, tid, 0, 0);
            return 1;
        }
    }
    ptrace(PTRACE_CONT, tid, 0, sig);
    return 1;
}

/* Wait for stops and answer what needs no decision. Returns 1 with a status for Python
 * in *out; 0 when there is none now (block == 0), or when the log should be read before
 * blocking (nothing else is waiting); 2 when the log is full: read it and call again at
 * once, statuses may be waiting (their SIGCHLD may be taken already: the caller must not
 * sleep on it); -1 with errno ECHILD when nothing is left to wait for. */
EXPORT int om_wait(int block, struct om_stop *out) {
    for (;;) {
        int status;
        int wait_flags = __WALL | ((block && !logged) ? 0 : WNOHANG);
        pid_t tid = waitpid(-1, &status, wait_flags);
        if (tid < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (tid == 0) return 0;
        out->has_regs = 0;
        count(status);
        pthread_mutex_lock(&lock);
        int done = quick(tid, status, out);
        pthread_mutex_unlock(&lock);
        if (!done) {
            counts[C_RETURNED]++;
            out->tid = tid;
            out->status = status;
            return 1;
        }
        if (logged > LOG_SIZE - 4) return 2;
    }
}
