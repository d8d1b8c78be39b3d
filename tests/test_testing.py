"""Tests for what is particular to ngi.testing.

Behaviour that every implementation shares is in test_shared.py; here are
the printing handlers, the scripting helpers, and the in-memory rules
(synchronous delivery, queueing, no re-entrancy) that tests rely on.
"""
from __future__ import annotations

import array
import itertools
import logging

import pytest

import ngi.testing
from ngi.interfaces import ConnectionClosed, ConnectionFailed

_counter = itertools.count()


def address():
    """An address no other test uses."""
    return ("test_testing", next(_counter))


class Recorder:
    """A connection handler that records its calls."""

    def __init__(self):
        self.events = []

    def handle_input(self, connection, data):
        self.events.append(("input", data))

    def handle_close(self, connection, reason):
        self.events.append(("close", reason))

    def handle_exception(self, connection, exception):
        self.events.append(("exception", exception))

    @property
    def inputs(self):
        return [data for kind, data in self.events if kind == "input"]

    @property
    def closes(self):
        return [reason for kind, reason in self.events if kind == "close"]

    @property
    def exceptions(self):
        return [exc for kind, exc in self.events if kind == "exception"]


class InputOnly:
    def __init__(self):
        self.inputs = []

    def handle_input(self, connection, data):
        self.inputs.append(data)


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
        client = listener.connect(Client())
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


class Echo(Recorder):
    def handle_input(self, connection, data):
        super().handle_input(connection, data)
        connection.write(data.upper())


def test_connect_reaches_a_listener_synchronously():
    where = address()
    server = Server(Echo)
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
    server = Server(Echo)
    listener = ngi.testing.listener(server)
    try:
        connection = listener.connect()  # the client end, printing
        connection.write(b"hello")
        assert capsys.readouterr().out == "-> b'HELLO'\n"
        assert server.connections[0].control is listener
        # connect(handler) hands the client end to handler.connected.
        client = Client()
        assert listener.connect(client) is client.connections[0]
        # The listener has a fresh address that connect reaches too.
        other = Client()
        ngi.testing.connect(listener.address, other)
        assert len(other.connections) == 1
        assert len(list(listener.connections())) == 3
        another = ngi.testing.listener(Server())
        assert another.address != listener.address
        another.close()
    finally:
        listener.close()
    with pytest.raises(ConnectionFailed):
        listener.connect()
    late = Client()
    listener.connect(late)
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
    connection = listener.connect(Client())
    connection.write(b"stop")
    assert events == ["returned", "stopped"]  # no re-entry


def test_listener_close_with_handler():
    listener = ngi.testing.listener(Server())
    one = listener.connect(Client())
    two = listener.connect(Client())
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
        connection.set_handler(Echo())

    listener = ngi.testing.listener(server)
    try:
        first = Client()
        listener.connect(first)
        assert first.handler.closes == ["closed"]
        assert "ValueError: server bug" in capsys.readouterr().out
        second = Client()
        listener.connect(second).write(b"ok")
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

    listener.connect(BadClient())
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
    server = Server(Echo)
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
        ngi.testing.udp_listener(where, None)
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
