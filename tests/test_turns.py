"""objmount/parking.py: operations on one object run one at a time, in the order their
stops came (even when a worker takes its ticket late), exclusive ones alone; a waiter
lets go of the lock."""

from __future__ import annotations

import threading

from objmount.parking import BigLock, Turns


def _first(turns, ticket):
    return turns._first(ticket)


def test_tickets_on_one_key_run_in_order_and_other_keys_run_alongside():
    lock = BigLock()
    turns = Turns(lock)
    lock.acquire()
    a, b = turns.take({"x"}, 1), turns.take({"x"}, 2)
    c = turns.take({"y"}, 3)
    assert _first(turns, a) and not _first(turns, b) and _first(turns, c)
    turns.done(a)
    assert _first(turns, b)


def test_a_late_ticket_keeps_its_place_but_never_passes_a_running_one():
    lock = BigLock()
    turns = Turns(lock)
    with lock:
        later = turns.take({"x"}, 5)
        earlier = turns.take({"x"}, 3)      # taken by its worker after `later` was dispatched
        assert _first(turns, earlier) and not _first(turns, later)
        turns.wait(earlier)                 # running now
        turns.done(earlier)
        turns.wait(later)
        late = turns.take({"x"}, 1)         # an older number, but `later` is running
        assert not _first(turns, late)
        turns.done(later)
        assert _first(turns, late)


def test_an_exclusive_ticket_waits_for_the_earlier_and_holds_back_the_later():
    lock = BigLock()
    turns = Turns(lock)
    lock.acquire()
    a = turns.take({"x"}, 1)
    e = turns.take({"d"}, 2, exclusive=True)
    b = turns.take({"y"}, 3)
    assert _first(turns, a) and not _first(turns, e) and not _first(turns, b)
    turns.done(a)
    assert _first(turns, e) and not _first(turns, b)
    assert not turns.idle({"z"})
    turns.done(e)
    assert _first(turns, b)


def test_waiting_lets_go_of_the_lock():
    lock = BigLock()
    turns = Turns(lock)
    with lock:
        a = turns.take({"x"}, 1)
        b = turns.take({"x"}, 2)
    order = []

    def second():
        with lock:
            turns.wait(b)
            order.append("b")
            turns.done(b)

    t = threading.Thread(target=second)
    t.start()
    with lock:   # free while `second` waits
        order.append("a")
        turns.done(a)
    t.join(10)
    assert order == ["a", "b"]
    with lock:
        assert lock.held()
        with lock.unlocked():
            assert not lock.held()
    assert not lock.held()
