/* Opens, writes, reads back and checks hundreds of files while an interval timer fires
 * at 100 Hz, in one or more threads. Every call must answer as a local filesystem
 * would: no EINTR on regular files, every descriptor the one just opened, every byte
 * right, and the local files it keeps open never written by mistake.
 *
 *   signal_probe real|prof restart|norestart THREADS COUNT VIRTUAL_DIR LOCAL_DIR
 *
 * Prints "ok FILES TICKS" or one line per problem (exit 1). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define HELD 8
static volatile long ticks, foreign;
static int count, nthreads, failures;
static const char *vdir, *ldir;
static int held[HELD];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* A timer's signal comes from the kernel (SI_KERNEL); one held back and sent again by
 * the supervisor must still say so. */
static void on_tick(int sig, siginfo_t *info, void *ctx) {
    (void)sig; (void)ctx;
    ticks++;
    if (info->si_code != SI_KERNEL) foreign++;
}

static void fail(const char *what, const char *path, long got) {
    pthread_mutex_lock(&lock);
    if (failures++ < 20) printf("FAIL %s %s: %ld (errno %d %s)\n", what, path, got, errno, strerror(errno));
    pthread_mutex_unlock(&lock);
}

static size_t body(int i, char *buf) {
    size_t n = 1000 + (size_t)(i * 37) % 5000;
    for (size_t k = 0; k < n; k++) buf[k] = (char)('a' + (i * 7 + k) % 26);
    return n;
}

static void spin(void) {   /* some CPU time, so that ITIMER_PROF fires too */
    volatile unsigned x = 0;
    for (int k = 0; k < 20000; k++) x += k;
}

/* A fresh descriptor must be open on the file just opened: not a held local file, and
 * its size and access mode are the ones expected. */
static int check_fd(int fd, const char *path, off_t size, int accmode) {
    struct stat st;
    for (int h = 0; h < HELD; h++)
        if (fd == held[h]) { fail("returned a held local descriptor", path, fd); return 0; }
    if (fstat(fd, &st) != 0) { fail("fstat", path, -1); return 0; }
    if (!S_ISREG(st.st_mode) || st.st_size != size) { fail("fstat size", path, (long)st.st_size); return 0; }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_ACCMODE) != accmode) { fail("access mode", path, fl); return 0; }
    return 1;
}

static void one(const char *dir, int i) {
    char path[4096], want[8192], got[8192];
    snprintf(path, sizeof path, "%s/f%d", dir, i);
    size_t n = body(i, want);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { fail("open for writing", path, fd); return; }
    if (!check_fd(fd, path, 0, O_WRONLY)) { close(fd); return; }
    spin();
    ssize_t w = write(fd, want, n);
    if (w != (ssize_t)n) fail("write", path, w);
    if (!check_fd(fd, path, (off_t)n, O_WRONLY)) { close(fd); return; }
    if (close(fd) != 0) fail("close after writing", path, -1);
    fd = open(path, O_RDONLY);
    if (fd < 0) { fail("open for reading", path, fd); return; }
    if (!check_fd(fd, path, (off_t)n, O_RDONLY)) { close(fd); return; }
    spin();
    ssize_t r = read(fd, got, sizeof got);
    if (r != (ssize_t)n || memcmp(got, want, n) != 0) fail("read back", path, r);
    if (close(fd) != 0) fail("close after reading", path, -1);
}

static void *worker(void *arg) {
    long t = (long)arg;
    for (int i = (int)t; i < count; i += nthreads) {
        one(vdir, i);
        if (i % 4 == 0) one(ldir, i);   /* local files mixed in */
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage\n"); return 2; }
    int prof = strcmp(argv[1], "prof") == 0;
    int restart = strcmp(argv[2], "restart") == 0;
    nthreads = atoi(argv[3]);
    count = atoi(argv[4]);
    vdir = argv[5];
    ldir = argv[6];
    setvbuf(stdout, 0, _IOLBF, 0);

    /* Local files held open all along: a stray write must not land in them. */
    for (int h = 0; h < HELD; h++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/held%d", ldir, h);
        held[h] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (held[h] < 0 || write(held[h], "held", 4) != 4) { perror(path); return 2; }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_tick;
    sa.sa_flags = SA_SIGINFO | (restart ? SA_RESTART : 0);
    sigemptyset(&sa.sa_mask);
    sigaction(prof ? SIGPROF : SIGALRM, &sa, 0);
    struct itimerval it = {{0, 10000}, {0, 10000}};   /* 100 Hz */
    setitimer(prof ? ITIMER_PROF : ITIMER_REAL, &it, 0);

    pthread_t th[64];
    if (nthreads <= 1) {
        nthreads = 1;
        worker(0);
    } else {
        for (long t = 0; t < nthreads; t++) pthread_create(&th[t], 0, worker, (void *)t);
        for (int t = 0; t < nthreads; t++) pthread_join(th[t], 0);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(prof ? ITIMER_PROF : ITIMER_REAL, &off, 0);

    for (int h = 0; h < HELD; h++) {
        char buf[64];
        ssize_t r = pread(held[h], buf, sizeof buf, 0);
        if (r != 4 || memcmp(buf, "held", 4) != 0) fail("held local file changed", ldir, r);
        close(held[h]);
    }
    if (foreign) fail("signals with a foreign siginfo", argv[1], foreign);
    if (failures) return 1;
    printf("ok %d %ld\n", count, ticks);
    return 0;
}
