"""Tests for ngi.generator.handler, over ngi.testing."""
from __future__ import annotations

import itertools

import pytest

import ngi.testing
from ngi.adapters import Lines, Sized
from ngi.generator import Handler, handler
from ngi.interfaces import (
    ConnectionFailed, IClientConnectHandler, IConnectionHandler, IServer)

_addresses = itertools.count()


def address():
    return ("test_generator", next(_addresses))


class Peer:
    """Records what reaches the other end of a connection."""

    def __init__(self):
        self.inputs = []
        self.closes = []

    def handle_input(self, connection, data):
        self.inputs.append(data)

    def handle_close(self, connection, reason):
        self.closes.append(reason)

    @property
    def data(self):
        return b"".join(self.inputs)


def pair():
    connection = ngi.testing.Connection()
    peer = Peer()
    connection.peer.set_handler(peer)
    return connection, peer


def test_input_arrives_through_yield():
    got = []

    @handler
    def collect(connection):
        while True:
            got.append((yield))

    connection, peer = pair()
    collect(connection)
    connection.test_input(b"one")
    connection.test_input(b"two")
    assert got == [b"one", b"two"]
    assert connection  # still open


def test_runs_to_the_first_yield_at_once():
    @handler
    def greet(connection):
        connection.write(b"hello ")
        name = yield
        connection.write(b"hi " + name)

    connection, peer = pair()
    greet(connection)
    assert peer.data == b"hello "
    connection.test_input(b"bob")
    assert peer.data == b"hello hi bob"


def test_connection_closed_when_the_generator_returns():
    @handler
    def once(connection):
        data = yield
        connection.write(data.upper())

    connection, peer = pair()
    once(connection)
    connection.test_input(b"abc")
    assert peer.data == b"ABC"
    assert not connection
    assert peer.closes  # the peer was told


def test_connection_closed_when_the_generator_returns_before_yielding():
    @handler
    def nothing_to_read(connection):
        connection.write(b"bye")
        return
        yield  # pragma: no cover

    connection, peer = pair()
    nothing_to_read(connection)
    assert peer.data == b"bye"
    assert not connection


def test_generator_exit_on_close_from_outside():
    events = []

    @handler
    def conversation(connection):
        try:
            while True:
                yield
        except GeneratorExit as exit:
            events.append(exit.args)
            raise
        finally:
            events.append("finally")

    connection, peer = pair()
    conversation(connection)
    connection.test_close("peer went away")
    assert events == [("peer went away",), "finally"]


def test_generator_exit_when_the_peer_closes():
    closed = []

    @handler
    def conversation(connection):
        try:
            while True:
                yield
        finally:
            closed.append(True)

    connection, peer = pair()
    conversation(connection)
    connection.peer.close()
    assert closed == [True]


def test_ignoring_generator_exit_is_an_error():
    @handler
    def stubborn(connection):
        try:
            yield
        except GeneratorExit:
            pass
        yield  # ignores it once; closing it again (at exit) ends it

    connection, peer = pair()
    conversation = stubborn(connection)
    with pytest.raises(RuntimeError, match="ignored GeneratorExit"):
        conversation.handle_close(connection, "closed")


def test_writelines_errors_are_thrown_into_the_generator():
    seen = []

    @handler
    def careful(connection):
        while True:
            try:
                yield
            except ValueError as error:
                seen.append(str(error))

    def failing():
        yield b"partial"
        raise ValueError("source failed")

    connection, peer = pair()
    careful(connection)
    connection.writelines(failing())
    assert seen == ["source failed"]
    assert peer.data == b"partial"
    assert connection  # handled, so the connection stays open
    connection.test_input(b"more")


def test_writelines_error_ending_the_generator_closes():
    @handler
    def gives_up(connection):
        try:
            yield
        except ValueError:
            return

    def failing():
        raise ValueError("source failed")
        yield  # pragma: no cover

    connection, peer = pair()
    gives_up(connection)
    connection.writelines(failing())
    assert not connection


def test_exceptions_escaping_the_generator_propagate():
    @handler
    def fragile(connection):
        yield
        raise KeyError("oops")

    connection, peer = pair()
    conversation = fragile(connection)
    with pytest.raises(KeyError):
        conversation.handle_input(connection, b"x")
    conversation2 = fragile(pair()[0])
    error = ValueError("thrown")
    with pytest.raises(ValueError):
        conversation2.handle_exception(connection, error)


