"""Tests for what is particular to ngi.testing.

Behaviour that every implementation shares is in the conformance suite
(test_conformance.py); here are the printing handlers, the scripting
helpers, the in-memory rules (synchronous delivery, queueing, no
re-entrancy) that tests rely on, and the simulated network: chunks,
deferred delivery, virtual time, faults and exact flow-control figures.
"""
from __future__ import annotations

import array
import errno
import itertools
import logging
import subprocess
import sys

import pytest

import ngi.testing
from ngi.interfaces import ConnectionClosed, ConnectionFailed

from helpers import InputOnly, Recorder

_counter = itertools.count()


def address():
    """An address no other test uses."""
    return ("test_testing", next(_counter))


class Client:
    def __init__(self, handler=None):
        self.handler = handler if handler is not None else Recorder()
        self.connections = []
        self.failures = []

    def connected(self, connection):
        connection.set_handler(self.handler)
        self.connections.append(connection)

    def failed_connect(self, reason):
        self.failures.append(reason)


def dial(listener, client=None):
    """Connect a `Client` through ``listener.connect``: the client end."""
    client = Client() if client is None else client
    assert listener.connect(handler=client) is None  # as in zc.ngi
    return client.connections[0]


def pair():
    """A connection and a recorder on its peer."""
    peer = Recorder()
    return ngi.testing.Connection(peer), peer


# Printing handlers ----------------------------------------------------------

def test_the_peer_prints_what_it_receives(capsys):
    connection = ngi.testing.Connection()
    connection.write(b"hello")
    connection.write(bytearray(b"\x00\xff"))
    assert capsys.readouterr().out == "-> b'hello'\n-> b'\\x00\\xff'\n"


def test_long_data_is_printed_in_50_character_pieces(capsys):
    connection = ngi.testing.Connection()
    data = bytes(range(97, 123)) * 4  # 104 bytes, repr is 107 characters
    connection.write(data)
    text = repr(data)
    assert capsys.readouterr().out == (
        f"-> {text[:50]}\n.> {text[50:100]}\n.> {text[100:]}\n")


def test_printing_close_and_close_reason(capsys):
    connection = ngi.testing.Connection()
    connection.close()
    assert capsys.readouterr().out == "-> CLOSE\n"
    connection = ngi.testing.Connection()
    connection.peer.test_close("network down")
    assert capsys.readouterr().out == "-> CLOSE network down\n"


def test_printing_exception(capsys):
    connection = ngi.testing.Connection()
    connection.peer.writelines([b"x", 42])
    assert capsys.readouterr().out == (
        "-> EXCEPTION TypeError writelines() expects bytes-like items, "
        "got int\n")
    assert connection.peer  # handle_exception returned: still open


def test_text_connection_prints_text(capsys):
    connection = ngi.testing.TextConnection()
    connection.write(b"Hello\n")
    connection.write("Gr\u00fc\u00dfe".encode())
    connection.write(b"two\nlines\n")
    connection.close()
    assert capsys.readouterr().out == (
        "Hello\nGr\u00fc\u00dfe\ntwo\nlines\n-> CLOSE\n")


def test_printing_handlers_are_public_and_usable_directly(capsys):
    connection = ngi.testing.Connection(ngi.testing.TextPrintingHandler())
    connection.write(b"text")
    connection = ngi.testing.TextConnection(ngi.testing.PrintingHandler())
    connection.write(b"text")
    assert capsys.readouterr().out == "text\n-> b'text'\n"


# Connections ----------------------------------------------------------------

def test_connection_makes_a_pair():
    connection, peer = pair()
    assert connection.peer.peer is connection
    assert connection.peer is not connection
    assert connection and connection.peer
    assert connection.peer_address == "<test>"
    connection.write(b"to the peer")
    assert peer.inputs == [b"to the peer"]
    mine = Recorder()
    connection.set_handler(mine)
    connection.peer.write(b"back")
    assert mine.inputs == [b"back"]


def test_write_accepts_any_bytes_like_object():
    connection, peer = pair()
    numbers = array.array("H", [1, 2])
    connection.write(b"a")
    connection.write(bytearray(b"b"))
    connection.write(memoryview(b"xcx")[1:2])
    connection.write(numbers)
    assert peer.inputs == [b"a", b"b", b"c", numbers.tobytes()]
    assert all(type(data) is bytes for data in peer.inputs)


@pytest.mark.parametrize("data, name", [("text", "str"), (42, "int"),
                                        (None, "NoneType")])
def test_write_rejects_what_is_not_bytes_like(data, name):
    connection, peer = pair()
    with pytest.raises(TypeError,
                       match=f"^write\\(\\) expects bytes-like data, got {name}$"):
        connection.write(data)
    assert peer.events == []


def test_write_copies_mutable_data():
    # The server sets no handler yet, so the data waits in a queue and a
    # copy not made at write time would show the change.
    accepted = []
    listener = ngi.testing.listener(accepted.append)
    try:
        client = dial(listener)
        buffer = bytearray(b"original")
        client.write(buffer)
        client.write(memoryview(buffer))
        buffer[:] = b"changed!"
        server = Recorder()
        accepted[0].set_handler(server)
        assert server.inputs == [b"original", b"original"]
    finally:
        listener.close()


def test_empty_write_delivers_nothing(capsys):
    connection = ngi.testing.Connection()
    connection.write(b"")
    connection.write(bytearray())
    connection.writelines([b"", b""])
    assert capsys.readouterr().out == ""


def test_close_tells_only_the_peer():
    connection, peer = pair()
    mine = Recorder()
    connection.set_handler(mine)
    connection.close()
    assert not connection
    assert not connection.peer
    assert peer.closes == ["closed"]
    assert mine.events == []
    connection.close()  # closing again does nothing
    assert peer.closes == ["closed"]


