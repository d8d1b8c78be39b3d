"""Behaviour every NGI implementation shares.

Written only against the ``impl`` harness of conftest.py, so that the same
tests run against each implementation.  Handlers may run on another thread
and data may arrive in any number of pieces, so handlers record what they
see, tests wait (bounded) for the record, and received data is joined
before it is compared.
"""
from __future__ import annotations

import contextlib

import pytest

from ngi.interfaces import ConnectionClosed, IServerConnection


# Application objects that record what happens ------------------------------

class Recorder:
    """A connection handler that records its calls."""

    def __init__(self):
        self.inputs = []
        self.closes = []
        self.exceptions = []

    @property
    def data(self):
        return b"".join(self.inputs)

    def handle_input(self, connection, data):
        self.inputs.append(data)

    def handle_close(self, connection, reason):
        self.closes.append(reason)

    def handle_exception(self, connection, exception):
        self.exceptions.append(exception)


class Echo(Recorder):
    def handle_input(self, connection, data):
        super().handle_input(connection, data)
        connection.write(data)


class Server:
    """A server callable giving each connection a handler from ``factory``."""

    def __init__(self, factory=Recorder):
        self.factory = factory
        self.connections = []
        self.handlers = []

    def __call__(self, connection):
        handler = self.factory()
        connection.set_handler(handler)
        self.handlers.append(handler)
        self.connections.append(connection)

    # For wait_until predicates: the server side may not exist yet.

    def data(self, index=0):
        """What the index-th connection received so far (None: no such)."""
        if len(self.handlers) > index:
            return self.handlers[index].data
        return None

    def closes(self, index=0):
        if len(self.handlers) > index:
            return self.handlers[index].closes
        return []


class Client:
    """A connect handler that sets ``handler`` on the new connection."""

    def __init__(self, handler=None):
        self.handler = handler if handler is not None else Recorder()
        self.connections = []
        self.failures = []

    def connected(self, connection):
        connection.set_handler(self.handler)
        self.connections.append(connection)

    def failed_connect(self, reason):
        self.failures.append(reason)


@contextlib.contextmanager
def listening(impl, server):
    """A listener for the test's duration."""
    listener = impl.impl.listener(impl.address(), server)
    try:
        yield listener
    finally:
        listener.close()


def connect(impl, listener, handler=None):
    """Connect to ``listener``; return (client handler, client connection)."""
    client = Client(handler)
    impl.impl.connect(listener.address, client)
    impl.wait_until(lambda: client.connections or client.failures,
                    what="the connect result")
    assert not client.failures
    return client.handler, client.connections[0]


# Data -----------------------------------------------------------------------

def test_echo_round_trip(impl):
    server = Server(Echo)
    with listening(impl, server) as listener:
        got, connection = connect(impl, listener)
        assert connection
        connection.write(b"hello")
        impl.wait_until(lambda: got.data == b"hello", what="the echo")
        assert server.data() == b"hello"
        assert connection.peer_address is not None
        connection.close()
        assert not connection


def test_many_writes_arrive_in_order(impl):
    server = Server()
    with listening(impl, server) as listener:
        got, connection = connect(impl, listener)
        chunks = [b"%d," % i for i in range(500)]
        for chunk in chunks:
            connection.write(chunk)
        expected = b"".join(chunks)
        impl.wait_until(lambda: server.data() == expected,
                        what="all writes")
        connection.close()


def test_bytearray_and_memoryview_are_copied_at_write_time(impl):
    server = Server()
    with listening(impl, server) as listener:
        got, connection = connect(impl, listener)
        buffer = bytearray(b"before|")
        connection.write(buffer)
        connection.write(memoryview(buffer))
        buffer[:] = b"AFTER!!"
        impl.wait_until(lambda: server.data() == b"before|before|",
                        what="the original bytes")
        connection.close()


def test_empty_write_produces_no_input(impl):
    server = Server()
    with listening(impl, server) as listener:
        got, connection = connect(impl, listener)
        connection.write(b"")
        connection.writelines([b"", b""])
        connection.write(b"x")
        impl.wait_until(lambda: server.data() == b"x",
                        what="the data")
        assert b"" not in server.handlers[0].inputs
        connection.close()


def test_writing_str_is_a_type_error(impl):
    server = Server()
    with listening(impl, server) as listener:
        got, connection = connect(impl, listener)
        with pytest.raises(TypeError):
            connection.write("text")
        connection.write(b"bytes")
        impl.wait_until(lambda: server.data() == b"bytes",
                        what="the data")
        connection.close()


