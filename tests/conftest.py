"""Fixtures shared by the test modules.

``impl`` is the heart of the shared tests: it is parametrised over every NGI
implementation, so behaviour that all implementations share is written once
(in ``test_shared.py``) and runs against each of them.
"""
from __future__ import annotations

import itertools
import time

import pytest

import ngi.testing

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


HARNESSES = {"testing": TestingHarness}


@pytest.fixture(params=sorted(HARNESSES))
def impl(request):
    harness = HARNESSES[request.param]()
    try:
        yield harness
    finally:
        harness.close()