def test_no_handle_close_after_own_close_even_if_the_peer_closes_too():
    connection = ngi.testing.Connection()
    mine = Recorder()
    connection.set_handler(mine)

    class ClosesBoth(Recorder):
        def handle_input(self, peer, data):
            connection.close()  # queued for this busy handler...
            peer.close()  # ...which closes too before hearing of it

    closer = ClosesBoth()
    connection.peer.set_handler(closer)
    connection.write(b"go")
    connection.test_close("too late")
    assert mine.events == []
    assert closer.events == []
    assert not connection and not connection.peer


def test_writing_after_close_raises_connection_closed():
    connection, peer = pair()
    connection.close()
    with pytest.raises(ConnectionClosed, match="closed"):
        connection.write(b"x")
    with pytest.raises(ConnectionClosed):
        connection.writelines([b"x"])
    # The peer was closed from outside: it may not write either.
    with pytest.raises(ConnectionClosed):
        connection.peer.write(b"x")
    assert peer.inputs == []


def test_test_input_and_test_close_act_as_the_peer():
    connection = ngi.testing.Connection()
    mine = Recorder()
    connection.set_handler(mine)
    connection.test_input(b"from the peer")
    connection.test_input(bytearray(b"more"))
    connection.test_input(b"")
    connection.test_close("reset")
    assert mine.events == [("input", b"from the peer"), ("input", b"more"),
                           ("close", "reset")]
    assert not connection
    with pytest.raises(TypeError, match="bytes-like"):
        ngi.testing.Connection().test_input("text")


def test_input_and_close_before_set_handler_are_delivered_in_order():
    connection = ngi.testing.Connection()
    connection.test_input(b"one")
    connection.test_input(b"two")
    connection.test_close("gone")
    assert connection  # the close takes effect when it is delivered
    mine = Recorder()
    connection.set_handler(mine)
    assert mine.events == [("input", b"one"), ("input", b"two"),
                           ("close", "gone")]
    assert not connection


def test_set_handler_requires_handle_input():
    connection = ngi.testing.Connection()
    with pytest.raises(TypeError, match="handle_input"):
        connection.set_handler(object())
    connection.set_handler(InputOnly())  # handle_close is optional
    connection.test_close("fine without handle_close")
    assert not connection


def test_switching_handlers_inside_a_handler():
    connection = ngi.testing.Connection()
    second = Recorder()

    class First(Recorder):
        def handle_input(self, connection, data):
            super().handle_input(connection, data)
            connection.set_handler(second)

    first = First()
    # Queue everything first, so the switch happens mid-delivery.
    connection.test_input(b"1")
    connection.test_input(b"2")
    connection.test_close("end")
    connection.set_handler(first)
    assert first.events == [("input", b"1")]
    assert second.events == [("input", b"2"), ("close", "end")]


def test_handlers_are_never_reentered():
    connection = ngi.testing.Connection()
    depth = []
    order = []

    class Echo:
        def handle_input(self, connection, data):
            order.append(("peer", data))
            connection.write(data + b"!")

    class Mine:
        running = 0

        def handle_input(self, connection, data):
            self.running += 1
            depth.append(self.running)
            order.append(("mine", data))
            if len(data) < 3:
                connection.write(data)  # the echo comes back at once
                order.append(("mine done", data))
            self.running -= 1

    connection.peer.set_handler(Echo())
    connection.set_handler(Mine())
    connection.test_input(b"a")
    assert depth == [1, 1, 1]
    assert order == [("mine", b"a"), ("peer", b"a"), ("mine done", b"a"),
                     ("mine", b"a!"), ("peer", b"a!"), ("mine done", b"a!"),
                     ("mine", b"a!!")]


def test_close_from_a_handler_drops_queued_input():
    connection = ngi.testing.Connection()

    class Quitter(Recorder):
        def handle_input(self, connection, data):
            super().handle_input(connection, data)
            connection.close()

    quitter = Quitter()
    connection.test_input(b"quit")
    connection.test_input(b"ignored")
    connection.set_handler(quitter)
    assert quitter.events == [("input", b"quit")]


# writelines -----------------------------------------------------------------

@pytest.mark.parametrize("data", [b"abc", "abc", bytearray(b"abc"),
                                  memoryview(b"abc")])
def test_writelines_of_a_single_chunk_is_a_type_error(data):
    connection, peer = pair()
    with pytest.raises(TypeError, match="iterable of bytes-like objects, got"):
        connection.writelines(data)
    assert peer.events == []


def test_writelines_of_a_non_iterable_is_a_type_error():
    connection, peer = pair()
    with pytest.raises(TypeError):
        connection.writelines(42)


def test_writelines_sends_each_item():
    connection, peer = pair()
    connection.writelines(iter([b"a", bytearray(b"b"), memoryview(b"c")]))
    assert peer.inputs == [b"a", b"b", b"c"]


def test_writelines_bad_item_goes_to_the_writers_handle_exception():
    connection, peer = pair()
    mine = Recorder()
    connection.set_handler(mine)
    closed = []

    def items():
        try:
            yield b"good"
            yield "bad"
            yield b"never"
        finally:
            closed.append(True)

    connection.writelines(items())
    assert peer.inputs == [b"good"]
    [exception] = mine.exceptions
    assert isinstance(exception, TypeError)
    assert str(exception) == "writelines() expects bytes-like items, got str"
    assert closed == [True]  # the iterator was dropped, and closed
    assert connection  # handle_exception returned normally
    assert peer.closes == []


def test_writelines_error_waits_for_a_handler():
    connection, peer = pair()

    def items():
        yield b"x"
        raise OSError("disk gone")

    connection.writelines(items())
    mine = Recorder()
    connection.set_handler(mine)
    [exception] = mine.exceptions
    assert isinstance(exception, OSError)


def test_writelines_error_without_handle_exception_closes(capsys):
    connection, peer = pair()
    mine = InputOnly()
    connection.set_handler(mine)
    connection.writelines([b"x", 1])
    assert not connection
    assert peer.closes == ["closed"]
    out = capsys.readouterr().out
    assert "TypeError: writelines() expects bytes-like items, got int" in out


