"""Fixtures shared by the test modules.

Behaviour that every implementation shares is tested once, by the
conformance suite (``ngi.testing.conformance``); ``test_conformance.py``
runs it against each implementation.
"""
from __future__ import annotations

import threading
import time

import pytest

# pytester runs the conformance suite against broken implementations.
pytest_plugins = ["pytester"]


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
