"""The framing adapters over each implementation: in memory (ngi.testing
feeds the core's framer) and on ngi.net, plaintext and TLS, where the core
cuts records straight from its receive buffer and calls the application's
handler itself.  The same input must give the same calls everywhere.

(test_adapters.py tests the adapters' own rules over ngi.testing, and
test_framing.py the framer.)
"""
from __future__ import annotations

import socket
import struct
import threading

import pytest

import ngi.net
import ngi.testing
from ngi.adapters import (Delimited, LineTooLong, Lines, MessageTooLarge,
                          ProtocolError, RESP, Sized)
from ngi.adapters import _Framed
from ngi.testing.conformance import Certificates

from helpers import read_exactly, wait_for


def sized(*records):
    return b"".join(struct.pack(">I", len(r)) + r for r in records)


class Events:
    """An application handler that records its calls, thread-safely."""

    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def add(self, *event):
        with self.lock:
            self.events.append(event)

    def handle_input(self, connection, data):
        self.add("input", data)

    def handle_close(self, connection, reason):
        self.add("close", reason)

    def handle_exception(self, connection, exception):
        self.add("exception", exception)

    @property
    def inputs(self):
        return [e[1] for e in self.events if e[0] == "input"]


class InMemory:
    """A server on an ngi.testing network; `send` writes from a client."""

    def __init__(self):
        self.network = ngi.testing.Network()
        self.peer = None
        self.got = []

    def serve(self, server):
        listener = self.network.listener("framed", server)
        outer = self

        class Client:
            def connected(self, connection):
                outer.peer = connection
                connection.set_handler(self)

            def handle_input(self, connection, data):
                outer.got.append(data)

            def failed_connect(self, reason):
                raise AssertionError(reason)

        self.network.connect(listener.address, Client())
        self.network.run_until_idle()

    def send(self, data):
        self.peer.write(data)
        self.network.run_until_idle()

    def receive(self, size):
        self.network.run_until_idle()
        return b"".join(self.got)[:size]

    def wait_for(self, predicate, what):
        self.network.run_until_idle()
        assert predicate(), what

    def close(self):
        pass


class OnLoopback:
    """A server on ngi.net; `send` writes from a blocking client socket."""

    def __init__(self, tls):
        self.impl = ngi.net.Implementation(name="ngi-framed")
        self.tls = tls
        self.sock = None

    def serve(self, server):
        options = {}
        if self.tls:
            certificates = Certificates.shared()
            options["ssl"] = certificates.server_context()
        listener = self.impl.listener(("127.0.0.1", 0), server, **options)
        self.listener = listener
        sock = socket.create_connection(listener.address, timeout=10)
        if self.tls:
            sock = certificates.client_context().wrap_socket(
                sock, server_hostname="localhost")
        self.sock = sock

    def send(self, data):
        self.sock.sendall(data)

    def receive(self, size):
        return read_exactly(self.sock, size)

    def wait_for(self, predicate, what):
        wait_for(predicate, 10, what)

    def close(self):
        self.sock.close()
        self.listener.close()
        self.impl.wait(10)


@pytest.fixture(params=["ngi.testing", "ngi.net", "ngi.net+tls"])
def over(request):
    if request.param == "ngi.testing":
        where = InMemory()
    else:
        where = OnLoopback(tls=request.param.endswith("tls"))
    yield where
    where.close()


def serve(over, adapter, handler):
    """Serve each connection through ``adapter(connection)`` to ``handler``."""
    adapters = []

    def server(connection):
        framed = adapter(connection)
        adapters.append(framed)
        framed.set_handler(handler)

    over.serve(server)
    return adapters


