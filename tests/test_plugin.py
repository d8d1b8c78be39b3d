"""The pytest plugin (ngi.testing.plugin): a test that asks for
``ngi_network`` or ``ngi_errors`` fails when ngi.testing reported an
exception from application code during it; other tests are untouched."""
from __future__ import annotations

import importlib.metadata
import pathlib
import re

import ngi.testing

SUITE = '''
import ngi.testing


class Boom:
    def __init__(self, connection):
        connection.set_handler(self)

    def handle_input(self, connection, data):
        raise ValueError("handler bug")


def test_handler_raises(ngi_network):
    ngi_network.listener("a", Boom)
    connection = ngi_network.listener(None, Boom).connect()
    connection.write(b"x")
    assert not connection  # closed: the test itself would pass


def test_server_callable_raises(ngi_network):
    def server(connection):
        raise RuntimeError("server bug")
    ngi_network.listener("a", server).connect()


def test_timer_raises(ngi_network):
    ngi_network.call_later(1, lambda: 1 / 0)
    ngi_network.advance(1)


def test_a_fresh_network_each_time(ngi_network):
    ngi_network.listener("a", Boom)  # "a" was taken in the tests above


def test_without_the_fixture_nothing_changes():
    connection = ngi.testing.listener(Boom).connect()
    connection.write(b"x")  # printed and logged, as ever
    assert not connection


def test_expected_errors_are_cleared(ngi_network, ngi_errors):
    connection = ngi_network.listener(None, Boom).connect()
    connection.write(b"x")
    [(what, error)] = ngi_errors
    assert what == "handle_input" and str(error) == "handler bug"
    ngi_errors.clear()


def test_ngi_errors_alone_sees_the_default_network(ngi_errors):
    connection = ngi.testing.listener(Boom).connect()
    connection.write(b"x")


def test_its_own_failure_comes_first(ngi_network):
    ngi_network.listener(None, Boom).connect().write(b"x")
    assert False, "the test's own assertion"
'''


def outcomes(result):
    return {line.split("::")[1].split()[0]: line.split()[0]
            for line in result.outlines
            if line.startswith(("PASSED ", "FAILED ", "ERROR "))
            and "test_suite.py::" in line}


def run(pytester, *args):
    pytester.makepyfile(test_suite=SUITE)
    return pytester.runpytest_inprocess("-rA", "-p", "no:cacheprovider", *args)


def test_failures_are_for_the_tests_that_asked(pytester):
    result = run(pytester)
    assert outcomes(result) == {
        "test_handler_raises": "FAILED",
        "test_server_callable_raises": "FAILED",
        "test_timer_raises": "FAILED",
        "test_a_fresh_network_each_time": "PASSED",
        "test_without_the_fixture_nothing_changes": "PASSED",
        "test_expected_errors_are_cleared": "PASSED",
        "test_ngi_errors_alone_sees_the_default_network": "FAILED",
        "test_its_own_failure_comes_first": "FAILED",
    }
    text = result.stdout.str()
    assert "ngi.testing reported 1 exception(s)" in text
    assert "--- handle_input raised:" in text
    assert "ValueError: handler bug" in text
    assert "--- the server callable raised:" in text
    assert "ZeroDivisionError" in text
    assert "AssertionError: the test's own assertion" in text


def test_the_plugin_can_be_turned_off(pytester):
    result = run(pytester, "-p", "no:ngi", "-k", "handler_raises")
    result.assert_outcomes(errors=1)  # no such fixture without the plugin


def test_the_plugin_is_registered_as_a_pytest11_entry_point(pytester):
    [entry] = [e for e in importlib.metadata.entry_points(group="pytest11")
               if e.name == "ngi"]
    assert entry.value == "ngi.testing.plugin"
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k",
                                           "handler_raises or cleared")
    result.assert_outcomes(passed=1, failed=1)


def test_the_reporting_hook_is_left_clean():
    from ngi.testing import _reporting
    assert _reporting.observers == []
    ngi.testing.Connection()  # nothing is collected outside the fixtures


def test_the_testing_guides_plugin_examples(pytester):
    guide = (pathlib.Path(__file__).resolve().parent.parent / "docs"
             / "testing.md").read_text()
    blocks = re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", guide, re.M | re.S)
    examples = [b for b in blocks if "ngi_network" in b]
    assert len(examples) == 2
    pytester.makepyfile(test_guide="\n\n".join(examples))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    assert "TypeError" in result.stdout.str()
