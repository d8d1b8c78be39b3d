"""The conformance suite, run against every NGI implementation.

`ngi.testing.conformance.ConformanceTests` is written once; each class here
says how to make an implementation and its addresses.  The last tests show
that the suite catches an implementation that loses or reorders data.
"""
from __future__ import annotations

import itertools
import os
import tempfile

import pytest

import ngi.net
import ngi.testing
from ngi.interfaces import Timeout
from ngi.testing.conformance import ConformanceTests

_names = itertools.count()


# ngi.testing ---------------------------------------------------------------

class TestTesting(ConformanceTests):
    """The module-level functions, bound to the default network."""

    fill_bytes = 512 << 10  # above the 64 KiB mark; no kernel buffers

    @pytest.fixture
    def implementation(self):
        return ngi.testing

    @pytest.fixture
    def address(self):
        return lambda: ("conformance", next(_names))


class TestTestingOneByteChunks(TestTesting):
    @pytest.fixture
    def implementation(self):
        return ngi.testing.Network(chunk_size=1)


class TestTestingRandomChunks(TestTesting):
    @pytest.fixture
    def implementation(self):
        network = ngi.testing.Network(chunk_size="random")
        print("to replay:", network)  # shown if the test fails
        return network


class TestTestingDeferred(TestTesting):
    @pytest.fixture
    def implementation(self):
        return ngi.testing.Network(deferred=True)


class TestTestingDeferredRandomChunks(TestTesting):
    @pytest.fixture
    def implementation(self):
        network = ngi.testing.Network(chunk_size="random", deferred=True)
        print("to replay:", network)
        return network


# ngi.net -------------------------------------------------------------------

class TestNet(ConformanceTests):
    """ngi.net with its own loop thread, on loopback."""

    @pytest.fixture
    def implementation(self):
        impl = ngi.net.Implementation(name="ngi-conformance")
        yield impl
        # Everything the test opened is closed by now: the loop goes idle
        # and its thread ends, or the test fails here.
        impl.wait(10)

    @pytest.fixture
    def address(self):
        return lambda: ("127.0.0.1", 0)


class TestNetIPv6(TestNet):
    @pytest.fixture
    def address(self):
        return lambda: ("::1", 0)


class TestNetUnix(TestNet):
    @pytest.fixture
    def address(self):
        directory = tempfile.mkdtemp(prefix="ngi-")
        yield lambda: os.path.join(directory, f"s{next(_names)}")
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


class TestNetInline(TestNet):
    """ngi.net run by the test itself through ``Inline.loop``.

    Handler exceptions propagate out of ``loop()``; `wait` collects them in
    ``raised``, so that tests of error handling see the connection's side.
    """

    @pytest.fixture
    def implementation(self):
        self.raised = []
        impl = ngi.net.Inline()
        yield impl
        impl.loop(10)

    def wait(self, seconds):
        try:
            self.implementation.loop(seconds)
        except Timeout:
            pass
        except Exception as exc:
            self.raised.append(exc)

    def test_handler_exceptions_propagate_from_loop(self):
        self.test_handle_input_exception_closes_the_connection()
        assert [str(e) for e in self.raised] == ["handler bug"]

    def test_timer_exceptions_propagate_from_loop(self):
        self.test_a_failing_timer_does_not_stop_the_others()
        assert [str(e) for e in self.raised] == ["timer bug"]


# The suite catches broken implementations ----------------------------------

BROKEN = '''
import itertools

import pytest

import ngi.testing
from ngi.testing.conformance import ConformanceTests


class DropsOneByte(ngi.testing.Network):
    """Loses the 1000th byte it carries."""

    carried = 0

    def _pieces(self, data):
        start, self.carried = self.carried, self.carried + len(data)
        if start < 1000 <= self.carried:
            lost = 999 - start
            data = data[:lost] + data[lost + 1:]
        return super()._pieces(data)


class SwapsTwoWrites(ngi.testing.Network):
    """Delivers the 3rd write it carries after the 4th."""

    writes = 0
    held = None

    def _pieces(self, data):
        self.writes += 1
        if self.writes == 3:
            self.held = data
            return []
        if self.writes == 4:
            return [data, self.held]
        return super()._pieces(data)


names = itertools.count()


class Broken(ConformanceTests):
    timeout = 0.5

    @pytest.fixture
    def address(self):
        return lambda: ("broken", next(names))


class TestDropsOneByte(Broken):
    @pytest.fixture
    def implementation(self):
        return DropsOneByte()


class TestSwapsTwoWrites(Broken):
    @pytest.fixture
    def implementation(self):
        return SwapsTwoWrites()
'''


def failures(pytester, cls):
    """Run the suite against a broken implementation: the failed tests."""
    pytester.makepyfile(test_broken=BROKEN)
    result = pytester.runpytest_inprocess(
        "-q", "-rf", "-p", "no:cacheprovider", "-k", cls)
    return {line.split("::")[2].split()[0]
            for line in result.outlines if line.startswith("FAILED ")}


def test_the_suite_fails_for_an_implementation_that_drops_a_byte(pytester):
    failed = failures(pytester, "DropsOneByte")
    assert {"test_many_writes_arrive_in_order",
            "test_large_data_arrives_intact_both_ways",
            "test_writelines_streams_a_generator",
            "test_close_sends_everything_written_first"} <= failed


def test_the_suite_fails_for_an_implementation_that_reorders_writes(pytester):
    failed = failures(pytester, "SwapsTwoWrites")
    assert {"test_many_writes_arrive_in_order",
            "test_writes_and_writelines_keep_their_order",
            "test_writelines_streams_a_generator"} <= failed
