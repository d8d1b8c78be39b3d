"""Fixtures shared by the test modules.

Behaviour that every implementation shares is tested once, by the
conformance suite (``ngi.testing.conformance``); ``test_conformance.py``
runs it against each implementation.
"""
from __future__ import annotations

import threading

import pytest

from helpers import wait_for

# pytester runs the conformance suite against broken implementations.
pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def no_thread_left_behind():
    """Every thread a test starts has ended when the test ends."""
    before = set(threading.enumerate())
    yield

    def extra():
        return [t for t in threading.enumerate() if t not in before and t.is_alive()]

    wait_for(lambda: not extra(), 10, lambda: f"threads left running {extra()} to end")
