"""The lowest layer of the core: the poller (epoll or kqueue), the waker, the loop."""
import os
import socket
import sys
import threading
import time

import pytest

from ngi import _core

from helpers import UpperOnce


@pytest.fixture
def poller():
    p = _core.Poller(capacity=8)
    yield p
    p.close()


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_poller_reports_readable_with_token(poller, pair):
    a, b = pair
    poller.register(a.fileno(), _core.EVENT_READ, 12345)
    assert poller.poll(0) == []
    b.send(b"x")
    assert poller.poll(1) == [(12345, _core.EVENT_READ)]


def test_poller_token_defaults_to_fd(poller, pair):
    a, b = pair
    poller.register(a.fileno(), _core.EVENT_WRITE)
    assert poller.poll(0) == [(a.fileno(), _core.EVENT_WRITE)]


def test_poller_modify_and_unregister(poller, pair):
    a, b = pair
    poller.register(a.fileno(), _core.EVENT_READ, 1)
    poller.reregister(a.fileno(), _core.EVENT_WRITE, 2)
    assert poller.poll(0) == [(2, _core.EVENT_WRITE)]
    poller.unregister(a.fileno())
    b.send(b"x")
    assert poller.poll(0) == []


def test_poller_is_level_triggered(poller, pair):
    a, b = pair
    poller.register(a.fileno(), _core.EVENT_READ, 1)
    b.send(b"x")
    assert poller.poll(0) == [(1, _core.EVENT_READ)]
    assert poller.poll(0) == [(1, _core.EVENT_READ)]  # still unread
    a.recv(1)
    assert poller.poll(0) == []


def test_poller_reports_hangup(poller, pair):
    a, b = pair
    poller.register(a.fileno(), _core.EVENT_READ, 1)
    b.close()
    [(token, events)] = poller.poll(1)
    assert events & _core.EVENT_READ  # EOF reads as readable


def test_poller_wait_times_out(poller):
    start = time.monotonic()
    assert poller.poll(0.05) == []
    assert time.monotonic() - start >= 0.04


def test_poller_wait_outlasts_a_signal(poller):
    """A signal (EINTR) does not cut the wait short: it waits on for what
    is left of the timeout, after the signal's handler has run."""
    import signal
    seen = []
    old = signal.signal(signal.SIGALRM, lambda *args: seen.append(args))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        start = time.monotonic()
        assert poller.poll(0.2) == []
        assert time.monotonic() - start >= 0.19
        assert seen  # the handler ran
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_poller_errors_are_oserrors(poller, pair):
    a, b = pair
    if _core.POLLER == "epoll":
        with pytest.raises(OSError):
            poller.unregister(a.fileno())  # never registered
        poller.register(a.fileno(), _core.EVENT_READ)
        with pytest.raises(FileExistsError):
            poller.register(a.fileno(), _core.EVENT_READ)
    else:  # kqueue: a delete of nothing is ignored
        poller.unregister(a.fileno())
        poller.register(a.fileno(), _core.EVENT_READ, 1)
        poller.reregister(a.fileno(), _core.EVENT_READ, 2)
        b.send(b"x")
        assert poller.poll(1) == [(2, _core.EVENT_READ)]
    with pytest.raises(OSError):
        poller.register(-1, _core.EVENT_READ)  # no such descriptor
    poller.close()
    with pytest.raises(ValueError, match="closed"):
        poller.poll(0)


def test_poller_event_array_is_bounded(pair):
    p = _core.Poller(capacity=2)
    socks = [socket.socketpair() for _ in range(5)]
    try:
        for i, (a, b) in enumerate(socks):
            p.register(a.fileno(), _core.EVENT_WRITE, i)
        first = p.poll(0)
        assert len(first) == 2
    finally:
        p.close()
        for a, b in socks:
            a.close()
            b.close()
    with pytest.raises(ValueError, match="capacity"):
        _core.Poller(capacity=0)


def test_waker_wakes_poller_from_another_thread(poller):
    w = _core.Waker()
    try:
        poller.register(w.fileno(), _core.EVENT_READ, 0)
        t = threading.Timer(0.05, w.wake)
        t.start()
        start = time.monotonic()
        assert poller.poll(5) == [(0, _core.EVENT_READ)]
        assert time.monotonic() - start < 4
        t.join()
        assert w.clear() is True
        assert poller.poll(0) == []
        assert w.clear() is False
    finally:
        w.close()


def test_waker_coalesces_many_wakes():
    w = _core.Waker()
    try:
        for _ in range(1000):
            w.wake()
        assert w.clear() is True
        assert w.clear() is False
    finally:
        w.close()
    with pytest.raises(ValueError):
        w.wake()


def test_loop_idle_run_returns_at_once():
    loop = _core.Loop()
    try:
        assert loop.idle()
        assert loop.run(1) is True
    finally:
        loop.close()


