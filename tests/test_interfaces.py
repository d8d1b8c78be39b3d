"""Tests for ngi.interfaces: the exceptions, the protocols' members, and
the protocols checked at runtime against the objects both implementations
(ngi.testing and ngi.net) and the adapters make."""
from __future__ import annotations

import socket

import pytest

import ngi.adapters
import ngi.blocking
import ngi.interfaces
import ngi.net
import ngi.testing
from ngi.interfaces import (
    ConnectionClosed, ConnectionFailed, ICloseHandler, IClientConnectHandler,
    IDrainHandler, IHandshakeHandler,
    IConnection, IConnectionHandler, IExceptionHandler, IFlowControlHandler,
    IImplementation, IListener, IServer, IServerConnection,
    IThreadedImplementation, ITimer, IUDPHandler, IUDPListener, Timeout)
from ngi.testing.conformance import Client, Recorder, Server
from helpers import wait_for
from test_net import impl  # noqa: F401 (a fixture)


# Exceptions -----------------------------------------------------------------

def test_connection_closed_is_a_value_error():
    assert issubclass(ConnectionClosed, ValueError)
    with pytest.raises(ValueError):
        raise ConnectionClosed("closed")


def test_the_other_exceptions_are_independent():
    for exception in ConnectionFailed, Timeout:
        assert issubclass(exception, Exception)
        assert not issubclass(exception, ValueError)
    assert not issubclass(ConnectionFailed, Timeout)
    assert not issubclass(Timeout, ConnectionFailed)
    assert ConnectionFailed("no such server").args == ("no such server",)


# The protocols state the whole contract -------------------------------------

CONNECTION = ["peer_address", "__bool__", "set_handler", "write",
              "writelines", "close", "abort", "write_buffer_size",
              "set_write_limits", "get_write_limits", "pause_reading",
              "resume_reading", "reading", "ssl_object", "start_tls"]
IMPLEMENTATION = ["connect", "listener", "udp", "udp_listener", "call_later"]


@pytest.mark.parametrize("protocol, members", [
    (IConnection, CONNECTION),
    (IServerConnection, CONNECTION + ["control"]),
    (IListener, ["address", "connections", "close"]),
    (IUDPListener, ["address", "close"]),
    (ITimer, ["cancel"]),
    (IImplementation, IMPLEMENTATION),
    (IThreadedImplementation,
     IMPLEMENTATION + ["call_from_thread", "wait"]),
    (IConnectionHandler, ["handle_input"]),
    (ICloseHandler, ["handle_close"]),
    (IExceptionHandler, ["handle_exception"]),
    (IFlowControlHandler, ["handle_pause_writing", "handle_resume_writing"]),
    (IDrainHandler, ["handle_drain"]),
    (IHandshakeHandler, ["handle_handshake"]),
], ids=lambda value: getattr(value, "__name__", ""))
def test_protocol_members(protocol, members):
    # So that narrowing a protocol fails here, not only in the
    # isinstance checks below, which would then pass for less.
    missing = [name for name in members if not hasattr(protocol, name)]
    assert missing == []
    for name in members:
        assert getattr(protocol, name).__doc__, f"{name} states no rule"


# Implementation interfaces, provided by ngi.testing -------------------------

def test_the_testing_module_is_an_implementation():
    assert isinstance(ngi.testing, IImplementation)
    assert isinstance(ngi.testing.network, IImplementation)
    assert isinstance(ngi.testing.Network(), IImplementation)
    # It runs in the caller's thread: nothing to hand work to or wait for.
    assert not isinstance(ngi.testing, IThreadedImplementation)


def test_testing_timers():
    network = ngi.testing.Network()
    timer = network.call_later(1, lambda: None)
    assert isinstance(timer, ITimer)
    timer.cancel()


def test_testing_connections():
    connection = ngi.testing.Connection()
    assert isinstance(connection, IConnection)
    assert isinstance(ngi.testing.TextConnection(), IConnection)
    # A plain connection was not accepted by a listener: it has no control.
    assert not isinstance(connection, IServerConnection)


def test_testing_listener_and_server_connections():
    accepted = []

    def server(connection):
        connection.set_handler(ngi.testing.PrintingHandler())
        accepted.append(connection)

    listener = ngi.testing.listener(server)
    try:
        assert isinstance(listener, IListener)
        client = listener.connect()
        assert isinstance(client, IConnection)
        assert not isinstance(client, IServerConnection)
        [server_connection] = accepted
        assert isinstance(server_connection, IServerConnection)
        assert isinstance(server_connection, IConnection)
    finally:
        listener.close()


def test_testing_udp_listener():
    listener = ngi.testing.udp_listener(None, lambda address, data: None)
    try:
        assert isinstance(listener, IUDPListener)
    finally:
        listener.close()