def test_writelines_error_without_handle_exception_calls_handle_close():
    connection, peer = pair()

    class Handler:
        def __init__(self):
            self.closes = []

        def handle_input(self, connection, data):
            pass

        def handle_close(self, connection, reason):
            self.closes.append(str(reason))

    handler = Handler()
    connection.set_handler(handler)
    connection.writelines([1])
    assert not connection
    [reason] = handler.closes
    assert "TypeError" in reason


def test_handle_exception_that_raises_closes(capsys):
    connection, peer = pair()

    class Failing(Recorder):
        def handle_exception(self, connection, exception):
            raise RuntimeError("cannot cope")

    mine = Failing()
    connection.set_handler(mine)
    connection.writelines([1])
    assert not connection
    assert peer.closes == ["closed"]
    assert len(mine.closes) == 1
    assert "handle_exception" in mine.closes[0]
    assert "RuntimeError: cannot cope" in capsys.readouterr().out


# Handler exceptions ---------------------------------------------------------

def test_handle_input_exception_is_printed_logged_and_closes(capsys, caplog):
    connection, peer = pair()

    class Failing(Recorder):
        def handle_input(self, connection, data):
            super().handle_input(connection, data)
            raise ValueError("handler bug")

    mine = Failing()
    connection.test_input(b"first")
    connection.test_input(b"second")
    with caplog.at_level(logging.ERROR, logger="ngi.testing"):
        connection.set_handler(mine)
    out = capsys.readouterr().out
    assert "Traceback (most recent call last):" in out
    assert "ValueError: handler bug" in out
    assert [r.name for r in caplog.records] == ["ngi.testing"]
    assert caplog.records[0].exc_info[0] is ValueError
    assert not connection
    assert mine.inputs == [b"first"]  # the rest was dropped
    [reason] = mine.closes
    assert "handle_input" in reason and "handler bug" in reason
    assert peer.closes == ["closed"]


def test_handle_close_exception_is_printed(capsys):
    connection = ngi.testing.Connection()

    class Failing(InputOnly):
        def handle_close(self, connection, reason):
            raise ValueError("close bug")

    connection.set_handler(Failing())
    connection.test_close("bye")
    assert "ValueError: close bug" in capsys.readouterr().out
    assert not connection


# Listeners and connect ------------------------------------------------------

class Server:
    def __init__(self, factory=Recorder):
        self.factory = factory
        self.connections = []
        self.handlers = []

    def __call__(self, connection):
        handler = self.factory()
        connection.set_handler(handler)
        self.connections.append(connection)
        self.handlers.append(handler)


class UpperEcho(Recorder):
    """Records, and writes back what it gets in upper case."""

    def handle_input(self, connection, data):
        super().handle_input(connection, data)
        connection.write(data.upper())


def test_connect_reaches_a_listener_synchronously():
    where = address()
    server = Server(UpperEcho)
    listener = ngi.testing.listener(where, server)
    try:
        assert listener.address == where
        client = Client()
        ngi.testing.connect(where, client)
        [connection] = client.connections
        [server_connection] = server.connections
        assert server_connection.control is listener
        assert server_connection.peer is connection
        assert connection.peer_address == where
        assert server_connection.peer_address == "<test>"
        connection.write(b"hi")
        assert client.handler.inputs == [b"HI"]
        assert list(listener.connections()) == [server_connection]
    finally:
        listener.close()


def test_server_output_before_connected_is_queued():
    def greeter(connection):
        connection.set_handler(Recorder())
        connection.write(b"welcome")

    listener = ngi.testing.listener(address(), greeter)
    try:
        client = Client()
        ngi.testing.connect(listener.address, client)
        assert client.handler.inputs == [b"welcome"]
    finally:
        listener.close()


def test_a_bound_address_is_busy():
    where = address()
    listener = ngi.testing.listener(where, Server())
    try:
        with pytest.raises(OSError, match="already in use"):
            ngi.testing.listener(where, Server())
    finally:
        listener.close()
    ngi.testing.listener(where, Server()).close()  # free again


def test_anonymous_listener(capsys):
    server = Server(UpperEcho)
    listener = ngi.testing.listener(server)
    try:
        connection = listener.connect()  # the client end, printing
        connection.write(b"hello")
        assert capsys.readouterr().out == "-> b'HELLO'\n"
        assert server.connections[0].control is listener
        # connect(handler=) hands the client end to handler.connected.
        dial(listener)
        # As in zc.ngi, it has no address, and nothing else reaches it.
        assert listener.address is None
        other = Client()
        ngi.testing.connect(None, other)
        assert other.failures == ["no such server"]
        assert len(list(listener.connections())) == 2
    finally:
        listener.close()
    with pytest.raises(ConnectionFailed):
        listener.connect()
    late = Client()
    listener.connect(handler=late)
    assert late.failures and not late.connections


def test_listener_with_address_none_gets_a_fresh_address():
    listener = ngi.testing.listener(None, Server())
    try:
        assert listener.address is not None
        client = Client()
        ngi.testing.connect(listener.address, client)
        assert client.connections
    finally:
        listener.close()


def test_listener_needs_a_server():
    with pytest.raises(TypeError, match="server"):
        ngi.testing.listener(address(), None)


def test_listener_close_stops_connections_now(capsys):
    server = Server()
    listener = ngi.testing.listener(server)
    listener.connect()
    listener.connect()
    listener.close()
    assert [h.closes for h in server.handlers] == [["stopped"], ["stopped"]]
    assert capsys.readouterr().out == "-> CLOSE\n-> CLOSE\n"
    assert list(listener.connections()) == []
    client = Client()
    ngi.testing.connect(listener.address, client)
    assert client.failures == ["no such server"]


def test_listener_close_from_inside_a_server_handler():
    events = []

    class Stopper(Recorder):
        def handle_input(self, connection, data):
            connection.control.close()
            events.append("returned")

        def handle_close(self, connection, reason):
            events.append(reason)

    listener = ngi.testing.listener(Server(Stopper))
    connection = dial(listener)
    connection.write(b"stop")
    assert events == ["returned", "stopped"]  # no re-entry


