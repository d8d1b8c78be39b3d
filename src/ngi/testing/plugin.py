"""A pytest plugin (installed with ngi, as the ``pytest11`` entry point
``ngi``) that makes a handler's exception fail the test that caused it.

Under ``ngi.testing`` an exception from a handler, a server callable or a
timer is printed and logged, and the connection closes, as a real network
would; a test passes unless a later assertion notices.  The plugin does
nothing until a test asks for one of its fixtures:

- ``ngi_network``: a fresh `ngi.testing.Network` for the test;
- ``ngi_errors``: the list of ``(what, exception)`` pairs ngi.testing
  reported during the test (on any network).

A test that asks for either fails if, when it ends, ``ngi_errors`` is not
empty: a test that expects a handler to raise checks the list and clears
it.  ``-p no:ngi`` turns the plugin off.
"""
from __future__ import annotations

import traceback
from typing import Any, Iterator

import pytest

_ERRORS = pytest.StashKey[list]()


@pytest.fixture
def ngi_errors(request: Any) -> Iterator[list]:
    """The exceptions ngi.testing reports during this test, as
    ``(what, exception)`` pairs; those left at the end fail the test."""
    from ngi.testing import _reporting
    errors: list = []
    _reporting.observers.append(errors)
    request.node.stash[_ERRORS] = errors
    try:
        yield errors
    finally:
        _reporting.observers.remove(errors)


@pytest.fixture
def ngi_network(ngi_errors: list) -> Any:
    """A fresh `ngi.testing.Network`; the test fails if a handler, a
    server callable or a timer raised during it (see ``ngi_errors``)."""
    from ngi.testing import Network
    return Network()


@pytest.hookimpl(trylast=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """After a test body that passed: fail it for what was reported."""
    errors = item.stash.get(_ERRORS, None)
    if errors:
        pytest.fail(_describe(errors), pytrace=False)


def _describe(errors: list) -> str:
    lines = [f"ngi.testing reported {len(errors)} exception(s) from "
             "application code during the test (clear ngi_errors if they "
             "were expected):"]
    for what, exc in errors:
        lines.append(f"--- {what} raised:")
        lines.append("".join(traceback.format_exception(
            type(exc), exc, exc.__traceback__)).rstrip())
    return "\n".join(lines)