@pytest.mark.parametrize("adapter, stream, records", [
    (Lines, b"one\ntwo\n\nfour\n", [b"one", b"two", b"", b"four"]),
    (lambda c: Delimited(c, b"\r\n\r\n"),
     b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
     [b"GET / HTTP/1.1\r\nHost: a", b"GET /b HTTP/1.1"]),
    (Sized, sized(b"one", b"", b"x" * 70_000, b"four"),
     [b"one", b"", b"x" * 70_000, b"four"]),
])
@pytest.mark.parametrize("pieces", [1, 3, 7])
def test_records_arrive_whole_however_the_stream_is_cut(
        over, adapter, stream, records, pieces):
    app = Events()
    serve(over, adapter, app)
    size = -(-len(stream) // pieces)
    for start in range(0, len(stream), size):
        over.send(stream[start:start + size])
    over.wait_for(lambda: len(app.inputs) == len(records), "every record")
    assert app.inputs == records


def test_a_switch_of_handlers_takes_the_next_record_of_the_same_input(over):
    second = Events()

    class First(Events):
        def handle_input(self, connection, data):
            super().handle_input(connection, data)
            connection.set_handler(second)

    first = First()
    serve(over, Lines, first)
    over.send(b"one\ntwo\nthr")
    over.send(b"ee\n")
    over.wait_for(lambda: len(second.inputs) == 2, "the second handler's")
    assert first.inputs == [b"one"]
    assert second.inputs == [b"two", b"three"]


@pytest.mark.parametrize("adapter, stream", [
    (Lines, b"a\nquit\nb\n"), (Sized, sized(b"a", b"quit", b"b"))])
def test_no_record_after_the_application_closed(over, adapter, stream):
    class Quitter(Events):
        def handle_input(self, connection, data):
            super().handle_input(connection, data)
            if data == b"quit":
                connection.close()

    app = Quitter()
    adapters = serve(over, adapter, app)
    over.send(stream)
    over.wait_for(lambda: adapters and not adapters[0], "the close")
    assert app.inputs == [b"a", b"quit"]


@pytest.mark.parametrize("adapter, stream, error", [
    (lambda c: Lines(c, max_line=8), b"short\n" + b"x" * 20, LineTooLong),
    (lambda c: Sized(c, max_size=8), sized(b"short") + struct.pack(">I", 9),
     MessageTooLarge),
])
def test_a_broken_limit_closes_with_the_reason_after_the_records_before_it(
        over, adapter, stream, error):
    app = Events()
    serve(over, adapter, app)
    over.send(stream)
    over.wait_for(lambda: any(e[0] == "close" for e in app.events), "the close")
    [(kind, record), (close, reason)] = app.events
    assert (kind, record) == ("input", b"short")
    assert isinstance(reason, error)


def test_a_handler_error_closes_and_reaches_handle_close(over):
    seen = []

    class Failing(Events):
        def handle_input(self, connection, data):
            seen.append(connection)
            raise ValueError(data)

    app = Failing()
    adapters = serve(over, Lines, app)
    over.send(b"boom\nnever\n")
    over.wait_for(lambda: any(e[0] == "close" for e in app.events),
                  "handle_close")
    [(kind, reason)] = app.events  # and no "never"
    assert kind == "close"
    # ngi.net gives the exception; ngi.testing a text naming it (porting.md).
    assert (isinstance(reason, ValueError) and reason.args == (b"boom",)
            or reason == "handle_input raised ValueError: b'boom'")
    assert seen == adapters  # the handler is given the adapter


def test_nested_adapters_frame_in_turn(over):
    app = Events()
    serve(over, lambda c: Lines(Sized(c)), app)
    over.send(sized(b"a\nb", b"c\n"))
    over.wait_for(lambda: len(app.inputs) == 2, "both lines")
    assert app.inputs == [b"a", b"bc"]


@pytest.mark.parametrize("tls", [False, True])
def test_on_ngi_net_the_core_cuts_the_records_itself(monkeypatch, tls):
    """The adapter's Python handle_input is not on ngi.net's path."""
    def not_here(self, connection, data):
        raise AssertionError("the records were cut in Python")

    monkeypatch.setattr(_Framed, "handle_input", not_here)
    where = OnLoopback(tls)
    try:
        app = Events()
        serve(where, Lines, app)
        where.send(b"one\ntwo\n")
        where.wait_for(lambda: len(app.inputs) == 2, "both lines")
        assert app.events == [("input", b"one"), ("input", b"two")]
    finally:
        where.close()


def test_sized_replies_small_and_large_arrive_framed(over):
    """(A large record leaves as prefix and body unjoined on ngi.net.)"""
    class Replies:
        def handle_input(self, connection, data):
            connection.write(data)
            connection.write(data * 3)

    serve(over, Sized, Replies())
    records = [b"tiny", bytes(range(256)) * 400]
    over.send(sized(*records))
    expected = sized(*(r * k for r in records for k in (1, 3)))
    assert over.receive(len(expected)) == expected


@pytest.mark.parametrize("pieces", [1, 5])
def test_expect_takes_a_body_after_its_head_within_one_input(over, pieces):
    class Heads(Events):
        def handle_input(self, connection, data):
            super().handle_input(connection, data)
            if data.startswith(b"POST"):
                connection.expect(int(data.rsplit(b" ", 1)[1]))

    app = Heads()
    serve(over, lambda c: Delimited(c, b"\r\n\r\n"), app)
    body = b"a body\r\n\r\nwith the delimiter in it"
    stream = (b"POST %d\r\n\r\n" % len(body) + body
              + b"GET\r\n\r\nPOST 0\r\n\r\nGET\r\n\r\n")
    size = -(-len(stream) // pieces)
    for start in range(0, len(stream), size):
        over.send(stream[start:start + size])
    records = [b"POST %d" % len(body), body, b"GET", b"POST 0", b"", b"GET"]
    over.wait_for(lambda: len(app.inputs) == len(records), "every record")
    assert app.inputs == records


def resp(*arguments):
    return b"*%d\r\n" % len(arguments) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in arguments)


@pytest.mark.parametrize("pieces", [1, 4])
def test_redis_commands_arrive_as_argument_lists(over, pieces):
    app = Events()
    serve(over, RESP, app)
    stream = (resp(b"SET", b"k", b"a\r\nvalue") + b"PING\r\n"
              + resp(b"GET", b"k") + b"*1\r\n:5\r\n" + resp(b"NEVER"))
    size = -(-len(stream) // pieces)
    for start in range(0, len(stream), size):
        over.send(stream[start:start + size])
    over.wait_for(lambda: any(e[0] == "close" for e in app.events), "the close")
    *inputs, (close, reason) = app.events
    assert inputs == [("input", [b"SET", b"k", b"a\r\nvalue"]),
                      ("input", [b"PING"]), ("input", [b"GET", b"k"])]
    assert isinstance(reason, ProtocolError)
    assert str(reason) == "expected '$', got ':'"


def test_a_broken_limits_handler_may_write_last_words(over):
    class Answers(Events):
        def handle_close(self, connection, reason):
            super().handle_close(connection, reason)
            connection.write(b"-ERR %s\r\n" % str(reason).encode())

    serve(over, RESP, Answers())
    over.send(b"*1\r\n:5\r\n")
    expected = b"-ERR expected '$', got ':'\r\n"
    assert over.receive(len(expected)) == expected