def test_listener_close_with_handler():
    listener = ngi.testing.listener(Server())
    one = dial(listener)
    two = dial(listener)
    done = []
    listener.close(done.append)
    assert done == []
    one.close()
    assert done == []
    two.close()
    assert done == [listener]
    done2 = []
    listener.close(done2.append)  # nothing open: called at once
    assert done2 == [listener]


def test_server_exception_is_printed_and_closes_that_connection(capsys):
    calls = []

    def server(connection):
        calls.append(connection)
        if len(calls) == 1:
            raise ValueError("server bug")
        connection.set_handler(UpperEcho())

    listener = ngi.testing.listener(server)
    try:
        first = Client()
        listener.connect(handler=first)
        assert first.handler.closes == ["closed"]
        assert "ValueError: server bug" in capsys.readouterr().out
        second = Client()
        dial(listener, second).write(b"ok")
        assert second.handler.inputs == [b"OK"]
        assert list(listener.connections()) == [calls[1]]
    finally:
        listener.close()


def test_connected_exception_is_printed_and_closes(capsys):
    server = Server()
    listener = ngi.testing.listener(server)

    class BadClient:
        def connected(self, connection):
            raise ValueError("client bug")

    listener.connect(handler=BadClient())
    assert "ValueError: client bug" in capsys.readouterr().out
    assert server.handlers[0].closes == ["closed"]
    listener.close()


# Failed connects ------------------------------------------------------------

def test_connect_without_listener_fails():
    client = Client()
    ngi.testing.connect(address(), client)
    assert client.failures == ["no such server"]
    assert client.connections == []


def test_failed_connect_that_retries_does_not_recurse(capsys):
    where = address()
    calls = []

    class Retrying:
        def connected(self, connection):  # pragma: no cover
            raise AssertionError("no listener")

        def failed_connect(self, reason):
            calls.append(reason)
            ngi.testing.connect(where, self)

    ngi.testing.connect(where, Retrying())
    assert calls == ["no such server"]
    out = capsys.readouterr().out
    assert "failed_connect" in out and repr(where) in out
    # The guard is gone once the first call returned.
    client = Client()
    ngi.testing.connect(where, client)
    assert client.failures == ["no such server"]


def test_failed_connect_may_connect_to_another_address():
    where, fallback = address(), address()
    listener = ngi.testing.listener(fallback, Server())
    client = Client()

    class Fallback(Client):
        def failed_connect(self, reason):
            ngi.testing.connect(fallback, client)

    try:
        ngi.testing.connect(where, Fallback())
        assert len(client.connections) == 1
    finally:
        listener.close()


def test_failed_connect_that_raises_does_not_break_later_connects(capsys):
    where = address()

    class Raising:
        def connected(self, connection):  # pragma: no cover
            raise AssertionError("no listener")

        def failed_connect(self, reason):
            raise ConnectionFailed(reason)

    ngi.testing.connect(where, Raising())
    assert "ConnectionFailed: no such server" in capsys.readouterr().out
    client = Client()
    ngi.testing.connect(where, client)
    assert client.failures == ["no such server"]
    assert capsys.readouterr().out == ""  # no recursion notice either


# connectable and peer -------------------------------------------------------

def test_connectable_queues_connections_for_connect():
    where = address()
    first, second = ngi.testing.Connection(), ngi.testing.Connection()
    ngi.testing.connectable(where, first)
    ngi.testing.connectable(where, second)
    clients = [Client(), Client(), Client()]
    for client in clients:
        ngi.testing.connect(where, client)
    assert clients[0].connections == [first]
    assert clients[1].connections == [second]
    assert clients[2].failures == ["no such server"]


def test_connectable_comes_before_a_listener():
    where = address()
    listener = ngi.testing.listener(where, Server())
    try:
        ready = ngi.testing.Connection()
        ngi.testing.connectable(where, ready)
        first, second = Client(), Client()
        ngi.testing.connect(where, first)
        ngi.testing.connect(where, second)
        assert first.connections == [ready]
        assert second.connections[0].peer.control is listener
    finally:
        listener.close()


def test_peer_always_reaches_its_server():
    where = address()
    server = Server(UpperEcho)
    connector = ngi.testing.peer(where, server)
    one, two = Client(), Client()
    connector(where, one)
    connector(where, two)
    assert one.connections[0] is not two.connections[0]
    one.connections[0].write(b"a")
    two.connections[0].write(b"b")
    assert one.handler.inputs == [b"A"] and two.handler.inputs == [b"B"]
    assert server.connections[0].control is connector.listener
    assert one.connections[0].peer_address == where
    # Nothing was registered for other connects.
    client = Client()
    ngi.testing.connect(where, client)
    assert client.failures == ["no such server"]
    # Other addresses are connected as by connect.
    other = Client()
    connector(address(), other)
    assert other.failures == ["no such server"]


# UDP ------------------------------------------------------------------------

def test_udp_is_delivered_in_memory_and_truncated():
    where = address()
    received = []
    listener = ngi.testing.udp_listener(
        where, lambda *args: received.append(args), buffer_size=4)
    try:
        assert listener.address == where
        ngi.testing.udp(where, b"ab")
        ngi.testing.udp(where, bytearray(b"abcdef"))
        assert received == [("<test>", b"ab"), ("<test>", b"abcd")]
    finally:
        listener.close()
    ngi.testing.udp(where, b"lost")  # nobody listens: dropped, like UDP
    assert len(received) == 2


def test_udp_default_buffer_size():
    received = []
    listener = ngi.testing.udp_listener(None, lambda a, d: received.append(d))
    try:
        ngi.testing.udp(listener.address, b"x" * 5000)
        assert received == [b"x" * 4096]
    finally:
        listener.close()


