"""zc.ngi's testing API in ngi.testing, and the zc.ngi habits both
implementations accept (a connect handler without ``failed_connect``).

What ngi does differently from zc.ngi on purpose is in
test_zc_differences.py (and docs/porting.md).
"""
from __future__ import annotations

import itertools
import logging
import socket
import threading

import pytest

import ngi.net
import ngi.testing
from ngi.interfaces import ConnectionClosed

from helpers import Recorder

_names = itertools.count()


def address():
    return ("zc_compat", next(_names))


class Client:
    """A connect handler with ``connected`` only, as zc.ngi allowed."""

    def __init__(self):
        self.connection = None
        self.handler = Recorder()

    def connected(self, connection):
        self.connection = connection
        connection.set_handler(self.handler)


def serve_recorders(connection):
    connection.set_handler(Recorder())


# -- connection.closed and connection.handler ----------------------------------

def test_closed_is_none_while_open_and_true_after_the_applications_close():
    connection = ngi.testing.Connection(Recorder())
    assert connection.closed is None
    connection.close()
    assert connection.closed is True
    aborted = ngi.testing.Connection(Recorder())
    aborted.abort()
    assert aborted.closed is True


def test_closed_is_true_while_a_close_still_sends_writelines():
    peer = Recorder()
    connection = ngi.testing.Connection(peer)
    connection.peer.pause_reading()
    connection.writelines(iter([b"a" * 100_000, b"b"]))
    connection.close()
    assert connection.closed is True
    connection.peer.resume_reading()
    assert peer.closes == ["closed"]


@pytest.mark.parametrize("close, reason", [
    (lambda c: c.test_close("network down"), "network down"),
    (lambda c: c.peer.close(), "closed"),
    (lambda c: c.peer.reset(), ConnectionResetError),
])
def test_closed_is_the_reason_of_a_close_from_outside(close, reason):
    handler = Recorder()
    connection = ngi.testing.Connection(Recorder())
    connection.set_handler(handler)
    close(connection)
    if isinstance(reason, type):
        assert isinstance(connection.closed, reason)
    else:
        assert connection.closed == reason
    assert handler.closes == [connection.closed]
    assert not connection


def test_closed_after_a_listener_stop_and_a_handler_failure(capsys):
    listener = ngi.testing.listener(serve_recorders)
    client = listener.connect()
    [server] = listener.connections()
    listener.close()
    assert server.closed == "stopped"

    class Fails(Recorder):
        def handle_input(self, connection, data):
            raise ValueError("bug")

    connection = ngi.testing.Connection(Recorder())
    connection.set_handler(Fails())
    connection.test_input(b"x")
    assert connection.closed == "handle_input raised ValueError: bug"
    assert "ValueError: bug" in capsys.readouterr().out
    assert client.closed == "closed"


def test_handler_is_the_handler_set():
    connection = ngi.testing.Connection()
    assert connection.handler is None
    handler = Recorder()
    connection.set_handler(handler)
    assert connection.handler is handler
    assert isinstance(connection.peer.handler, ngi.testing.PrintingHandler)


# -- addresses ------------------------------------------------------------------

def test_connection_sets_both_ends_addresses():
    connection = ngi.testing.Connection(address=("me", 1), peer_address=("you", 2))
    assert connection.peer_address == ("you", 2)
    assert connection.peer.peer_address == ("me", 1)
    plain = ngi.testing.Connection()
    assert plain.peer_address == plain.peer.peer_address == "<test>"


def test_connect_with_a_client_address():
    where = address()
    seen = []

    def server(connection):
        seen.append(connection.peer_address)  # already in the server callable
        serve_recorders(connection)

    listener = ngi.testing.listener(where, server)
    try:
        client = Client()
        ngi.testing.connect(where, client, client_address=("10.0.0.1", 4321))
        assert seen == [("10.0.0.1", 4321)]
        assert client.connection.peer_address == where
        ngi.testing.connect(where, Client())
        assert seen[1] == "<test>"
    finally:
        listener.close()


