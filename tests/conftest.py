"""Fixtures shared by the test modules.

``impl`` is the heart of the shared tests: it is parametrised over every NGI
implementation, so behaviour that all implementations share is written once
(in ``test_shared.py``) and runs against each of them.
"""
from __future__ import annotations

import itertools
import socket
import threading
import time

import pytest

import ngi.net
import ngi.testing
from ngi.interfaces import Timeout

_counter = itertools.count()


class Harness:
    """Drives one implementation in a test, hiding how it runs its loop.

    ``impl`` has ``connect``, ``listener``, ``udp`` and ``udp_listener``.
    ``address()`` is a fresh address to listen on (connect to the listener's
    ``.address``).  ``wait_until(predicate)`` waits, bounded in time, until
    the predicate is true and fails the test otherwise: the testing
    implementation delivers synchronously, so for it the predicate must
    already hold.
    """

    name = "?"
    synchronous = True

    def __init__(self):
        self.impl = None

    def address(self):
        raise NotImplementedError

    def udp_address(self):
        return self.address()

    def wait_until(self, predicate, timeout=10.0, what="condition"):
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.synchronous or time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: timed out waiting for {what}")
            time.sleep(0.002)

    def close(self):
        pass


class TestingHarness(Harness):
    name = "testing"
    synchronous = True

    def __init__(self):
        super().__init__()
        self.impl = ngi.testing

    def address(self):
        return ("shared-test", next(_counter))


class NetHarness(Harness):
    """ngi.net with its own loop thread, on loopback."""

    name = "net"
    synchronous = False

    def __init__(self):
        super().__init__()
        self.impl = ngi.net.Implementation(name="ngi-test")

    def address(self):
        return ("127.0.0.1", 0)

    def unused_address(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()

    def close(self):
        # Everything a test opened must be closed by now: the loop goes idle
        # and its thread ends, or the test fails here.
        self.impl.wait(10)


class InlineHarness(NetHarness):
    """ngi.net run by the test itself through ``Inline.loop``.

    Handler exceptions propagate out of ``loop()``; they are collected in
    ``raised`` so that tests of error handling see the connection's side of
    it, and can check the propagation there.
    """

    name = "net-inline"

    def __init__(self):
        Harness.__init__(self)
        self.impl = ngi.net.Inline()
        self.raised = []

    def wait_until(self, predicate, timeout=10.0, what="condition"):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: timed out waiting for {what}")
            try:
                self.impl.loop(0.005)
            except Timeout:
                pass
            except Exception as e:
                self.raised.append(e)

    def close(self):
        self.impl.loop(10)


HARNESSES = {"testing": TestingHarness, "net": NetHarness,
             "net-inline": InlineHarness}


@pytest.fixture(autouse=True)
def no_thread_left_behind():
    """Every thread a test starts has ended when the test ends."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 10
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"threads left running: {extra}")
        time.sleep(0.01)


@pytest.fixture(params=sorted(HARNESSES))
def impl(request):
    harness = HARNESSES[request.param]()
    try:
        yield harness
    finally:
        harness.close()
