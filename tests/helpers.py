"""Handlers, servers and a wait helper that the test modules share.

Tests import them as ``from helpers import ...`` (``pythonpath`` in
pyproject.toml puts ``tests/`` on the path).  ``Env`` and the small servers
after it serve test_blocking and test_message, which run the same
scripts-style helpers against ngi.net on loopback and ngi.testing in memory.
"""
from __future__ import annotations

import itertools
import socket
import threading
import time

import ngi.net
import ngi.testing
from examples.echo import Echo  # the shared echo handler is the example's

WAIT = 5.0      # for things that should happen
SHORT = 0.3     # for timeouts we expect to expire


def wait_for(predicate, timeout=10.0, what="condition"):
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds.

    ``what`` names the awaited thing in the failure; a callable is asked
    at that moment (to show the state then).
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.002)


def read_exactly(sock, size, timeout=10.0):
    """Read ``size`` bytes from a blocking socket, or what came before
    its end."""
    sock.settimeout(timeout)
    data = b""
    while len(data) < size:
        chunk = sock.recv(max(size - len(data), 1))
        if not chunk:
            break
        data += chunk
    return data


class Recorder:
    """A client and connection handler that records every call, in order.

    ``events`` holds ``(kind, value)`` pairs for ``"input"``, ``"close"``,
    ``"exception"`` and ``"failed_connect"``; ``inputs``, ``closes``,
    ``exceptions`` and ``failures`` are views of it.  As a client,
    ``connection`` is the one ``connected`` gave and ``settled`` is set once
    connecting succeeded or failed.
    """

    def __init__(self):
        self.events = []
        self.input_connections = []  # the connection each input came on
        self.connection = None
        self.settled = threading.Event()

    def connected(self, connection):
        self.connection = connection
        connection.set_handler(self)
        self.settled.set()

    def failed_connect(self, reason):
        self.events.append(("failed_connect", reason))
        self.settled.set()

    def handle_input(self, connection, data):
        self.input_connections.append(connection)
        self.events.append(("input", data))

    def handle_close(self, connection, reason):
        self.events.append(("close", reason))

    def handle_exception(self, connection, exception):
        self.events.append(("exception", exception))

    def _of(self, kind):
        return [value for k, value in self.events if k == kind]

    @property
    def inputs(self):
        return self._of("input")

    @property
    def data(self):
        """Every input so far, joined."""
        return b"".join(self.inputs)

    @property
    def closes(self):
        return self._of("close")

    @property
    def exceptions(self):
        return self._of("exception")

    @property
    def failures(self):
        return self._of("failed_connect")


class InputOnly:
    """A handler with nothing but ``handle_input``, which it records."""

    def __init__(self):
        self.inputs = []

    def handle_input(self, connection, data):
        self.inputs.append(data)




class UpperOnce:
    """A server: reply to the first input in upper case, then close."""

    def __init__(self, connection):
        connection.set_handler(self)

    def handle_input(self, connection, data):
        connection.write(data.upper())
        connection.close()


class Silent:
    """Never answer; remember how the connection ended."""

    def __init__(self):
        self.closed = threading.Event()
        self.reason = None

    def __call__(self, connection):
        connection.set_handler(self)

    def handle_input(self, connection, data):
        pass

    def handle_close(self, connection, reason):
        self.reason = reason
        self.closed.set()


def sends(data):
    """A server that sends ``data`` at once, then closes."""
    def server(connection):
        connection.set_handler(Silent())
        connection.write(data)
        connection.close()
    return server


_names = itertools.count()


class Env:
    """One implementation, with listeners closed when the test ends."""

    def __init__(self, name):
        self.name = name
        self.listeners = []
        self.connect = ngi.net.connect if name == "net" else ngi.testing.connect

    def listen(self, server):
        if self.name == "net":
            listener = ngi.net.listener(None, server)
        else:
            listener = ngi.testing.listener(("blocking", next(_names)), server)
        self.listeners.append(listener)
        return listener.address

    def nowhere(self):
        """An address where nothing listens."""
        if self.name == "testing":
            return ("blocking-nowhere", next(_names))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()

    def close(self):
        for listener in self.listeners:
            listener.close()
        if self.name == "net":
            ngi.net.wait(WAIT)