def test_loop_runs_calls_from_other_threads_in_order():
    loop = _core.Loop()
    seen = []
    threads = [threading.Thread(target=lambda i=i: [loop.call_soon(seen.append, (i, n)) for n in range(200)])
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loop.run(5) is True
    for i in range(4):
        assert [n for j, n in seen if j == i] == list(range(200))
    loop.close()


def test_loop_timers_fire_in_deadline_order_and_cancel():
    loop = _core.Loop()
    fired = []
    # Deadlines 90 ms apart: a test thread descheduled between the calls
    # (a busy CI machine) must not reorder them.
    loop.call_later(0.1, fired.append, "late")
    loop.call_later(0.01, fired.append, "early")
    t = loop.call_later(0.05, fired.append, "cancelled")
    t.cancel()
    assert t.cancelled
    assert not loop.idle()
    assert loop.run(5) is True
    assert fired == ["early", "late"]
    loop.close()


def test_loop_run_times_out_while_busy():
    loop = _core.Loop()
    t = loop.call_later(10, lambda: None)
    start = time.monotonic()
    assert loop.run(0.05) is False
    assert 0.04 <= time.monotonic() - start < 5
    t.cancel()
    assert loop.run(1) is True
    loop.close()


def test_loop_propagates_errors_only_when_asked(caplog):
    loop = _core.Loop()

    def boom():
        raise RuntimeError("boom")

    loop.call_soon(boom)
    assert loop.run(1) is True  # logged, not raised
    assert "boom" in caplog.text
    loop.propagate = True
    loop.call_soon(boom)
    with pytest.raises(RuntimeError, match="boom"):
        loop.run(1)
    loop.close()


def test_connection_adopts_a_socket_and_echoes(pair):
    a, b = pair
    loop = _core.Loop()
    conn = loop.connection(os.dup(a.fileno()))
    a.close()

    UpperOnce(conn)
    b.sendall(b"hello")
    assert loop.run(5) is True
    assert b.recv(100) == b"HELLO"
    assert b.recv(100) == b""  # closed after the flush
    assert not conn
    loop.close()


def test_adopted_descriptors_are_made_non_blocking(pair):
    # The loop reads and accepts until EAGAIN: a blocking descriptor would
    # stall it.
    a, b = pair
    loop = _core.Loop()
    fd = os.dup(a.fileno())
    os.set_blocking(fd, True)
    conn = loop.connection(fd)
    assert os.get_blocking(fd) is False
    conn.abort()
    assert loop.run(5) is True
    loop.close()


def test_call_later_rejects_nan_and_cancelled_means_cancelled():
    loop = _core.Loop()
    with pytest.raises(ValueError, match="nan"):
        loop.call_later(float("nan"), lambda: None)
    fired = []
    t = loop.call_later(0, fired.append, 1)
    assert loop.run(5) is True
    assert fired == [1] and t.cancelled is False
    t.cancel()  # too late: a no-op
    assert fired == [1]
    loop.close()


def test_far_timers_do_not_overflow_the_poll_timeout():
    loop = _core.Loop()
    t = loop.call_later(float("inf"), lambda: None)
    assert loop.run(0.05) is False
    t.cancel()
    assert loop.run(1) is True
    loop.close()


def test_timers_cancelled_from_many_threads_at_once_are_released_once():
    # cancel() races with itself and with the loop: each timer must be
    # uncounted exactly once, or the loop never goes idle (or idles early).
    loop = _core.Loop()
    fired = []
    timers = [loop.call_later(0.2, fired.append, i) for i in range(200)]
    keep = loop.call_later(0.3, fired.append, "kept")
    start = threading.Barrier(4)

    def cancel_all():
        start.wait()
        for t in timers:
            t.cancel()

    threads = [threading.Thread(target=cancel_all) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(t.cancelled for t in timers) and not keep.cancelled
    assert loop.run(5) is True
    assert fired == ["kept"] and loop.active == 0
    loop.close()


def test_a_heap_of_mostly_cancelled_timers_is_rebuilt_without_them():
    # A TLS handshake bound per connection is cancelled at once, and would
    # otherwise stay in the heap (memory, and log n per push) until its time.
    loop = _core.Loop()
    fired = []
    timers = [loop.call_later(600, fired.append, i) for i in range(3000)]
    keep = loop.call_later(0.05, fired.append, "kept")
    assert loop.run(0) is False  # the timers are on the heap now
    held = sys.getrefcount(timers[0])  # ours, the heap's, the argument
    for t in timers:
        t.cancel()
    assert loop.run(5) is True
    assert fired == ["kept"]
    now = sys.getrefcount(timers[0])  # (outside the rewritten assert)
    assert now == held - 1  # the heap let go
    assert not keep.cancelled
    loop.close()
