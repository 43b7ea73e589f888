"""How a multipart upload is cut into uploaded and server-side-copied parts."""

from vfs.ranges import RangeSet
from vfs.upload import MiB, plan_parts


def test_append_copies_the_old_bytes_in_one_part():
    parts = plan_parts(257 * MiB, RangeSet([(256 * MiB, 257 * MiB)]), 256 * MiB, copy=True)
    assert parts == [(0, 256 * MiB, True), (256 * MiB, 257 * MiB, False)]


def test_one_byte_in_the_middle_uploads_one_grid_part():
    parts = plan_parts(64 * MiB, RangeSet([(20 * MiB, 20 * MiB + 1)]), 64 * MiB, copy=True)
    assert parts == [(0, 16 * MiB, True), (16 * MiB, 24 * MiB, False), (24 * MiB, 64 * MiB, True)]
    assert sum(e - s for s, e, copied in parts if not copied) == 8 * MiB


def test_without_copy_every_part_is_uploaded_and_large_enough():
    parts = plan_parts(50 * MiB, RangeSet(), 50 * MiB, copy=False)
    assert all(not copied for _, _, copied in parts)
    assert all(e - s >= 5 * MiB for s, e, _ in parts[:-1])
    assert parts[0][0] == 0 and parts[-1][1] == 50 * MiB
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))


def test_bytes_past_the_previous_size_are_never_copied():
    parts = plan_parts(40 * MiB, RangeSet(), 30 * MiB, copy=True)
    assert all(e <= 30 * MiB for s, e, copied in parts if copied)


def test_read_range_reads_past_one_reads_limit(tmp_path, monkeypatch):
    """One read(2) moves at most ~2 GiB (MAX_RW_COUNT): a file:// store's upload of a file
    over 2 GiB (LTP sendfile09's 4 GiB sparse file) read it with one pread and failed the
    close with EIO ('cache file shorter than expected'). Short reads, simulated here."""
    import os

    from vfs import upload as up
    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 40)
    real = os.pread
    monkeypatch.setattr(up.os, "pread", lambda fd, n, at: real(fd, min(n, 1000), at))
    assert up.read_range(str(path), 10, 10_000) == path.read_bytes()[10:10_000]
