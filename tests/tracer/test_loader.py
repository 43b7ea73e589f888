"""The dynamic loader's constant paths (tracer/loader.py): measured on this machine's
loader, kept once, and let through by the filter in a real run, unless a mount covers them."""

from __future__ import annotations

import os

import pytest

from tracer import loader

pytestmark = pytest.mark.skipif(not os.path.exists(loader.LOADER) or not os.path.exists(loader.PROGRAM),
                                reason="no x86_64 glibc loader here")


def test_the_loader_is_measured_where_it_names_its_constant_paths():
    found = {s.path: s for s in loader.measure()}
    assert set(found) == {"/etc/ld.so.preload", "/etc/ld.so.cache"}
    assert found["/etc/ld.so.preload"].nr == loader.NR_access and found["/etc/ld.so.preload"].index == 0
    assert found["/etc/ld.so.cache"].nr == loader.NR_openat and found["/etc/ld.so.cache"].index == 1
    again = {s.path: s for s in loader.measure()}
    assert again == found   # the same wherever ASLR put the loader


def test_the_sites_are_measured_once_per_loader(tmp_path, monkeypatch):
    first = loader.sites(tmp_path)
    assert len(first) == 2
    assert len(list(tmp_path.glob("loader-sites-*"))) == 1

    def no_second_measure(program):
        raise AssertionError("measured again")
    monkeypatch.setattr(loader, "measure", no_second_measure)
    assert loader.sites(tmp_path) == first


def test_no_loader_no_sites(tmp_path):
    assert loader.sites(tmp_path, loader=str(tmp_path / "no-such-ld.so")) == []


def test_a_probe_that_does_not_end_is_given_up_and_killed(tmp_path):
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    with pytest.raises(OSError):
        loader.measure(str(slow), timeout=0.3)
    assert loader.sites(tmp_path, program=str(slow)) == []   # and a run goes on without rules,
    assert loader.sites(tmp_path) == []                       # not trying again at every start
