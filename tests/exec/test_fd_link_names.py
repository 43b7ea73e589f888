"""/proc/self/fd/N (and /dev/fd/N) of a virtual descriptor leads to the virtual file for
calls that follow it (stat, open, access, link with AT_SYMLINK_FOLLOW), and is /proc's own
link for calls that act on the name itself (lstat, O_NOFOLLOW, O_CREAT|O_EXCL, mkdir,
rename, link, unlink, utimes without following): there the kernel answers, as it does on
a local filesystem. Before, such calls acted on the file: a rename of the link moved the
file, an unlink of it deleted the file."""

from __future__ import annotations

NS = 10**9


def test_calls_on_a_descriptor_link_itself_are_the_kernels(differential):
    link = {"fd": "a"}
    differential(
        [["put", "f", "data"], ["symlink", "f", "l"], ["open", "f", "RDONLY", 0o644, "a"],
         ["lstat", link], ["stat", link], ["access", link, 4],
         ["open", "f", "RDWR", 0o644, "b"], ["lstat", {"fd": "b"}], ["close", "b"],
         ["open", "l", "RDONLY|PATH|NOFOLLOW", 0o644, "c"], ["lstat", {"fd": "c"}], ["stat", {"fd": "c"}],
         ["open", link, "RDONLY|NOFOLLOW", 0o644, "d"], ["open", link, "RDONLY|CREAT|EXCL", 0o644, "d"],
         ["open", link, "RDONLY", 0o644, "e"], ["read", "e", 10], ["close", "e"],
         ["mkdir", link], ["rename", link, "g"], ["exists", "g"], ["link", link, "h"], ["exists", "h"],
         ["utime", link, 5 * NS, 6 * NS, False], ["stat", "f"],
         ["unlink", link], ["exists", "f"], ["cat", "f"], ["close", "a"], ["close", "c"]],
    )
