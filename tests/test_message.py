"""Tests of ngi.message, against ngi.net on loopback and ngi.testing."""
from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

import ngi.net
import ngi.testing
from ngi.blocking import ConnectionTimeout
from ngi.interfaces import ConnectionFailed, Timeout
from ngi.message import CouldNotConnect, UnexpectedResponse, message

from helpers import SHORT, WAIT, Echo, Env, Silent, UpperOnce


class InPieces:
    """Answer each input with its pieces, one write each; never close."""

    def __call__(self, connection):
        connection.set_handler(self)

    def handle_input(self, connection, data):
        for piece in data.split(b" "):
            connection.write(piece)


@pytest.fixture(params=["net", "testing"])
def env(request):
    env = Env(request.param)
    try:
        yield env
    finally:
        env.close()


def test_reply_until_the_peer_closes(env):
    assert message(env.connect, env.listen(UpperOnce), b"hello") == b"HELLO"


def test_reply_until_expected(env):
    seen = []

    def expected(reply):
        seen.append(reply)
        return reply.endswith(b"!")

    reply = message(env.connect, env.listen(InPieces()), b"a b c!", expected)
    assert reply == b"abc!"
    assert seen[-1] == b"abc!"
    assert all(isinstance(r, bytes) for r in seen)
    if env.name == "testing":  # one input per write: every stage was seen
        assert seen == [b"a", b"ab", b"abc!"]


def test_expected_closes_the_connection(env):
    def expected(reply):
        return True

    class Answer(Silent):
        def handle_input(self, connection, data):
            connection.write(b"ok")

    answer = Answer()
    address = env.listen(answer)
    assert message(env.connect, address, b"?", expected) == b"ok"
    assert answer.closed.wait(WAIT)


def test_defaults_to_ngi_net():
    listener = ngi.net.listener(None, UpperOnce)
    try:
        assert message(None, listener.address, b"net") == b"NET"
    finally:
        listener.close()
        ngi.net.wait(WAIT)


def test_could_not_connect(env):
    address = env.nowhere()
    with pytest.raises(CouldNotConnect) as info:
        message(env.connect, address, b"hello")
    assert isinstance(info.value, ConnectionFailed)
    assert info.value.reason is not None
    assert info.value.args == (info.value.reason,)
    if env.name == "testing":
        assert info.value.reason == "no such server"


def test_unexpected_response_when_the_peer_closes_first(env):
    with pytest.raises(UnexpectedResponse) as info:
        message(env.connect, env.listen(UpperOnce), b"hi",
                lambda reply: reply.endswith(b"\n"))
    assert info.value.data == b"HI"
    assert info.value.reason == "closed"
    assert info.value.args == (b"HI", "closed")


def test_unexpected_response_when_the_connection_breaks():
    """Without ``expected``, only a normal close means the reply is whole."""
    conn = ngi.testing.Connection(peer_handler=None)

    class Breaks:
        def handle_input(self, connection, data):
            connection.write(b"partial")
            conn.test_close("connection reset")

    conn.peer.set_handler(Breaks())
    ngi.testing.connectable("breaks", conn)
    with pytest.raises(UnexpectedResponse) as info:
        message(ngi.testing.connect, "breaks", b"hello")
    assert info.value.data == b"partial"
    assert info.value.reason == "connection reset"


def test_unexpected_response_on_a_reset_over_the_network():
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(WAIT)

        def reset_after_reply():
            connection, _ = server.accept()
            with connection:
                connection.settimeout(WAIT)
                connection.recv(100)
                connection.sendall(b"partial")
                time.sleep(0.1)
                # Linger 0: close with a reset instead of a normal FIN.
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))

        thread = threading.Thread(target=reset_after_reply)
        thread.start()
        try:
            with pytest.raises(UnexpectedResponse) as info:
                message(ngi.net.connect, server.getsockname(), b"hello",
                        timeout=WAIT)
        finally:
            thread.join(WAIT)
            ngi.net.wait(WAIT)
    assert info.value.data == b"partial"
    assert info.value.reason != "closed"


def test_timeout_closes_the_connection(env):
    server = Silent()
    address = env.listen(server)
    start = time.monotonic()
    with pytest.raises(Timeout) as info:
        message(env.connect, address, b"anyone?", timeout=SHORT)
    assert not isinstance(info.value, ConnectionFailed)
    assert SHORT * 0.9 <= time.monotonic() - start < WAIT
    assert server.closed.wait(WAIT)


def test_timeout_while_connecting():
    with pytest.raises(ConnectionTimeout):
        message(lambda address, handler: None, "x", b"hello", timeout=SHORT)


def test_expected_that_raises(env):
    def expected(reply):
        raise ZeroDivisionError(reply)

    with pytest.raises(ZeroDivisionError):
        message(env.connect, env.listen(Echo), b"x", expected, timeout=WAIT)


def test_data_must_be_bytes():
    with pytest.raises(TypeError):
        message(lambda *args: None, "x", "text")