def test_udp_handler_exception_is_printed_and_the_listener_keeps_working(
        capsys):
    received = []

    def handler(address, data):
        received.append(data)
        if data == b"bad":
            raise ValueError("udp bug")

    listener = ngi.testing.udp_listener(address(), handler)
    try:
        ngi.testing.udp(listener.address, b"bad")
        assert "ValueError: udp bug" in capsys.readouterr().out
        ngi.testing.udp(listener.address, b"good")
        assert received == [b"bad", b"good"]
    finally:
        listener.close()


def test_udp_bad_arguments():
    where = address()
    with pytest.raises(TypeError, match="bytes-like"):
        ngi.testing.udp(where, "text")
    with pytest.raises(ValueError, match="buffer_size"):
        ngi.testing.udp_listener(where, print, buffer_size=0)
    with pytest.raises(TypeError, match="callable"):
        ngi.testing.udp_listener(where, "not callable")
    listener = ngi.testing.udp_listener(where, print)
    try:
        with pytest.raises(OSError, match="already in use"):
            ngi.testing.udp_listener(where, print)
    finally:
        listener.close()


@pytest.mark.parametrize("call", [
    lambda a: ngi.testing.connect(a, Client()),
    lambda a: ngi.testing.listener(a, Server()),
    lambda a: ngi.testing.udp(a, b"x"),
    lambda a: ngi.testing.udp_listener(a, print),
    lambda a: ngi.testing.connectable(a, ngi.testing.Connection()),
])
def test_unhashable_addresses_are_rejected(call):
    with pytest.raises(TypeError, match="hashable"):
        call(["not", "hashable"])


def test_networks_are_separate():
    """The module functions use one network; another one shares nothing."""
    network = ngi.testing.Network()
    where = address()
    listener = network.listener(where, Server())
    try:
        client = Client()
        ngi.testing.connect(where, client)
        assert client.failures == ["no such server"]
        client = Client()
        network.connect(where, client)
        assert client.connections
    finally:
        listener.close()