@pytest.mark.parametrize("data", [b"abc", "abc"])
def test_writelines_of_a_single_chunk_is_a_type_error(impl, data):
    server = Server()
    with listening(impl, server) as listener:
        got, connection = connect(impl, listener)
        with pytest.raises(TypeError):
            connection.writelines(data)
        connection.write(b"ok")
        impl.wait_until(lambda: server.data() == b"ok",
                        what="the data")
        connection.close()


def test_writelines_streams_a_generator(impl):
    server = Server()
    with listening(impl, server) as listener:
        got, connection = connect(impl, listener)
        chunks = [b"chunk %d;" % i for i in range(200)]
        connection.writelines(chunk for chunk in chunks)
        expected = b"".join(chunks)
        impl.wait_until(lambda: server.data() == expected,
                        what="the generated data")
        assert got.exceptions == []
        connection.close()


def test_writelines_bad_item_goes_to_the_writers_handle_exception(impl):
    server = Server()
    with listening(impl, server) as listener:
        got, connection = connect(impl, listener)
        connection.writelines(iter([b"good", "bad", b"never"]))
        impl.wait_until(lambda: got.exceptions, what="handle_exception")
        [exception] = got.exceptions
        assert isinstance(exception, TypeError)
        impl.wait_until(lambda: server.data() == b"good",
                        what="the good item")
        # handle_exception returned normally: the connection stays open.
        assert connection
        connection.write(b"+more")
        impl.wait_until(lambda: server.data() == b"good+more",
                        what="later data")
        assert server.handlers[0].closes == []
        connection.close()


def test_writelines_iterator_error_goes_to_handle_exception(impl):
    server = Server()

    def failing():
        yield b"first"
        raise ValueError("boom")

    with listening(impl, server) as listener:
        got, connection = connect(impl, listener)
        connection.writelines(failing())
        impl.wait_until(lambda: got.exceptions, what="handle_exception")
        [exception] = got.exceptions
        assert isinstance(exception, ValueError)
        assert str(exception) == "boom"
        impl.wait_until(lambda: server.data() == b"first",
                        what="the first item")
        connection.close()


# Closing --------------------------------------------------------------------

def test_client_close_reaches_the_server(impl):
    server = Server()
    with listening(impl, server) as listener:
        got, connection = connect(impl, listener)
        connection.write(b"last words")
        connection.close()
        assert not connection
        impl.wait_until(lambda: server.closes(),
                        what="the server's handle_close")
        handler = server.handlers[0]
        assert handler.data == b"last words"  # sent before the close
        assert len(handler.closes) == 1
        assert not server.connections[0]
        assert got.closes == []  # no handle_close after one's own close


def test_server_close_reaches_the_client(impl):
    server = Server()
    with listening(impl, server) as listener:
        got, connection = connect(impl, listener)
        impl.wait_until(lambda: server.connections, what="the server side")
        server.connections[0].write(b"bye")
        server.connections[0].close()
        impl.wait_until(lambda: got.closes, what="the client's handle_close")
        assert got.data == b"bye"
        assert len(got.closes) == 1
        assert not connection
        assert server.handlers[0].closes == []


def test_writing_after_own_close_raises_connection_closed(impl):
    server = Server()
    with listening(impl, server) as listener:
        got, connection = connect(impl, listener)
        connection.close()
        with pytest.raises(ConnectionClosed):
            connection.write(b"too late")
        with pytest.raises(ConnectionClosed):
            connection.writelines([b"too late"])
        impl.wait_until(lambda: server.closes(),
                        what="the server's handle_close")
        assert server.data() == b""


def test_writing_after_the_peer_closed_raises_connection_closed(impl):
    server = Server()
    with listening(impl, server) as listener:
        got, connection = connect(impl, listener)
        impl.wait_until(lambda: server.connections, what="the server side")
        server.connections[0].close()
        impl.wait_until(lambda: got.closes, what="the client's handle_close")
        with pytest.raises(ConnectionClosed):
            connection.write(b"anyone there?")


def test_handle_input_exception_closes_the_connection(impl):
    class Failing(Recorder):
        def handle_input(self, connection, data):
            super().handle_input(connection, data)
            raise ValueError("handler bug")

    server = Server(Failing)
    with listening(impl, server) as listener:
        got, connection = connect(impl, listener)
        connection.write(b"trigger")
        impl.wait_until(lambda: server.closes(),
                        what="handle_close after the failure")
        assert len(server.handlers[0].closes) == 1
        assert not server.connections[0]
        impl.wait_until(lambda: got.closes, what="the client's handle_close")


# Handlers -------------------------------------------------------------------