def test_client_address_through_connectable_and_peer():
    where = address()
    connection = ngi.testing.Connection()
    ngi.testing.connectable(where, connection)
    ngi.testing.connect(where, Client(), client_address="client")
    assert connection.peer.peer_address == "client"
    seen = []
    peer = ngi.testing.peer(where, lambda c: seen.append(c.peer_address)
                            or serve_recorders(c))
    peer(where, Client(), client_address="client 2")
    assert seen == ["client 2"]


def test_connector_is_connect():
    assert ngi.testing.connector is ngi.testing.connect
    network = ngi.testing.Network()
    assert network.connector == network.connect
    listener = ngi.testing.listener(serve_recorders)
    assert listener.connector == listener.connect


# -- listeners --------------------------------------------------------------------

def test_an_anonymous_listener_has_no_address_and_is_not_reachable(caplog):
    listener = ngi.testing.listener(serve_recorders)
    assert listener.address is None
    client = Client()
    with caplog.at_level(logging.WARNING, logger="ngi.testing"):
        ngi.testing.connect(None, client)  # nothing listens at None
    assert client.connection is None
    assert "no such server" in caplog.text
    assert listener.connect()  # its own connect reaches it
    named = ngi.testing.listener(None, serve_recorders)  # a fresh address
    try:
        assert named.address is not None
        reached = Client()
        ngi.testing.connect(named.address, reached)
        assert reached.connection
    finally:
        named.close()
        listener.close()


def test_listener_connect_with_a_connection_makes_it_the_server_side(capsys):
    accepted = []

    class Upper(Recorder):
        def handle_input(self, connection, data):
            connection.write(data.upper())

    def server(connection):
        accepted.append(connection)
        connection.set_handler(Upper())

    listener = ngi.testing.listener(address(), server)
    connection = ngi.testing.Connection(address="server side")
    assert listener.connect(connection, client_address="the client") is None
    assert accepted == [connection]
    assert connection.control is listener
    assert connection.peer_address == "the client"
    assert list(listener.connections()) == [connection]
    connection.test_input(b"hi")  # as if the client sent it
    assert capsys.readouterr().out == "-> b'HI'\n"  # its peer prints
    connection.close()
    assert list(listener.connections()) == []
    assert capsys.readouterr().out == "-> CLOSE\n"
    # A listener's close stops such a connection like any other.
    second = ngi.testing.Connection()
    listener.connect(second)
    done = []
    listener.close(done.append)
    second.peer.close()
    assert done == [listener]


def test_listener_connect_with_a_connection_and_a_handler():
    listener = ngi.testing.listener(serve_recorders)
    connection = ngi.testing.Connection()
    client = Client()
    assert listener.connect(connection, client) is None
    assert client.connection is connection.peer
    client.connection.write(b"data")
    assert connection.handler.inputs == [b"data"]
    listener.close()


def test_listener_connect_refuses_what_is_not_a_fresh_connection():
    listener = ngi.testing.listener(serve_recorders)
    with pytest.raises(TypeError, match="handler="):
        listener.connect(Client())  # a connect handler goes as handler=
    closed = ngi.testing.Connection()
    closed.close()
    with pytest.raises(ValueError, match="open connection"):
        listener.connect(closed)
    taken = ngi.testing.Connection()
    listener.connect(taken)
    with pytest.raises(ValueError, match="no listener has"):
        listener.connect(taken)
    listener.close()


def test_udp_listener_without_a_handler_prints(capsys):
    where = address()
    udp = ngi.testing.udp_listener(where)
    try:
        ngi.testing.udp(where, b"hello udp")
        assert capsys.readouterr().out == (
            f"udp from '<test>' to {where!r}:\n  b'hello udp'\n")
    finally:
        udp.close()
    fresh = ngi.testing.udp_listener(None)
    ngi.testing.udp(fresh.address, b"x")
    assert f"to {fresh.address!r}:" in capsys.readouterr().out
    fresh.close()


