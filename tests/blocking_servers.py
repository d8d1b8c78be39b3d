"""Servers and an environment shared by test_blocking and test_message.

Both run the same scripts-style helpers against ngi.net on loopback and
ngi.testing in memory; `Env` hides which one a test is using.
"""
from __future__ import annotations

import itertools
import socket
import threading
import time

import ngi.net
import ngi.testing

WAIT = 5.0      # for things that should happen
SHORT = 0.3     # for timeouts we expect to expire

_names = itertools.count()


class Echo:
    def handle_input(self, connection, data):
        connection.write(data)


def echo(connection):
    connection.set_handler(Echo())


class UpperOnce:
    """Reply to the first input in upper case, then close."""

    def handle_input(self, connection, data):
        connection.write(data.upper())
        connection.close()


def upper_once(connection):
    connection.set_handler(UpperOnce())


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

    def wait_until(self, predicate):
        deadline = time.monotonic() + WAIT
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.005)

    def close(self):
        for listener in self.listeners:
            listener.close()
        if self.name == "net":
            ngi.net.wait(WAIT)
