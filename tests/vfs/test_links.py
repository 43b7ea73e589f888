"""The hard-link group's representation in object metadata (vfs/meta.py, vfs/links.py)."""

from __future__ import annotations

from vfs import meta as metas


def test_the_group_list_round_trips_any_key():
    keys = ["a", "dir/b c", "comma,key", "ü/%41", "x=y&z"]
    value = metas.encode_links(keys)
    assert value.isascii() and value.count(",") == len(keys) - 1
    assert sorted(metas.decode_links(value)) == sorted(keys)


def test_a_name_is_a_member_only_if_its_own_key_is_listed():
    md = metas.to_metadata(0o100644, 0, 0, 1.0, links=("a", "b"))
    member = metas.from_object("s", "a", 1, '"e"', 1.0, md)
    assert member.nlink == 2 and member.links == ("a", "b")
    copied = metas.from_object("s", "z", 1, '"e"', 1.0, md)   # copied by another tool
    assert copied.nlink == 1 and copied.links == ()
    listed = metas.from_object("s", "a", 1, '"e"', 1.0, None)  # a listing: nothing known
    assert listed.nlink == 1 and not listed.exact


def test_a_single_name_carries_no_list():
    assert metas.LINKS_KEY not in metas.to_metadata(0o100644, 0, 0, 1.0, links=("a",))