def test_printing_handler_installs_itself(capsys):
    connection = ngi.testing.Connection(Recorder())
    handler = ngi.testing.PrintingHandler(connection)
    assert connection.handler is handler
    connection.test_input(b"in")
    text = ngi.testing.TextPrintingHandler(connection.peer)
    assert connection.peer.handler is text
    connection.write(b"out\n")
    assert capsys.readouterr().out == "-> b'in'\nout\n"


# -- flow control on close --------------------------------------------------------

class Writer(Recorder):
    def handle_pause_writing(self, connection):
        self.events.append(("pause", None))

    def handle_resume_writing(self, connection):
        self.events.append(("resume", None))


@pytest.mark.parametrize("close", [lambda peer: peer.close(),
                                   lambda peer: peer.abort()])
def test_no_resume_when_the_peer_drops_what_it_held_because_it_closes(close):
    writer = Writer()
    connection = ngi.testing.Connection(Recorder())
    connection.set_handler(writer)
    connection.peer.pause_reading()
    connection.write(b"x" * 100_000)  # above the high mark: pause
    assert writer.events == [("pause", None)]
    close(connection.peer)
    assert [kind for kind, _ in writer.events] == ["pause", "close"]
    assert connection.write_buffer_size == 0


def test_resume_still_comes_when_the_peer_reads():
    writer = Writer()
    connection = ngi.testing.Connection(Recorder())
    connection.set_handler(writer)
    connection.peer.pause_reading()
    connection.write(b"x" * 100_000)
    connection.peer.resume_reading()
    assert [kind for kind, _ in writer.events] == ["pause", "resume"]


# -- connect handlers without failed_connect ----------------------------------------

def test_testing_logs_a_failed_connect_the_handler_cannot_hear(caplog):
    where = address()
    with caplog.at_level(logging.WARNING, logger="ngi.testing"):
        ngi.testing.connect(where, Client())
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert repr(where) in record.getMessage()
    assert "no such server" in record.getMessage()
    assert "failed_connect" in record.getMessage()
    network = ngi.testing.Network()
    network.refuse("refused")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ngi.testing"):
        network.connect("refused", Client())
    assert "refused" in caplog.records[0].getMessage()


def test_a_connect_handler_needs_connected():
    class FailedOnly:
        def failed_connect(self, reason):  # pragma: no cover
            pass

    with pytest.raises(TypeError, match=r"connected\(\)"):
        ngi.testing.connect(address(), FailedOnly())
    with pytest.raises(TypeError, match=r"connected\(\)"):
        ngi.net.connect(("127.0.0.1", 1), FailedOnly())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()


def test_net_logs_a_failed_connect_the_handler_cannot_hear(caplog):
    where = free_port()  # nothing listens there once the socket is closed
    logged = threading.Event()

    class Flag(logging.Handler):
        def emit(self, record):
            if record.levelno == logging.WARNING:
                logged.set()

    logger = logging.getLogger("ngi.net.client")
    flag = Flag()
    logger.addHandler(flag)
    impl = ngi.net.Implementation(name="zc-compat")
    try:
        with caplog.at_level(logging.WARNING, logger="ngi.net.client"):
            impl.connect(where, Client())
            assert logged.wait(10)
    finally:
        logger.removeHandler(flag)
        impl.wait(10)
    [record] = [r for r in caplog.records if r.name == "ngi.net.client"]
    message = record.getMessage()
    assert repr(where) in message and "refused" in message.lower()


def test_net_connects_a_handler_without_failed_connect():
    impl = ngi.net.Implementation(name="zc-compat")
    listener = impl.listener(None, serve_recorders)
    client = Client()
    done = threading.Event()
    client.connected = lambda c, connected=client.connected: (
        connected(c), done.set())
    try:
        impl.connect(listener.address, client)
        assert done.wait(10)
        assert client.connection
        client.connection.close()
    finally:
        listener.close()
        impl.wait(10)


def test_a_closed_connection_refuses_writes_in_zc_style_code():
    connection = ngi.testing.Connection()
    connection.close()
    with pytest.raises(ConnectionClosed):
        connection.write(b"late")