def test_importing_ngi_testing_does_not_need_pytest():
    code = ("import sys; sys.modules['pytest'] = None; import ngi.testing; "
            "assert 'ngi.testing.conformance' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_module_functions_are_bound_to_the_default_network():
    assert isinstance(ngi.testing.network, ngi.testing.Network)
    for name in ["connect", "listener", "udp", "udp_listener", "call_later",
                 "connectable", "peer"]:
        assert getattr(ngi.testing, name).__self__ is ngi.testing.network


# Network: chunks ------------------------------------------------------------

@pytest.mark.parametrize("chunk_size", [0, -1, 1.5, "big", True])
def test_chunk_size_is_checked(chunk_size):
    with pytest.raises(ValueError, match="chunk_size"):
        ngi.testing.Network(chunk_size=chunk_size)


def test_chunk_size_splits_every_write():
    network = ngi.testing.Network(chunk_size=3)
    peer = Recorder()
    connection = ngi.testing.Connection(peer, network=network)
    connection.write(b"abcdefg")
    connection.writelines([b"hijk"])
    assert peer.inputs == [b"abc", b"def", b"g", b"hij", b"k"]


def random_pieces(seed, data):
    network = ngi.testing.Network(chunk_size="random", seed=seed)
    peer = Recorder()
    ngi.testing.Connection(peer, network=network).write(data)
    return peer.inputs


def test_random_chunks_are_reproducible_from_the_seed():
    data = bytes(range(256)) * 4
    pieces = random_pieces(42, data)
    assert b"".join(pieces) == data
    assert len(pieces) > 1
    assert random_pieces(42, data) == pieces
    splits = {tuple(map(len, random_pieces(seed, data)))
              for seed in range(10)}
    assert len(splits) > 1


def test_a_network_without_a_seed_picks_one_to_replay():
    network = ngi.testing.Network(chunk_size="random")
    assert isinstance(network.seed, int)
    assert f"seed={network.seed}" in repr(network)
    data = bytes(range(200))
    assert random_pieces(network.seed, data) == random_pieces(
        network.seed, data)


def test_chunks_of_different_writes_are_not_merged():
    network = ngi.testing.Network(chunk_size=10)
    peer = Recorder()
    connection = ngi.testing.Connection(peer, network=network)
    connection.write(b"ab")
    connection.write(b"cd")
    assert peer.inputs == [b"ab", b"cd"]


# Network: deferred delivery -------------------------------------------------

def test_deferred_writes_wait_for_pump():
    network = ngi.testing.Network(deferred=True)
    peer = Recorder()
    connection = ngi.testing.Connection(peer, network=network)
    connection.write(b"one")
    connection.write(b"two")
    assert peer.inputs == []
    assert connection.write_buffer_size == 6
    assert network.pump() is True
    assert peer.inputs == [b"one", b"two"]
    assert connection.write_buffer_size == 0
    assert network.pump() is False


def test_pump_delivers_one_hop_at_a_time():
    network = ngi.testing.Network(deferred=True)
    server = Server(UpperEcho)
    listener = network.listener("echo", server)
    client = Client()
    network.connect("echo", client)
    assert client.connections == [] and server.connections == []
    network.pump()  # the connect
    [connection] = client.connections
    connection.write(b"hi")
    network.pump()  # to the server, which echoes
    assert server.handlers[0].inputs == [b"hi"]
    assert client.handler.inputs == []
    network.pump()  # back to the client
    assert client.handler.inputs == [b"HI"]
    connection.close()
    assert server.handlers[0].closes == []
    assert network.run_until_idle() == 1
    assert server.handlers[0].closes == ["closed"]
    listener.close()


def test_run_until_idle_counts_rounds_and_catches_livelock():
    network = ngi.testing.Network(deferred=True)

    class PingPong:
        def handle_input(self, connection, data):
            connection.write(data)

    connection = ngi.testing.Connection(PingPong(), network=network)
    connection.set_handler(PingPong())
    assert network.run_until_idle() == 0
    connection.write(b"ball")
    with pytest.raises(RuntimeError, match="still busy after 50 rounds"):
        network.run_until_idle(max_rounds=50)
    connection.close()
    assert network.run_until_idle() == 2  # the ball in flight, the close


def test_deferred_udp():
    network = ngi.testing.Network(deferred=True)
    received = []
    network.udp_listener("u", lambda address, data: received.append(data))
    network.udp("u", b"datagram")
    assert received == []
    network.pump()
    assert received == [b"datagram"]


def test_an_immediate_network_is_always_idle():
    network = ngi.testing.Network()
    assert network.pump() is False
    assert network.run_until_idle() == 0


# Network: virtual time and timers -------------------------------------------

def test_time_starts_at_zero_and_moves_only_with_advance():
    network = ngi.testing.Network()
    assert network.time() == 0.0
    network.advance(1.5)
    network.advance(0)
    assert network.time() == 1.5
    with pytest.raises(ValueError):
        network.advance(-1)
    with pytest.raises(ValueError):
        network.advance(float("nan"))
    with pytest.raises(TypeError):
        network.advance("1")


def test_advance_runs_due_timers_in_deadline_order():
    network = ngi.testing.Network()
    calls = []

    def record(name):
        calls.append((name, network.time()))

    network.call_later(3, record, "c")
    network.call_later(1, record, "a")
    network.call_later(2, record, "b")
    network.call_later(2, record, "b2")  # same deadline: in call order
    network.advance(0.5)
    assert calls == []
    network.advance(2)
    assert calls == [("a", 1.0), ("b", 2.0), ("b2", 2.0)]
    assert network.time() == 2.5
    network.advance(10)
    assert calls[-1] == ("c", 3.0)
    assert network.time() == 12.5


def test_timers_set_by_timers_run_within_the_same_advance():
    network = ngi.testing.Network()
    calls = []

    def again(count):
        calls.append(network.time())
        if count:
            network.call_later(1, again, count - 1)

    network.call_later(1, again, 3)
    network.advance(10)
    assert calls == [1.0, 2.0, 3.0, 4.0]


def test_a_zero_delay_timer_waits_for_advance():
    network = ngi.testing.Network()
    calls = []
    network.call_later(0, calls.append, "now")
    network.call_later(-5, calls.append, "also now")
    assert calls == []
    network.advance(0)
    assert calls == ["now", "also now"]


def test_cancelled_timers_do_not_run():
    network = ngi.testing.Network()
    calls = []
    timer = network.call_later(1, calls.append, "x")
    assert timer.when == 1.0 and not timer.cancelled
    timer.cancel()
    assert timer.cancelled
    network.advance(2)
    assert calls == []
    ran = network.call_later(1, calls.append, "y")
    network.advance(1)
    ran.cancel()  # too late: harmless
    assert calls == ["y"]


def test_timer_exceptions_are_printed_and_later_timers_run(capsys):
    network = ngi.testing.Network()
    calls = []

    def failing():
        raise ValueError("timer bug")

    network.call_later(1, failing)
    network.call_later(2, calls.append, "after")
    network.advance(3)
    assert calls == ["after"]
    assert "ValueError: timer bug" in capsys.readouterr().out


def test_call_later_checks_its_arguments():
    network = ngi.testing.Network()
    with pytest.raises(TypeError, match="seconds"):
        network.call_later("1", print)
    with pytest.raises(TypeError, match="callable"):
        network.call_later(1, None)
    with pytest.raises(ValueError, match="seconds"):
        network.call_later(float("nan"), print)


def test_the_module_call_later_uses_the_default_network():
    calls = []
    timer = ngi.testing.call_later(1, calls.append, "tick")
    assert timer.when == ngi.testing.network.time() + 1
    ngi.testing.network.advance(1)
    assert calls == ["tick"]


def test_networks_have_separate_clocks():
    one, two = ngi.testing.Network(), ngi.testing.Network()
    calls = []
    one.call_later(1, calls.append, "one")
    two.advance(5)
    assert calls == [] and one.time() == 0.0


# Network: faults ------------------------------------------------------------

def test_reset_closes_the_peer_with_a_reset_reason():
    connection, peer = pair()
    mine = Recorder()
    connection.set_handler(mine)
    connection.reset()
    assert not connection and not connection.peer
    [reason] = peer.closes
    assert isinstance(reason, ConnectionResetError)
    assert reason.errno == errno.ECONNRESET
    assert mine.events == []  # like close(): no handle_close for oneself
    with pytest.raises(ConnectionClosed):
        connection.write(b"x")
    connection.reset()  # again: nothing


def test_reset_drops_what_the_peer_has_not_read():
    connection, peer = pair()
    connection.peer.pause_reading()
    connection.write(b"unread")
    connection.writelines(iter([b"more"] * 100_000))
    assert connection.write_buffer_size > 0
    connection.reset()
    assert connection.write_buffer_size == 0
    connection.peer.resume_reading()
    assert peer.inputs == []
    assert len(peer.closes) == 1


def test_reset_overtakes_data_in_a_deferred_network():
    network = ngi.testing.Network(deferred=True)
    peer = Recorder()
    connection = ngi.testing.Connection(peer, network=network)
    connection.write(b"in flight")
    connection.reset()
    network.run_until_idle()
    assert peer.inputs == []
    assert isinstance(peer.closes[0], ConnectionResetError)


def test_abort_drops_unread_data_and_closes_normally():
    connection, peer = pair()
    connection.peer.pause_reading()
    connection.write(b"unread")
    connection.abort()
    assert not connection
    assert connection.write_buffer_size == 0
    connection.peer.resume_reading()
    assert peer.events == [("close", "closed")]


def test_refuse_fails_connects_until_restored():
    network = ngi.testing.Network()
    listener = network.listener("busy", Server())
    network.refuse("busy")
    client = Client()
    network.connect("busy", client)
    [reason] = client.failures
    assert isinstance(reason, ConnectionRefusedError)
    assert reason.errno == errno.ECONNREFUSED
    assert list(listener.connections()) == []
    network.restore("busy")
    client = Client()
    network.connect("busy", client)
    assert client.connections


def test_a_refused_connect_that_retries_does_not_recurse(capsys):
    network = ngi.testing.Network()
    network.refuse("nope")
    calls = []

    class Retrying:
        def connected(self, connection):  # pragma: no cover
            raise AssertionError("refused")

        def failed_connect(self, reason):
            calls.append(reason)
            network.connect("nope", self)

    network.connect("nope", Retrying())
    assert len(calls) == 1
    assert "giving up" in capsys.readouterr().out


def test_delay_connect_completes_when_the_time_has_come():
    network = ngi.testing.Network()
    listener = network.listener("far", Server())
    network.delay_connect("far", 2.5)
    client = Client()
    network.connect("far", client)
    network.advance(2)
    assert client.connections == [] and client.failures == []
    network.advance(0.5)
    assert len(client.connections) == 1
    network.restore("far")
    quick = Client()
    network.connect("far", quick)
    assert quick.connections
    listener.close()


def test_a_delayed_connect_to_a_refused_address_fails_late():
    network = ngi.testing.Network()
    network.delay_connect("slow", 1)
    network.refuse("slow")
    client = Client()
    network.connect("slow", client)
    assert client.failures == []
    network.advance(1)
    assert isinstance(client.failures[0], ConnectionRefusedError)
    with pytest.raises(ValueError):
        network.delay_connect("slow", -1)


def test_a_peer_connector_obeys_the_faults():
    network = ngi.testing.Network()
    connector = network.peer("p", Server())
    network.refuse("p")
    client = Client()
    connector("p", client)
    assert isinstance(client.failures[0], ConnectionRefusedError)


# Flow control ---------------------------------------------------------------

class Flow(Recorder):
    def handle_pause_writing(self, connection):
        self.events.append(("pause", connection.write_buffer_size))

    def handle_resume_writing(self, connection):
        self.events.append(("resume", connection.write_buffer_size))

    @property
    def flow(self):
        return [e for e in self.events if e[0] in ("pause", "resume")]


class OneAtATime(Recorder):
    """Reads one input, then pauses reading: the test steps the reading."""

    def handle_input(self, connection, data):
        super().handle_input(connection, data)
        connection.pause_reading()


def flow_pair(high=40, low=None):
    """A writer with a Flow handler; its peer reads one input per step."""
    reader = OneAtATime()
    connection = ngi.testing.Connection(reader)
    writer = Flow()
    connection.set_handler(writer)
    connection.set_write_limits(high, low)
    connection.peer.pause_reading()
    return connection, writer, reader


def step(connection):
    connection.peer.resume_reading()


def test_write_limits_defaults_and_derived_marks():
    connection, peer = pair()
    assert connection.get_write_limits() == (64 * 1024, 16 * 1024)
    connection.set_write_limits(high=40)
    assert connection.get_write_limits() == (40, 10)
    connection.set_write_limits(low=10)
    assert connection.get_write_limits() == (40, 10)
    connection.set_write_limits()
    assert connection.get_write_limits() == (64 * 1024, 16 * 1024)
    for high, low in [(-1, None), (None, -1), (10, 11), ("1", None)]:
        with pytest.raises(ValueError):
            connection.set_write_limits(high, low)


def test_write_buffer_size_counts_what_the_peer_holds():
    connection, writer, reader = flow_pair()
    connection.write(b"12345")
    connection.writelines([b"678", b"90"])
    assert connection.write_buffer_size == 10
    step(connection)
    assert reader.inputs == [b"12345"]
    assert connection.write_buffer_size == 5


def test_pause_and_resume_fire_once_per_crossing_at_the_marks():
    connection, writer, reader = flow_pair(high=40)  # low is 10
    for _ in range(4):
        connection.write(b"x" * 10)
    assert writer.flow == []  # 40 is not above the mark
    connection.write(b"x")
    assert writer.flow == [("pause", 41)]
    connection.write(b"y" * 10)
    assert writer.flow == [("pause", 41)]  # once per crossing
    for _ in range(4):
        step(connection)
    assert connection.write_buffer_size == 11
    assert writer.flow == [("pause", 41)]
    step(connection)  # 10 left: at the low mark
    assert writer.flow == [("pause", 41), ("resume", 10)]
    connection.write(b"z" * 50)
    assert writer.flow[-1] == ("pause", 60)


def test_set_write_limits_checks_the_marks_at_once():
    connection, writer, reader = flow_pair(high=100)
    connection.write(b"x" * 50)
    connection.set_write_limits(high=20)
    assert writer.flow == [("pause", 50)]
    connection.set_write_limits(high=200, low=60)
    assert writer.flow == [("pause", 50), ("resume", 50)]


def test_writelines_is_pulled_only_while_at_or_below_the_high_mark():
    connection, writer, reader = flow_pair(high=40)
    pulled = []

    def body():
        for i in range(10):
            pulled.append(i)
            yield b"%02d" % i * 10  # 20 bytes

    connection.writelines(body())
    assert pulled == [0, 1, 2]  # 20, 40, then 60 is above the mark
    assert writer.flow == [("pause", 60)]
    connection.write(b"after")  # waits behind the iterator, counted
    assert connection.write_buffer_size == 65
    step(connection)
    # 40 in flight (the write waiting behind the iterator does not hold it
    # up), so one more item: 60 in flight again.
    assert pulled == [0, 1, 2, 3]
    assert connection.write_buffer_size == 65
    step(connection)
    assert pulled == [0, 1, 2, 3, 4]
    assert writer.flow == [("pause", 60)]  # not down to the low mark
    connection.peer.set_handler(Recorder())  # reads everything from now on
    connection.peer.resume_reading()
    assert pulled == list(range(10))
    assert connection.write_buffer_size == 0
    assert writer.flow == [("pause", 60), ("resume", 5)]  # "after" is left
    data = b"".join(reader.inputs) + b"".join(
        connection.peer._handler.inputs)
    assert data == b"".join(b"%02d" % i * 10 for i in range(10)) + b"after"


def test_resume_waits_while_the_writers_handler_runs():
    connection, writer, reader = flow_pair(high=10)
    connection.write(b"x" * 11)
    assert writer.flow == [("pause", 11)]

    class Drainer(Flow):
        def handle_input(self, connection, data):
            connection.peer.resume_reading()  # the peer reads our 11 bytes
            self.events.append(("input", data))

    drainer = Drainer()
    connection.set_handler(drainer)
    connection.test_input(b"go")
    assert drainer.events == [("input", b"go"), ("resume", 0)]


def test_a_resume_still_queued_and_a_new_pause_cancel_out():
    connection, writer, reader = flow_pair(high=10)
    connection.write(b"x" * 11)

    class Refill(Flow):
        def handle_input(self, connection, data):
            connection.peer.resume_reading()  # drained: resume is queued
            connection.peer.pause_reading()
            connection.write(b"y" * 20)  # above the mark again

    refill = Refill()
    connection.set_handler(refill)
    connection.test_input(b"go")
    assert refill.flow == []  # paused all along, as the handler knows
    assert connection.write_buffer_size == 20


def test_no_flow_callbacks_after_close():
    connection, writer, reader = flow_pair(high=10)
    connection.write(b"x" * 11)
    connection.close()
    after = Recorder()
    connection.peer.set_handler(after)
    connection.peer.resume_reading()
    assert after.events == [("input", b"x" * 11), ("close", "closed")]
    assert writer.flow == [("pause", 11)]


def test_a_failing_pause_handler_closes_the_connection(capsys):
    connection, peer = pair()

    class Failing(Recorder):
        def handle_pause_writing(self, connection):
            raise RuntimeError("cannot pause")

    failing = Failing()
    connection.set_handler(failing)
    connection.peer.pause_reading()
    connection.set_write_limits(high=1)
    connection.write(b"ab")
    assert not connection
    assert "handle_pause_writing" in failing.closes[0]
    assert "RuntimeError: cannot pause" in capsys.readouterr().out


def test_pause_reading_holds_input_and_the_close():
    connection = ngi.testing.Connection()
    mine = Recorder()
    connection.set_handler(mine)
    assert connection.reading
    connection.pause_reading()
    assert not connection.reading
    connection.test_input(b"held")
    connection.test_close("bye")
    assert mine.events == [] and connection
    connection.resume_reading()
    assert mine.events == [("input", b"held"), ("close", "bye")]
    assert not connection.reading  # closed


def test_pause_reading_from_inside_a_handler_stops_delivery_at_once():
    connection = ngi.testing.Connection()
    reader = OneAtATime()
    connection.test_input(b"1")
    connection.test_input(b"2")
    connection.set_handler(reader)
    assert reader.inputs == [b"1"]
    connection.resume_reading()
    assert reader.inputs == [b"1", b"2"]


def test_an_endless_writelines_to_a_closed_peer_ends():
    # The peer closed, but this end has not heard yet (its handler is
    # busy): what it writes is dropped, and the iterator is not pulled.

    class Busy(Recorder):
        def handle_input(self, connection, data):
            connection.peer.close()
            connection.writelines(itertools.repeat(b"x"))
            assert connection.write_buffer_size == 0

    connection = ngi.testing.Connection(Recorder())
    busy = Busy()
    connection.set_handler(busy)
    connection.test_input(b"go")
    assert not connection
    assert busy.closes == ["closed"]


# -- property: flow control never loses or reorders data -------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

_operations = st.lists(st.one_of(
    st.tuples(st.just("write"), st.binary(min_size=1, max_size=300)),
    st.tuples(st.just("writelines"), st.lists(st.binary(max_size=100), max_size=5)),
    st.tuples(st.just("pause"), st.none()),
    st.tuples(st.just("resume"), st.none()),
    st.tuples(st.just("limits"), st.integers(0, 600)),
    st.tuples(st.just("pump"), st.none()),
), max_size=40)


@settings(max_examples=200, deadline=None)
@given(ops=_operations,
       chunk_size=st.one_of(st.none(), st.integers(1, 64), st.just("random")),
       deferred=st.booleans(), seed=st.integers(0, 1000))
def test_flow_control_never_loses_or_reorders_data(ops, chunk_size, deferred, seed):
    network = ngi.testing.Network(chunk_size=chunk_size, seed=seed, deferred=deferred)
    received = []
    servers = []

    class Sink:
        def __init__(self, connection):
            servers.append(connection)
            connection.set_handler(self)

        def handle_input(self, connection, data):
            received.append(data)

    class Source:
        connection = None
        crossings = []

        def connected(self, connection):
            self.connection = connection
            connection.set_handler(self)

        def failed_connect(self, reason):
            raise AssertionError(reason)

        def handle_input(self, connection, data):
            pass

        def handle_pause_writing(self, connection):
            self.crossings.append("pause")

        def handle_resume_writing(self, connection):
            self.crossings.append("resume")

    listener = network.listener(("flow", 1), Sink)
    source = Source()
    source.crossings = []
    network.connect(("flow", 1), source)
    network.run_until_idle()
    sent = []
    for op, arg in ops:
        if op == "write":
            source.connection.write(arg)
            sent.append(arg)
        elif op == "writelines":
            source.connection.writelines(iter(arg))
            sent.extend(arg)
        elif op == "pause":
            servers[0].pause_reading()
        elif op == "resume":
            servers[0].resume_reading()
        elif op == "limits":
            source.connection.set_write_limits(high=arg)
        else:
            network.pump()
        assert source.connection.write_buffer_size >= 0
    servers[0].resume_reading()
    network.run_until_idle()
    assert b"".join(received) == b"".join(sent)
    assert source.connection.write_buffer_size == 0
    # Crossings alternate, starting with a pause, and all drained at the end.
    assert source.crossings == ["pause", "resume"] * (len(source.crossings) // 2)
    listener.close()
