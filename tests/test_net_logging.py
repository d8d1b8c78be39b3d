"""What ngi.net logs, and under which logger: ``ngi.net.server`` (listeners,
accepts, server callables), ``ngi.net.client`` (connects) and
``ngi.net.udp``; at DEBUG, each accept and each close with its reason.
"""
from __future__ import annotations

import logging
import socket

import pytest

import ngi.net
import ngi.testing

from helpers import Echo, Recorder, wait_for


@pytest.fixture
def impl():
    impl = ngi.net.Implementation(name="ngi-test-logging")
    yield impl
    impl.wait(10)


def records(caplog, name, level=None):
    return [r for r in caplog.records if r.name == name
            and (level is None or r.levelno == level)]


def logged(caplog, name, text, level=None):
    """Wait until a record of ``name`` containing ``text`` is logged."""
    wait_for(lambda: any(text in r.getMessage()
                         for r in records(caplog, name, level)),
             10, lambda: f"{text!r} under {name} in {caplog.text!r}")


def test_listening_is_logged_under_ngi_net_server(impl, caplog):
    with caplog.at_level(logging.INFO, logger="ngi.net"):
        listener = impl.listener(None, Echo)
        udp = impl.udp_listener(("127.0.0.1", 0), lambda a, d: None)
    listener.close()
    udp.close()
    assert f"listening on {listener.address!r}" in \
        records(caplog, "ngi.net.server")[0].getMessage()
    assert f"udp listening on {udp.address!r}" in \
        records(caplog, "ngi.net.udp")[0].getMessage()


def test_a_failing_server_callable_is_logged_under_ngi_net_server(impl, caplog):
    def server(connection):
        raise RuntimeError("server bug")

    listener = impl.listener(None, server)
    try:
        with caplog.at_level(logging.ERROR, logger="ngi.net"):
            with socket.create_connection(listener.address, timeout=5) as s:
                s.settimeout(5)
                assert s.recv(10) == b""
            logged(caplog, "ngi.net.server", "server", logging.ERROR)
    finally:
        listener.close()
    [record] = records(caplog, "ngi.net.server", logging.ERROR)
    assert record.exc_info[1].args == ("server bug",)


@pytest.mark.parametrize("implementation", ["net", "net-thready", "testing"])
def test_a_server_callable_that_sets_no_handler_is_a_warning(caplog,
                                                             implementation):
    def forgetful(connection):
        pass  # no set_handler: nothing would ever be read

    def closes(connection):
        connection.close()  # a refusal is not a mistake

    if implementation == "testing":
        with caplog.at_level(logging.WARNING, logger="ngi.testing"):
            ngi.testing.listener(forgetful).connect()
            ngi.testing.listener(closes).connect()
        [record] = records(caplog, "ngi.testing", logging.WARNING)
    else:
        impl = ngi.net.Implementation(name="ngi-test-logging")
        thready = implementation == "net-thready"  # served on its own loop
        listeners = [impl.listener(None, forgetful, thready=thready),
                     impl.listener(None, closes, thready=thready)]
        try:
            with caplog.at_level(logging.WARNING, logger="ngi.net"):
                for listener in reversed(listeners):
                    with socket.create_connection(listener.address, timeout=5):
                        pass
                logged(caplog, "ngi.net.server", "without setting a handler")
        finally:
            for listener in listeners:
                listener.close()
            impl.wait(10)
        [record] = records(caplog, "ngi.net.server", logging.WARNING)
    message = record.getMessage()
    assert "forgetful" in message and "without setting a handler" in message


def test_a_failing_connected_closes_and_is_logged_under_ngi_net_client(impl, caplog):
    server = Recorder()
    listener = impl.listener(None, lambda c: c.set_handler(server))

    class Broken:
        def connected(self, connection):
            connection.write(b"before")
            raise RuntimeError("client bug")

        def handle_close(self, connection, reason):  # pragma: no cover
            raise AssertionError("no handle_close after a failed connected")

    try:
        with caplog.at_level(logging.ERROR, logger="ngi.net"):
            impl.connect(listener.address, Broken())
            logged(caplog, "ngi.net.client", "connected", logging.ERROR)
        wait_for(lambda: server.closes, 10, "the server to see the close")
        assert server.closes == ["closed"]
    finally:
        listener.close()


def test_a_udp_handler_error_is_logged_under_ngi_net_udp(impl, caplog):
    def handler(address, data):
        raise RuntimeError("udp bug")

    udp = impl.udp_listener(("127.0.0.1", 0), handler)
    try:
        with caplog.at_level(logging.ERROR, logger="ngi.net"):
            impl.udp(udp.address, b"x")
            logged(caplog, "ngi.net.udp", "udp handler", logging.ERROR)
    finally:
        udp.close()


def test_debug_logs_each_accept_and_each_close_with_its_reason(impl, caplog):
    listener = impl.listener(None, Echo)
    client = Recorder()
    try:
        with caplog.at_level(logging.DEBUG, logger="ngi.net"):
            with socket.create_connection(listener.address, timeout=5) as s:
                port = s.getsockname()[1]
                logged(caplog, "ngi.net.server", "accepted a connection")
                s.sendall(b"x")
                s.recv(1)
            logged(caplog, "ngi.net.server", "closed: closed")
            impl.connect(listener.address, client)
            assert client.settled.wait(10)
            client.connection.close()
            logged(caplog, "ngi.net.client", "closed by the application")
            impl.connect(listener.address, Recorder())
            wait_for(lambda: len(listener.connections()) == 1, 10, "accept")
            listener.close()
            logged(caplog, "ngi.net.server", "closed: stopped")
    finally:
        listener.close()
    accepts = [r.getMessage() for r in records(caplog, "ngi.net.server", logging.DEBUG)
               if "accepted" in r.getMessage()]
    assert f"from ('127.0.0.1', {port})" in accepts[0]


def test_nothing_is_logged_per_connection_above_debug(impl, caplog):
    listener = impl.listener(None, Echo)
    try:
        with caplog.at_level(logging.INFO, logger="ngi.net"):
            with socket.create_connection(listener.address, timeout=5) as s:
                s.sendall(b"x")
                s.recv(1)
            wait_for(lambda: not listener.connections(), 10, "the close")
    finally:
        listener.close()
    assert not [r for r in caplog.records if r.name.startswith("ngi.net")]


def test_inline_still_raises_what_a_server_callable_raised():
    inline = ngi.net.Inline()

    def server(connection):
        raise RuntimeError("inline server bug")

    listener = inline.listener(None, server)
    sock = socket.create_connection(listener.address, timeout=5)
    try:
        with pytest.raises(RuntimeError, match="inline server bug"):
            inline.loop(10)
    finally:
        sock.close()
        listener.close()
        inline.loop(10)
