"""Files._writers keeps, beside (store, key) -> (item, store, path), each item's names:
a close finds its item's names without looking through every pending file."""

from vfs.files import _Writers


class Item:
    pass


def test_the_names_of_an_item_follow_every_change():
    w, a, b = _Writers(), Item(), Item()
    w[("s", "k1")] = (a, None, "/p/k1")
    w[("s", "k2")] = (a, None, "/p/k2")
    w[("s", "k3")] = (b, None, "/p/k3")
    assert w.names_of(a) == [("s", "k1"), ("s", "k2")] and w.names_of(b) == [("s", "k3")]
    w[("s", "k2")] = (b, None, "/p/k2")          # a name taken over by another item
    assert w.names_of(a) == [("s", "k1")] and w.names_of(b) == [("s", "k2"), ("s", "k3")]
    del w[("s", "k1")]
    assert w.names_of(a) == [] and ("s", "k1") not in w
    assert w.pop(("s", "k3"))[0] is b and w.names_of(b) == [("s", "k2")]
    assert w.pop(("s", "missing"), None) is None
    assert {k: v[0] for k, v in w.items()} == {("s", "k2"): b}
