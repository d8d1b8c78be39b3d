"""Tests for ngi.interfaces: the exceptions, and the protocols checked at
runtime against the objects ngi.testing makes."""
from __future__ import annotations

import pytest

import ngi.testing
from ngi.interfaces import (
    ConnectionClosed, ConnectionFailed, IClientConnectHandler, IConnection,
    IConnectionHandler, IImplementation, IListener, IServer,
    IServerConnection, IUDPHandler, IUDPListener, Timeout)


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


# Implementation interfaces, provided by ngi.testing -------------------------

def test_the_testing_module_is_an_implementation():
    assert isinstance(ngi.testing, IImplementation)


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


# Application interfaces -----------------------------------------------------

def test_printing_handlers_are_connection_handlers():
    assert isinstance(ngi.testing.PrintingHandler(), IConnectionHandler)
    assert isinstance(ngi.testing.TextPrintingHandler(), IConnectionHandler)


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