# Implementation interfaces, provided by ngi.net -----------------------------

def test_net_implementations():
    assert isinstance(ngi.net, IThreadedImplementation)
    for implementation in ngi.net.Implementation(), ngi.net.Inline():
        assert isinstance(implementation, IThreadedImplementation)
        assert isinstance(implementation, IImplementation)


def test_net_connections_and_listeners_over_loopback(impl):
    server = Server()
    listener = impl.listener(None, server)
    try:
        assert isinstance(listener, IListener)
        client = Client()
        impl.connect(listener.address, client)
        wait_for(lambda: client.connections and server.connections,
                 what="both ends")
        [connection] = client.connections
        [server_connection] = server.connections
        assert isinstance(connection, IConnection)
        assert isinstance(server_connection, IServerConnection)
        assert server_connection.control is listener
        connection.close()
    finally:
        listener.close()


def test_net_udp_listener_and_timer(impl):
    listener = impl.udp_listener(None, lambda address, data: None)
    try:
        assert isinstance(listener, IUDPListener)
    finally:
        listener.close()
    timer = impl.call_later(60, lambda: None)
    assert isinstance(timer, ITimer)
    timer.cancel()


# Adapters are connections ---------------------------------------------------

@pytest.mark.parametrize("adapter_class", [ngi.adapters.Base,
                                           ngi.adapters.Lines,
                                           ngi.adapters.Sized])
def test_adapters_are_connections(adapter_class):
    adapter = adapter_class(ngi.testing.Connection())
    assert isinstance(adapter, IConnection)
    assert adapter.ssl_object is None  # plaintext, passed through
    adapter.set_handler(Recorder())
    assert adapter.get_write_limits() == (64 * 1024, 16 * 1024)
    adapter.set_write_limits(100)
    assert adapter.connection.get_write_limits() == (100, 25)


# Application interfaces -----------------------------------------------------

def test_printing_handlers_are_connection_handlers():
    assert isinstance(ngi.testing.PrintingHandler(), IConnectionHandler)
    assert isinstance(ngi.testing.TextPrintingHandler(), IConnectionHandler)
    assert isinstance(ngi.testing.PrintingHandler(), ICloseHandler)
    assert isinstance(ngi.testing.PrintingHandler(), IExceptionHandler)


def test_the_optional_handler_protocols():
    recorder = Recorder()  # has every optional method
    for protocol in (IConnectionHandler, ICloseHandler, IExceptionHandler,
                     IFlowControlHandler):
        assert isinstance(recorder, protocol)

    class PauseOnly:
        def handle_pause_writing(self, connection):
            pass

    # Each optional method is looked up on its own, but the protocol
    # describes the pair.
    assert not isinstance(PauseOnly(), IFlowControlHandler)
    assert not isinstance(PauseOnly(), ICloseHandler)


def test_application_protocols_check_the_required_methods():
    class InputOnly:
        def handle_input(self, connection, data):
            pass

    class ConnectHandler:
        def connected(self, connection):
            pass

        def failed_connect(self, reason):
            pass

    class HalfConnectHandler:
        def connected(self, connection):
            pass

    # Optional methods are not part of the structural check.
    assert isinstance(InputOnly(), IConnectionHandler)
    assert not isinstance(object(), IConnectionHandler)
    assert isinstance(ConnectHandler(), IClientConnectHandler)
    assert not isinstance(HalfConnectHandler(), IClientConnectHandler)
    assert isinstance(lambda connection: None, IServer)
    assert isinstance(lambda address, data: None, IUDPHandler)
    assert not isinstance(42, IServer)


def test_the_exceptions_fit_pythons_hierarchy():
    assert issubclass(ngi.interfaces.Timeout, TimeoutError)
    assert issubclass(ngi.interfaces.ConnectionFailed, ConnectionError)
    assert issubclass(ngi.blocking.ConnectionTimeout, TimeoutError)
    assert issubclass(ngi.blocking.ConnectionTimeout, ConnectionError)
    # Same names and messages: str() is the reason given, as before.
    refused = ConnectionRefusedError(111, "Connection refused")
    error = ngi.interfaces.ConnectionFailed(refused)
    assert str(error) == "[Errno 111] Connection refused"
    assert error.args == (refused,) and error.errno is None
    assert str(ngi.interfaces.Timeout("too slow")) == "too slow"
    assert ngi.interfaces.Timeout.__name__ == "Timeout"


def test_except_oserror_catches_a_refused_blocking_connect():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = s.getsockname()  # nothing listens there once closed
    with pytest.raises(OSError) as info:
        ngi.blocking.connect(address, timeout=10)
    assert isinstance(info.value, ngi.interfaces.ConnectionFailed)
    assert "refused" in str(info.value).lower()
    ngi.net.wait(10)
