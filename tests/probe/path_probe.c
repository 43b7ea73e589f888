/* Path syscalls with bad pointers and empty paths, through libc (the fast path when
 * preloaded) and raw syscall() (always a stop): prints "case ret errno" per line.
 * Run in the directory to test (argv[1]), which holds a file "f". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

static void say(const char *name, long r) {
    printf("%s %ld %d\n", name, r < 0 ? -1L : (r > 0 ? 1L : 0L), r < 0 ? errno : 0);
    errno = 0;
}
#define T(name, expr) do { errno = 0; say(name, (long)(expr)); } while (0)

int main(int argc, char **argv) {
    if (argc < 2 || chdir(argv[1]) != 0) { perror("chdir"); return 2; }
    struct stat st;
    char buf[64];
    long page = sysconf(_SC_PAGESIZE);
    char *gone = mmap(0, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(gone, page);
    char *none = mmap(0, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* two pages, the second unmapped: a name running into it, and one ending just before */
    char *edge = mmap(0, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(edge + page, page, PROT_NONE);
    char *unterminated = edge + page - 3;
    memcpy(unterminated, "fff", 3);
    char *edge2 = mmap(0, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(edge2 + page, page, PROT_NONE);
    char *at_end = edge2 + page - 2;
    memcpy(at_end, "f", 2);
    const char *bad[] = {(char *)1, gone, none, unterminated};
    const char *bad_names[] = {"one", "unmapped", "protnone", "unterminated"};
    for (int i = 0; i < 4; i++) {
        const char *p = bad[i];
        char n[64];
#define B(what, expr) do { snprintf(n, sizeof n, "%s-%s", bad_names[i], what); T(n, expr); } while (0)
        B("stat", stat(p, &st));
        B("lstat", lstat(p, &st));
        B("open", open(p, O_RDONLY));
        B("open-creat", open(p, O_WRONLY | O_CREAT, 0644));
        B("openat-dirfd", openat(open(".", O_RDONLY | O_DIRECTORY), p, O_RDONLY));
        B("access", access(p, F_OK));
        B("readlink", readlink(p, buf, sizeof buf));
        B("mkdir", mkdir(p, 0755));
        B("unlink", unlink(p));
        B("rename-old", rename(p, "x"));
        B("rename-new", rename("f", p));
        B("link-old", link(p, "x"));
        B("symlink-link", symlink("f", p));
        B("chmod", chmod(p, 0644));
        B("truncate", truncate(p, 0));
        B("fopen", fopen(p, "r") ? 0 : -1);
        B("sys-stat", syscall(SYS_newfstatat, AT_FDCWD, p, &st, 0));
        B("sys-open", syscall(SYS_openat, AT_FDCWD, p, O_RDONLY));
    }
    /* execve reads envp too: a bad array or string is EFAULT (the library reads envp) */
    T("bad-envp", execve("/bin/true", (char *[]){"true", 0}, (char **)1));
    T("bad-envp-string", execve("/bin/true", (char *[]){"true", 0}, (char *[]){gone, 0}));
    T("bad-path-execve", execve(gone, (char *[]){"true", 0}, (char *[]){0}));
    T("at-end-stat", stat(at_end, &st));
    T("at-end-open", open(at_end, O_RDONLY) >= 0 ? 0 : -1);

    close(open("f", O_WRONLY | O_CREAT, 0644));
    /* empty paths */
    T("empty-open", open("", O_RDONLY));
    T("empty-open-creat", open("", O_WRONLY | O_CREAT, 0644));
    T("empty-stat", stat("", &st));
    T("empty-lstat", lstat("", &st));
    T("empty-access", access("", F_OK));
    T("empty-readlink", readlink("", buf, sizeof buf));
    T("empty-mkdir", mkdir("", 0755));
    T("empty-rmdir", rmdir(""));
    T("empty-unlink", unlink(""));
    T("empty-chmod", chmod("", 0644));
    T("empty-chown", chown("", 0, 0));
    T("empty-truncate", truncate("", 0));
    T("empty-utimensat", utimensat(AT_FDCWD, "", 0, 0));
    T("empty-mknod", mknod("", S_IFIFO | 0644, 0));
    T("empty-link-old", link("", "x"));
    T("empty-link-new", link("f", ""));
    T("empty-linkat-old", linkat(AT_FDCWD, "", AT_FDCWD, "x", 0));
    T("empty-linkat-follow", linkat(AT_FDCWD, "", AT_FDCWD, "x", AT_SYMLINK_FOLLOW));
    T("empty-rename-old", rename("", "x"));
    T("empty-rename-new", rename("f", ""));
    T("empty-symlink-link", symlink("f", ""));
    T("empty-symlink-target", symlink("", "l"));
    T("empty-link-x-exists", access("x", F_OK));
    T("empty-l-exists", access("l", F_OK));
    T("empty-sys-link-old", syscall(SYS_link, "", "x"));
    T("empty-sys-linkat-old", syscall(SYS_linkat, AT_FDCWD, "", AT_FDCWD, "x", 0));
    T("empty-sys-rename-old", syscall(SYS_rename, "", "x"));
    T("empty-sys-rename-new", syscall(SYS_rename, "f", ""));
    T("empty-sys-stat", syscall(SYS_newfstatat, AT_FDCWD, "", &st, 0));
    T("empty-sys-open", syscall(SYS_openat, AT_FDCWD, "", O_RDONLY));
    T("empty-sys-symlink", syscall(SYS_symlink, "f", ""));
    T("empty-sys-unlink", syscall(SYS_unlink, ""));
    /* AT_EMPTY_PATH on a descriptor of f: the link is made (root has CAP_DAC_READ_SEARCH) */
    int fd = open("f", O_RDONLY);
    T("emptypath-fstatat", fstatat(fd, "", &st, AT_EMPTY_PATH));
    T("emptypath-linkat", linkat(fd, "", AT_FDCWD, "y", AT_EMPTY_PATH));
    T("emptypath-y-exists", access("y", F_OK));
    /* empty paths relative to a directory descriptor (virtual under objmount) */
    int dir = open(".", O_RDONLY | O_DIRECTORY);
    T("dirfd-empty-openat", openat(dir, "", O_RDONLY));
    T("dirfd-empty-fstatat", fstatat(dir, "", &st, 0));
    T("dirfd-empty-fstatat-emptypath", fstatat(dir, "", &st, AT_EMPTY_PATH));
    T("dirfd-empty-mkdirat", mkdirat(dir, "", 0755));
    T("dirfd-empty-unlinkat", unlinkat(dir, "", 0));
    T("dirfd-empty-unlinkat-dir", unlinkat(dir, "", AT_REMOVEDIR));
    T("dirfd-empty-renameat-old", renameat(dir, "", dir, "x2"));
    T("dirfd-empty-renameat-new", renameat(dir, "f", dir, ""));
    T("dirfd-empty-linkat", linkat(dir, "", dir, "x3", 0));
    T("dirfd-empty-linkat-dir-emptypath", linkat(dir, "", dir, "x4", AT_EMPTY_PATH));
    T("dirfd-empty-symlinkat", symlinkat("f", dir, ""));
    T("dirfd-empty-readlinkat", readlinkat(dir, "", buf, sizeof buf));
    T("dirfd-empty-faccessat", faccessat(dir, "", F_OK, 0));
    T("dirfd-empty-fchmodat", fchmodat(dir, "", 0755, 0));
    T("dirfd-empty-fchownat", fchownat(dir, "", 0, 0, 0));
    T("dirfd-empty-fchownat-emptypath", fchownat(dir, "", 0, 0, AT_EMPTY_PATH));
    T("dirfd-empty-utimensat", utimensat(dir, "", 0, 0));
    T("dirfd-empty-mknodat", mknodat(dir, "", S_IFIFO | 0644, 0));
    T("dirfd-empty-sys-statx", syscall(SYS_statx, dir, "", 0, 0x7ff, buf));
    T("empty-chdir", chdir(""));
    T("empty-getxattr", getxattr("", "user.x", buf, sizeof buf));
    T("empty-setxattr", setxattr("", "user.x", "v", 1, 0));
    T("empty-execve", execve("", (char *[]){"x", 0}, (char *[]){0}));
    T("empty-x-exists", access("x2", F_OK) == 0 || access("x3", F_OK) == 0 || access("x4", F_OK) == 0);
    return 0;
}