def test_set_handler_switches_handlers(impl):
    second = Recorder()

    class First(Recorder):
        def handle_input(self, connection, data):
            super().handle_input(connection, data)
            if self.data == b"one":
                connection.set_handler(second)

    server = Server(First)
    with listening(impl, server) as listener:
        got, connection = connect(impl, listener)
        connection.write(b"one")
        impl.wait_until(lambda: server.data() == b"one",
                        what="the first input")
        connection.write(b"two")
        impl.wait_until(lambda: second.data == b"two",
                        what="input for the second handler")
        assert server.data() == b"one"
        connection.close()
        impl.wait_until(lambda: second.closes, what="the close")
        assert server.handlers[0].closes == []


# Listeners ------------------------------------------------------------------

def test_server_exception_closes_only_that_connection(impl):
    calls = []

    def server(connection):
        calls.append(connection)
        if len(calls) == 1:
            raise ValueError("server bug")
        connection.set_handler(Echo())

    with listening(impl, server) as listener:
        first, first_connection = connect(impl, listener)
        impl.wait_until(lambda: first.closes, what="the first close")
        second, connection = connect(impl, listener)
        connection.write(b"still there?")
        impl.wait_until(lambda: second.data == b"still there?",
                        what="the echo on a later connection")
        connection.close()


def test_listener_close_stops_its_connections(impl):
    server = Server()
    listener = impl.impl.listener(impl.address(), server)
    try:
        got1, connection1 = connect(impl, listener)
        got2, connection2 = connect(impl, listener)
        impl.wait_until(lambda: len(server.handlers) == 2,
                        what="both server connections")
    finally:
        listener.close()
    impl.wait_until(lambda: all(h.closes for h in server.handlers),
                    what="handle_close on the server side")
    assert [h.closes for h in server.handlers] == [["stopped"], ["stopped"]]
    impl.wait_until(lambda: got1.closes and got2.closes,
                    what="handle_close on the client side")
    assert not connection1 and not connection2
    assert list(listener.connections()) == []


def test_listener_close_with_handler_waits_for_connections(impl):
    server = Server()
    done = []
    listener = impl.impl.listener(impl.address(), server)
    try:
        got, connection = connect(impl, listener)
        impl.wait_until(lambda: server.connections, what="the server side")
    except BaseException:
        listener.close()
        raise
    listener.close(done.append)
    assert done == []
    # No longer accepting...
    late = Client()
    impl.impl.connect(listener.address, late)
    impl.wait_until(lambda: late.failures or late.connections,
                    what="the late connect's result")
    assert late.failures and not late.connections
    # ...but the open connection still works.
    connection.write(b"still open")
    impl.wait_until(lambda: server.data() == b"still open",
                    what="data on the open connection")
    assert done == []
    connection.close()
    impl.wait_until(lambda: done, what="the listener's close handler")
    assert done == [listener]


def test_listener_connections(impl):
    server = Server()
    with listening(impl, server) as listener:
        got1, connection1 = connect(impl, listener)
        got2, connection2 = connect(impl, listener)
        impl.wait_until(lambda: len(list(listener.connections())) == 2,
                        what="two server connections")
        for connection in listener.connections():
            assert isinstance(connection, IServerConnection)
            assert connection.control is listener
        connection1.close()
        impl.wait_until(lambda: len(list(listener.connections())) == 1,
                        what="one server connection")
        [left] = listener.connections()
        assert left is server.connections[1]
        connection2.close()
        impl.wait_until(lambda: not list(listener.connections()),
                        what="no server connections")


def test_failed_connect(impl):
    address = getattr(impl, "unused_address", impl.address)()
    client = Client()
    impl.impl.connect(address, client)
    impl.wait_until(lambda: client.failures, what="failed_connect")
    assert client.connections == []
    assert len(client.failures) == 1
    str(client.failures[0])  # the reason is str-convertible


# UDP ------------------------------------------------------------------------

def udp_address(impl):
    return getattr(impl, "udp_address", impl.address)()


def test_udp_delivery_and_truncation(impl):
    received = []
    listener = impl.impl.udp_listener(
        udp_address(impl), lambda address, data: received.append(data),
        buffer_size=10)
    try:
        impl.impl.udp(listener.address, b"hello")
        impl.wait_until(lambda: received, what="the datagram")
        impl.impl.udp(listener.address, b"0123456789abcdef")
        impl.wait_until(lambda: len(received) == 2, what="the long datagram")
        assert received == [b"hello", b"0123456789"]
    finally:
        listener.close()


def test_udp_handler_exception_keeps_the_listener(impl):
    received = []

    def handler(address, data):
        received.append(data)
        if data == b"bad":
            raise ValueError("udp handler bug")

    listener = impl.impl.udp_listener(udp_address(impl), handler)
    try:
        impl.impl.udp(listener.address, b"bad")
        impl.wait_until(lambda: received, what="the first datagram")
        impl.impl.udp(listener.address, b"good")
        impl.wait_until(lambda: len(received) == 2, what="the next datagram")
        assert received == [b"bad", b"good"]
    finally:
        listener.close()
