"""What is particular to ngi.aio: which loop it runs on, threads, the bridge.

What every implementation shares (data, closing, flow control, TLS) is in
the conformance suite (tests/test_conformance.py, TestAio*).
"""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import pytest

import ngi.aio
import ngi.net
from ngi.interfaces import ConnectionClosed

from helpers import read_exactly

TIMEOUT = 10.0


def wait_for(predicate, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def echo_listener(impl):
    """An echo listener, and the list its server connections go to."""
    accepted = []
    listener = impl.listener(None, lambda c: (c.set_handler(Echo()),
                                              accepted.append(c)))
    return listener, accepted


@pytest.fixture
def loop():
    """An asyncio loop running in a thread of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(TIMEOUT)
    loop.close()


class Echo:
    def __init__(self):
        self.threads = set()

    def __call__(self, connection):
        connection.set_handler(self)

    def handle_input(self, connection, data):
        self.threads.add(threading.get_ident())
        connection.write(data)


# -- which loop ----------------------------------------------------------------

def test_without_a_loop_it_uses_the_one_running_where_first_used():
    async def main():
        impl = ngi.aio.Implementation()
        listener = impl.listener(None, Echo())
        assert impl.loop is asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection(*listener.address)
        writer.write(b"ping")
        reply = await asyncio.wait_for(reader.readexactly(4), TIMEOUT)
        writer.close()
        listener.close()
        return reply

    assert asyncio.run(main()) == b"ping"


def test_without_a_loop_first_use_outside_one_is_an_error():
    impl = ngi.aio.Implementation()
    with pytest.raises(RuntimeError, match="no loop"):
        impl.listener(None, Echo())


def test_a_loop_that_is_not_an_asyncio_loop_is_refused():
    with pytest.raises(TypeError, match="asyncio event loop"):
        ngi.aio.Implementation("loop")


def test_thready_is_refused(loop):
    with pytest.raises(ValueError, match="thready"):
        ngi.aio.Implementation(loop).listener(None, Echo(), thready=True)


# -- the hot path -----------------------------------------------------------------

def test_an_echo_runs_no_python_frame_of_ngi_per_request():
    """data_received and write are the core's (AioStream): of ngi and the
    handler, only the handler runs Python, as in a plain Protocol."""
    import os
    import sys
    here = os.path.dirname(ngi.aio.__file__)

    async def main():
        impl = ngi.aio.Implementation()
        listener, accepted = echo_listener(impl)
        reader, writer = await asyncio.open_connection(*listener.address)
        writer.write(b"warm")
        assert await asyncio.wait_for(reader.readexactly(4), TIMEOUT) == b"warm"
        [connection] = accepted
        calls = []

        def profile(frame, event, arg):
            code = frame.f_code
            if event == "call" and (code.co_filename.startswith(here)
                                    or code.co_filename == __file__):
                calls.append((os.path.basename(code.co_filename), code.co_name))

        sys.setprofile(profile)
        try:
            connection.data_received(b"ping")
        finally:
            sys.setprofile(None)
        reply = await asyncio.wait_for(reader.readexactly(4), TIMEOUT)
        writer.close()
        listener.close()
        return calls, reply

    calls, reply = asyncio.run(main())
    assert reply == b"ping"
    assert calls == [("test_aio.py", "handle_input")]


# -- threads --------------------------------------------------------------------

def test_handlers_run_on_the_loop_thread(loop):
    impl = ngi.aio.Implementation(loop)
    echo = Echo()
    listener = impl.listener(None, echo)
    async def ident():
        return threading.get_ident()

    loop_thread = asyncio.run_coroutine_threadsafe(ident(), loop).result(TIMEOUT)
    with socket.create_connection(listener.address, TIMEOUT) as sock:
        sock.sendall(b"where?")
        assert read_exactly(sock, 6) == b"where?"
    assert echo.threads == {loop_thread}
    listener.close()


def test_writes_from_many_threads_keep_each_threads_order_unbroken(loop):
    impl = ngi.aio.Implementation(loop)
    accepted = []

    class Quiet:
        def handle_input(self, connection, data):
            pass

    def server(connection):
        connection.set_handler(Quiet())
        accepted.append(connection)

    listener = impl.listener(None, server)
    threads, per_thread = 8, 200
    with socket.create_connection(listener.address, TIMEOUT) as sock:
        wait_for(lambda: accepted, "the server side")
        connection = accepted[0]

        def writer(n):
            for i in range(per_thread):
                connection.write(b"<%d:%04d>" % (n, i))

        workers = [threading.Thread(target=writer, args=(n,))
                   for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(TIMEOUT)
        data = read_exactly(sock, threads * per_thread * 8)
    records = [data[i:i + 8] for i in range(0, len(data), 8)]
    assert len(records) == threads * per_thread
    for n in range(threads):
        mine = [r for r in records if r.startswith(b"<%d:" % n)]
        assert mine == [b"<%d:%04d>" % (n, i) for i in range(per_thread)]
    listener.close()


def test_a_write_from_another_thread_counts_before_the_loop_takes_it(loop):
    impl = ngi.aio.Implementation(loop)
    listener, accepted = echo_listener(impl)
    with socket.create_connection(listener.address, TIMEOUT) as sock:
        wait_for(lambda: accepted, "the server side")
        connection = accepted[0]
        busy, release = threading.Event(), threading.Event()

        def hold_the_loop():
            busy.set()
            release.wait(TIMEOUT)

        loop.call_soon_threadsafe(hold_the_loop)
        assert busy.wait(TIMEOUT)
        connection.write(b"x" * 1000)
        assert connection.write_buffer_size == 1000  # not yet on the loop
        release.set()
        assert read_exactly(sock, 1000) == b"x" * 1000
        wait_for(lambda: connection.write_buffer_size == 0, "an empty buffer")
    listener.close()


def test_close_from_another_thread_is_seen_at_once(loop):
    impl = ngi.aio.Implementation(loop)
    listener, accepted = echo_listener(impl)
    with socket.create_connection(listener.address, TIMEOUT) as sock:
        wait_for(lambda: accepted, "the server side")
        connection = accepted[0]
        connection.write(b"bye")
        connection.close()
        assert not connection
        with pytest.raises(ConnectionClosed):
            connection.write(b"more")
        assert read_exactly(sock, 10) == b"bye"  # then the end
    listener.close()


def test_call_from_thread_runs_on_the_loop_and_logs_failures(loop, caplog):
    impl = ngi.aio.Implementation(loop)
    ran = []

    def failing():
        ran.append(threading.get_ident())
        raise ValueError("call bug")

    impl.call_from_thread(failing)
    impl.call_from_thread(lambda: ran.append("after"))
    wait_for(lambda: len(ran) == 2, "both calls")
    assert ran[0] != threading.get_ident() and ran[1] == "after"
    assert any(r.name == "ngi.aio" and "call bug" in str(r.exc_info[1])
               for r in caplog.records)
    with pytest.raises(TypeError, match="callable"):
        impl.call_from_thread("not callable")


def test_handler_exceptions_are_logged_under_ngi_aio(loop, caplog):
    impl = ngi.aio.Implementation(loop)

    class Failing:
        def handle_input(self, connection, data):
            raise ValueError("handler bug")

    with caplog.at_level(logging.INFO, logger="ngi.aio"):
        listener = impl.listener(None, lambda c: c.set_handler(Failing()))
        with socket.create_connection(listener.address, TIMEOUT) as sock:
            sock.sendall(b"x")
            assert read_exactly(sock, 1) == b""  # closed
        wait_for(lambda: any(r.name == "ngi.aio" for r in caplog.records),
                 "the log record")
    [record] = [r for r in caplog.records if r.name == "ngi.aio"]
    assert record.levelno == logging.ERROR
    assert "handle_input" in record.getMessage()
    assert str(record.exc_info[1]) == "handler bug"
    assert any(r.name == "ngi.aio.server" and "listening on" in r.getMessage()
               for r in caplog.records)
    listener.close()


# -- the bridge -------------------------------------------------------------------

class Asks:
    """On input, runs ``make(data)`` on the bridge and writes the outcome."""

    def __init__(self, bridge, make):
        self.bridge = bridge
        self.make = make
        self.outcomes = []
        self.threads = []
        self.calls = []
        self.closes = []

    def __call__(self, connection):
        connection.set_handler(self)

    def handle_input(self, connection, data):
        self.calls.append(self.bridge.call(
            self.make(data), lambda future: self.done(connection, future),
            connection))

    def done(self, connection, future):
        self.threads.append(threading.get_ident())
        try:
            connection.write(b"=" + future.result())
        except Exception as e:
            connection.write(b"!" + type(e).__name__.encode())
        self.outcomes.append(future)

    def handle_close(self, connection, reason):
        self.closes.append(reason)


@pytest.fixture
def net():
    impl = ngi.net.Implementation(name="ngi-bridge-test")
    yield impl
    impl.wait(TIMEOUT)


@pytest.fixture
def bridge():
    bridge = ngi.aio.Bridge()
    yield bridge
    bridge.close()


def test_the_bridge_delivers_a_result_on_the_ngi_loop_thread(net, bridge):
    async def upper(data):
        await asyncio.sleep(0.01)  # a real suspension on the asyncio loop
        return data.upper()

    asks = Asks(bridge, upper)
    listener = net.listener(None, asks)
    net_thread = []
    net.call_from_thread(lambda: net_thread.append(threading.get_ident()))
    with socket.create_connection(listener.address, TIMEOUT) as sock:
        sock.sendall(b"hello")
        assert read_exactly(sock, 6) == b"=HELLO"
    assert asks.threads == net_thread
    assert asks.calls[0].done
    listener.close()


def test_the_bridge_delivers_an_error(net, bridge):
    async def failing(data):
        await asyncio.sleep(0)
        raise KeyError(data)

    asks = Asks(bridge, failing)
    listener = net.listener(None, asks)
    with socket.create_connection(listener.address, TIMEOUT) as sock:
        sock.sendall(b"k")
        assert read_exactly(sock, 9) == b"!KeyError"
    assert isinstance(asks.outcomes[0].exception(), KeyError)
    listener.close()


def test_a_close_during_the_call_cancels_it_and_nothing_is_delivered(
        net, bridge):
    started, cancelled = threading.Event(), threading.Event()

    async def slow(data):
        started.set()
        try:
            await asyncio.sleep(TIMEOUT)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return data

    asks = Asks(bridge, slow)
    listener = net.listener(None, asks)
    with socket.create_connection(listener.address, TIMEOUT) as sock:
        sock.sendall(b"x")
        assert started.wait(TIMEOUT)
    # The peer closed: the coroutine is cancelled soon after.
    assert cancelled.wait(TIMEOUT)
    wait_for(lambda: asks.closes, "handle_close")
    time.sleep(0.1)
    assert asks.outcomes == []
    assert asks.calls[0].done
    listener.close()


def test_a_result_that_arrives_after_the_close_is_dropped(net, bridge):
    release = threading.Event()

    async def waits(data):
        await asyncio.get_running_loop().run_in_executor(
            None, release.wait, TIMEOUT)
        return data  # not cancellable while in the executor: it finishes

    accepted = []
    asks = Asks(bridge, waits)
    listener = net.listener(None, lambda c: (asks(c), accepted.append(c)))
    with socket.create_connection(listener.address, TIMEOUT) as sock:
        sock.sendall(b"x")
        wait_for(lambda: asks.calls, "the call")
        accepted[0].close()  # our own close: no handle_close
        assert read_exactly(sock, 1) == b""
    release.set()
    wait_for(lambda: asks.calls[0].done, "the call to end")
    time.sleep(0.1)
    assert asks.outcomes == []
    listener.close()


def test_cancel_stops_the_coroutine_and_its_delivery(net, bridge):
    started, cancelled = threading.Event(), threading.Event()

    async def slow():
        started.set()
        try:
            await asyncio.sleep(TIMEOUT)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    got = []
    bridged = ngi.aio.Bridge(implementation=net, loop=bridge.loop)
    call = bridged.call(slow(), got.append)
    assert started.wait(TIMEOUT)
    call.cancel()
    assert cancelled.wait(TIMEOUT)
    time.sleep(0.1)
    assert got == [] and call.done


def test_an_on_done_that_raises_is_logged_and_closes_the_connection(
        net, bridge, caplog):
    async def value(data):
        return data

    class Breaks(Asks):
        def done(self, connection, future):
            raise RuntimeError("on_done bug")

    asks = Breaks(bridge, value)
    listener = net.listener(None, asks)
    with socket.create_connection(listener.address, TIMEOUT) as sock:
        sock.sendall(b"x")
        assert read_exactly(sock, 1) == b""  # closed
    wait_for(lambda: any(r.name == "ngi.aio.bridge" for r in caplog.records),
             "the log record")
    listener.close()


def test_the_bridge_checks_its_arguments(bridge):
    async def nothing():
        pass

    with pytest.raises(TypeError, match="coroutine"):
        bridge.call(nothing, print)
    with pytest.raises(TypeError, match="on_done"):
        bridge.call(nothing(), "print")
    with pytest.raises(RuntimeError, match="ngi.net loop thread"):
        bridge.call(nothing(), print)  # no implementation, not on a loop
    with pytest.raises(TypeError, match="call_from_thread"):
        ngi.aio.Bridge(implementation=object())
    with pytest.raises(TypeError, match="asyncio event loop"):
        ngi.aio.Bridge(loop="loop")


def test_a_bridge_from_ngi_aio_to_another_asyncio_loop(loop, bridge):
    """The implementation may be ngi.aio itself (a loop that must not block
    on some other loop's library)."""
    impl = ngi.aio.Implementation(loop)
    bridged = ngi.aio.Bridge(implementation=impl, loop=bridge.loop)
    asks = Asks(bridged, lambda data: asyncio.sleep(0, data[::-1]))
    listener = impl.listener(None, asks)
    with socket.create_connection(listener.address, TIMEOUT) as sock:
        sock.sendall(b"abc")
        assert read_exactly(sock, 4) == b"=cba"
    listener.close()


def test_writelines_paces_itself_and_writes_behind_it_are_told_to_pause(loop):
    """A writelines iterator stops being pulled above the high mark without
    telling the handler; a write that then waits behind it does tell it."""
    impl = ngi.aio.Implementation(loop)
    accepted, flow = [], []

    class Writer:
        def handle_input(self, connection, data):
            pass

        def handle_pause_writing(self, connection):
            flow.append("pause")

        def handle_resume_writing(self, connection):
            flow.append("resume")

    def server(connection):
        connection.set_handler(Writer())
        accepted.append(connection)

    listener = impl.listener(None, server)
    pulled = []

    def body():
        for i in range(2000):  # 128 MiB if it were all pulled
            pulled.append(i)
            yield b"%06d" % i * 10922 + b"...."  # 64 KiB

    with socket.create_connection(listener.address, TIMEOUT) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        wait_for(lambda: accepted, "the server side")
        connection = accepted[0]
        connection.writelines(body())
        stalled = None
        deadline = time.monotonic() + TIMEOUT
        while stalled != len(pulled):  # the peer reads nothing: pulling stops
            assert time.monotonic() < deadline, "pulling did not stop"
            stalled = len(pulled)
            time.sleep(0.1)
        assert stalled < 2000 and flow == []
        connection.write(b"behind")
        wait_for(lambda: flow == ["pause"], "handle_pause_writing")
        connection.abort()
    listener.close()
