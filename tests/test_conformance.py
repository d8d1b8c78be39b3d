"""The conformance suite, run against every NGI implementation.

`ngi.testing.conformance.ConformanceTests` is written once; each class here
says how to make an implementation and its addresses.  The last tests show
that the suite catches an implementation that loses or reorders data.
"""
from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import tempfile

import pytest

import ngi._core
import ngi.net
import ngi.testing
from ngi.interfaces import Timeout
from ngi.testing.conformance import ConformanceTests, TLSConformanceTests

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


class TestTestingTLS(TLSConformanceTests):
    """The whole suite, and the TLS tests, over TLS in memory."""

    fill_bytes = 512 << 10

    @pytest.fixture
    def implementation(self):
        return ngi.testing

    @pytest.fixture
    def address(self):
        return lambda: ("conformance-tls", next(_names))


class TestTestingTLSRandomChunks(TestTestingTLS):
    """Ciphertext cut at random points, each piece delivered at once: the
    peer answers in the middle of a send, which must not reorder it."""

    @pytest.fixture
    def implementation(self):
        network = ngi.testing.Network(chunk_size="random")
        print("to replay:", network)
        return network


class TestTestingTLSDeferredRandomChunks(TestTestingTLS):
    """Ciphertext cut at random points, delivered a hop at a time."""

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


class UnixAddresses:
    """Unix socket paths in a directory of the test's own."""

    @pytest.fixture
    def address(self):
        directory = tempfile.mkdtemp(prefix="ngi-")
        yield lambda: os.path.join(directory, f"s{next(_names)}")
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


class TestNetUnix(UnixAddresses, TestNet):
    pass


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
from ngi.testing.conformance import ConformanceTests, TLSConformanceTests


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


def failures(pytester, monkeypatch, cls):
    """Run the suite against a broken implementation: the failed tests,
    and what the run printed.

    ``CI`` is set, as on a CI machine, where pytest truncates nothing: a
    plain ``assert`` of megabytes then made pytest diff them for an hour.
    """
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(test_broken=BROKEN)
    result = pytester.runpytest_inprocess(
        "-q", "-rf", "-p", "no:cacheprovider", "-k", cls)
    failed = {line.split("::")[2].split()[0]
              for line in result.outlines if line.startswith("FAILED ")}
    return failed, "\n".join(result.outlines)


def test_the_suite_fails_for_an_implementation_that_drops_a_byte(
        pytester, monkeypatch):
    failed, output = failures(pytester, monkeypatch, "DropsOneByte")
    assert {"test_many_writes_arrive_in_order",
            "test_large_data_arrives_intact_both_ways",
            "test_writelines_streams_a_generator",
            "test_close_sends_everything_written_first"} <= failed
    # Megabytes that differ are reported by length and offset, briefly.
    assert "bytes, expected" in output and "differ from offset" in output
    assert len(output) < 200_000


def test_the_suite_fails_for_an_implementation_that_reorders_writes(
        pytester, monkeypatch):
    failed, _ = failures(pytester, monkeypatch, "SwapsTwoWrites")
    assert {"test_many_writes_arrive_in_order",
            "test_writes_and_writelines_keep_their_order",
            "test_writelines_streams_a_generator"} <= failed


# ngi.net over TLS ------------------------------------------------------------

class TestNetTLS(TLSConformanceTests, TestNet):
    """The whole suite, and the TLS tests, over TLS on loopback."""


class TestNetTLSThroughTheSSLModule(TestNetTLS):
    """Over TLS on loopback, the data path through the ssl module's methods
    instead of direct OpenSSL calls: what an interpreter whose `_ssl`
    carries its OpenSSL hidden inside gets (and NGI_TLS_DIRECT=0)."""

    @pytest.fixture(autouse=True)
    def through_the_ssl_module(self):
        was = ngi._core.tls_direct_calls()
        assert ngi._core.tls_direct_calls(False) is False
        yield
        ngi._core.tls_direct_calls(was)


class TestNetUnixTLS(TLSConformanceTests, TestNetUnix):
    """Over TLS on Unix sockets (the server name given explicitly)."""


class TestNetInlineTLS(TLSConformanceTests, TestNetInline):
    """Over TLS, the loop run by the test."""


# ngi.aio: on asyncio's own loop and on uvloop --------------------------------

def _loop_in_a_thread(new_loop):
    """Run a fresh loop in a thread; yield it, then stop it.

    The thread makes and closes the loop itself: uvloop made or closed on
    the main thread leaves it one interrupted system call (EINTR) later,
    which cut the core's next poll short in test_core.
    """
    import asyncio
    import threading

    made = []
    ready = threading.Event()

    def run():
        loop = new_loop()
        made.append(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="aio-conformance", daemon=True)
    thread.start()
    assert ready.wait(10), "the asyncio loop did not start"
    loop = made[0]
    try:
        yield loop
    finally:
        async def settle():
            await asyncio.sleep(0.05)  # closes under way finish
        asyncio.run_coroutine_threadsafe(settle(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        assert not thread.is_alive(), "the asyncio loop did not stop"


class TestAio(ConformanceTests):
    """ngi.aio on asyncio's default loop, run in a thread of its own."""

    @staticmethod
    def new_loop():
        import asyncio
        return asyncio.new_event_loop()

    @pytest.fixture
    def implementation(self):
        import ngi.aio
        for loop in _loop_in_a_thread(self.new_loop):
            yield ngi.aio.Implementation(loop)

    @pytest.fixture
    def address(self):
        return lambda: ("127.0.0.1", 0)


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None,
                    reason="uvloop is not installed")
class TestAioUvloop(TestAio):
    """ngi.aio on uvloop (the CI main leg installs it: the bench extra)."""

    @staticmethod
    def new_loop():
        import uvloop
        return uvloop.new_event_loop()


class TestAioTLS(TLSConformanceTests, TestAio):
    """The whole suite, and the TLS tests, over asyncio's TLS."""


class TestAioUvloopTLS(TLSConformanceTests, TestAioUvloop):
    """Over uvloop's TLS."""


class TestAioUnix(UnixAddresses, TestAio):
    """ngi.aio on asyncio's loop, over Unix sockets."""


class TestAioUvloopUnix(TestAioUnix, TestAioUvloop):
    """ngi.aio on uvloop, over Unix sockets."""


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="on Python 3.10, asyncio's start_tls over a Unix socket here "
           "neither completes nor fails the handshake (TCP works); not "
           "yet understood, see docs/asyncio.md")
class TestAioUnixTLS(TLSConformanceTests, TestAioUnix):
    """Over asyncio's TLS on Unix sockets (the server name given explicitly)."""


class TestAioUvloopUnixTLS(TLSConformanceTests, TestAioUvloopUnix):
    """Over uvloop's TLS on Unix sockets."""