def test_a_plain_function_is_rejected():
    @handler
    def not_a_generator(connection):
        return None

    connection, peer = pair()
    with pytest.raises(TypeError, match="must be a generator function"):
        not_a_generator(connection)


def test_provides_the_interfaces():
    @handler
    def h(connection):
        yield

    assert isinstance(h, IServer)
    assert isinstance(h, IClientConnectHandler)
    connection, peer = pair()
    assert isinstance(h(connection), IConnectionHandler)
    assert h.__name__ == "h"


def test_failed_connect_raises_connection_failed():
    @handler
    def client(connection):
        yield

    with pytest.raises(ConnectionFailed) as info:
        client.failed_connect("no such server")
    assert info.value.args == ("no such server",)


def test_failed_connect_through_the_testing_implementation(capsys):
    @handler
    def client(connection):
        yield  # pragma: no cover

    ngi.testing.connect(address(), client)
    # ngi.testing reports exceptions from failed_connect by printing them.
    assert "ConnectionFailed: no such server" in capsys.readouterr().out


def test_as_server_and_client_over_the_testing_implementation():
    replies = []
    server_closed = []

    @handler(connection_adapter=Lines)
    def echo_server(connection):
        try:
            while True:
                line = yield
                connection.write(b"echo: " + line + b"\n")
        finally:
            server_closed.append(True)

    @Lines.handler
    def client(connection):
        connection.write(b"one\ntwo\n")
        replies.append((yield))
        replies.append((yield))

    where = address()
    listener = ngi.testing.listener(where, echo_server)
    try:
        ngi.testing.connect(where, client)
        assert replies == [b"echo: one", b"echo: two"]
        assert server_closed == [True]  # the client returned and closed
    finally:
        listener.close()


def test_connected_sets_up_the_conversation():
    @handler
    def client(connection):
        connection.write(b"request")
        reply = yield
        connection.write(b"got " + reply)

    connection, peer = pair()
    client.connected(connection)
    connection.test_input(b"reply")
    assert peer.data == b"requestgot reply"
    assert not connection


def test_method_decorator_binds_the_instance():
    class Client:
        def __init__(self):
            self.got = []

        @handler
        def connected(self, connection):
            connection.write(b"hello")
            self.got.append((yield))

        def failed_connect(self, reason):
            raise AssertionError(reason)

    assert isinstance(Client.connected, Handler)
    client = Client()
    where = address()
    server_got = []

    @handler
    def server(connection):
        server_got.append((yield))
        connection.write(b"world")
        yield

    listener = ngi.testing.listener(where, server)
    try:
        ngi.testing.connect(where, client)
    finally:
        listener.close()
    assert server_got == [b"hello"]
    assert client.got == [b"world"]


def test_bound_method_works_as_server():
    class Service:
        prefix = b"> "

        @handler(connection_adapter=Lines)
        def serve(self, connection):
            while True:
                connection.write(self.prefix + (yield) + b"\n")

    connection, peer = pair()
    Service().serve(connection)
    connection.test_input(b"a\nb\n")
    assert peer.data == b"> a\n> b\n"


def test_connection_adapter_wraps_the_connection():
    seen = []

    @handler(connection_adapter=Lines)
    def lines(connection):
        seen.append(connection)
        while True:
            seen.append((yield))

    connection, peer = pair()
    lines(connection)
    connection.test_input(b"x\ny")
    connection.test_input(b"\n")
    adapter, *data = seen
    assert isinstance(adapter, Lines)
    assert adapter.connection is connection
    assert data == [b"x", b"y"]


def test_sized_handler():
    @Sized.handler
    def sized(connection):
        while True:
            data = yield
            connection.write(data[::-1])
            connection.write(None)

    connection, peer = pair()
    sized(connection)
    connection.test_input(b"\x00\x00\x00\x03abc\xff\xff\xff\xff")
    assert peer.data == b"\x00\x00\x00\x03cba\xff\xff\xff\xff"


def test_adapter_handler_equals_generator_handler_with_adapter():
    def gen(connection):
        yield

    via_class = Lines.handler(gen)
    direct = handler(gen, connection_adapter=Lines)
    assert isinstance(via_class, Handler)
    assert via_class.func is direct.func is gen
    assert via_class.connection_adapter is direct.connection_adapter is Lines
