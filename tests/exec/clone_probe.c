/* clone without CLONE_THREAD but with CLONE_FILES or CLONE_FS, and an exit signal of
 * SIGCHLD: the kernel reports it as a fork (PTRACE_EVENT_FORK), and the child shares its
 * parent's descriptor table or working directory all the same.
 *
 * usage: clone_probe ROOT    (ROOT holds big.bin and dir/f)
 * Prints what the parent sees of what the child did, the same on any filesystem. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLONE_FS_ 0x200
#define CLONE_FILES_ 0x400
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

struct clone_args_v0 { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; };

/* The child returns 0 (on a copy of the stack, as after fork), the parent its id. */
static long spawn(int three, unsigned long flags) {
    if (!three) return syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    struct clone_args_v0 a;
    memset(&a, 0, sizeof a);
    a.flags = flags;
    a.exit_signal = SIGCHLD;
    return syscall(SYS_clone3, &a, sizeof a);
}

static int reap(long pid) {
    int status;
    if (waitpid((pid_t)pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

static void hash_fd(const char *label, int fd) {
    static char buf[65536];
    uint64_t h = 1469598103934665603ull;
    long long size = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) h = (h ^ (unsigned char)buf[i]) * 1099511628211ull;
        size += n;
    }
    if (n < 0) printf("%s: read errno=%d\n", label, errno);
    else printf("%s: %lld bytes, fnv %016llx\n", label, size, (unsigned long long)h);
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    char big[4096], dir[4096];
    snprintf(big, sizeof big, "%s/big.bin", argv[1]);
    snprintf(dir, sizeof dir, "%s/dir", argv[1]);
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int three = 0; three < 2; three++) {
        const char *how = three ? "clone3" : "clone";
        /* CLONE_FILES: the child opens, the parent reads through that number. */
        long pid = spawn(three, CLONE_FILES_);
        if (pid < 0) { printf("%s: errno=%d\n", how, errno); continue; }
        if (pid == 0) {
            int fd = open(big, O_RDONLY);
            _exit(fd < 0 ? 255 : fd);
        }
        int fd = reap(pid);
        if (fd < 0 || fd == 255) { printf("%s files: child could not open\n", how); continue; }
        char label[64];
        snprintf(label, sizeof label, "%s files, parent reads the child's fd", how);
        hash_fd(label, fd);
        /* ...and the child closes one the parent opened. */
        int mine = open(big, O_RDONLY);
        pid = spawn(three, CLONE_FILES_);
        if (pid == 0) _exit(close(mine) == 0 ? 0 : 1);
        int closed = reap(pid);
        char c;
        ssize_t n = read(mine, &c, 1);
        printf("%s files: child closed %d, parent's read %zd errno=%d\n", how, closed, n, n < 0 ? errno : 0);
        close(fd);
        close(mine);   /* already closed: EBADF, or closes the parent's copy */

        /* CLONE_FS: the child's chdir is the parent's. */
        char here[4096];
        if (!getcwd(here, sizeof here)) return 3;
        pid = spawn(three, CLONE_FS_);
        if (pid == 0) _exit(chdir(dir) == 0 ? 0 : 1);
        int moved = reap(pid);
        int rel = open("f", O_RDONLY);
        if (rel < 0) printf("%s fs: child chdir %d, parent's open(\"f\") errno=%d\n", how, moved, errno);
        else {
            char buf[64] = {0};
            ssize_t got = read(rel, buf, sizeof buf - 1);
            printf("%s fs: child chdir %d, parent's open(\"f\") reads %zd: %s", how, moved, got, buf);
            close(rel);
        }
        if (chdir(here) != 0) return 4;
    }
    return 0;
}
