"""Graceful stops that can be hurried: ``handle_drain`` tells open
connections that their listener is draining, the HTTP example closes idle
keep-alive connections at once, and a second SIGTERM/SIGINT to ``ngi
serve`` stops at once.
"""
from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import threading
import time

import pytest

import ngi.net
import ngi.testing
from examples import httpserver

from helpers import Recorder, wait_for
from test_serve import Served, app, ask, connect, serve_args  # noqa: F401

ROOT = pathlib.Path(__file__).resolve().parent.parent
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


class Drains(Recorder):
    """Records handle_drain; closes at once when ``idle``."""

    idle = True

    def __init__(self, connection=None):
        super().__init__()
        self.thread = None
        if connection is not None:
            connection.set_handler(self)

    def handle_drain(self, connection):
        self.thread = threading.current_thread()
        self.events.append(("drain", None))
        if self.idle:
            connection.close()


# -- the contract, in both implementations ----------------------------------------

def test_testing_tells_each_open_connection_once():
    handlers = []

    def server(connection):
        handler = Drains(connection)
        handler.idle = len(handlers) == 0  # the first closes, the second waits
        handlers.append(handler)

    listener = ngi.testing.listener(server)
    listener.connect()
    listener.connect()
    done = []
    listener.close(done.append)
    assert [h.events for h in handlers] == [[("drain", None)], [("drain", None)]]
    assert len(listener.connections()) == 1 and done == []
    listener.close(done.append)  # no second notice
    assert handlers[1].events == [("drain", None)]
    listener.connections()[0].close()
    assert done == [listener]
    # A handler without handle_drain is left alone.
    plain = Recorder()
    other = ngi.testing.listener(lambda c: c.set_handler(plain))
    client = other.connect()
    other.close(done.append)
    assert plain.events == [] and client
    client.close()
    assert done == [listener, other]


def test_testing_delivers_drain_after_the_running_handler_returns():
    events = []

    class CloserOfItsOwnListener(Drains):
        def handle_input(self, connection, data):
            connection.control.close(lambda listener: events.append("drained"))
            events.append("input returned")

        def handle_drain(self, connection):
            events.append("drain")
            connection.close()

    listener = ngi.testing.listener(CloserOfItsOwnListener)
    listener.connect().write(b"stop")
    assert events == ["input returned", "drain", "drained"]  # no re-entry


def test_a_failing_handle_drain_closes_its_connection(capsys):
    class Fails(Drains):
        def handle_drain(self, connection):
            raise RuntimeError("drain bug")

    listener = ngi.testing.listener(Fails)
    client = listener.connect()
    done = []
    listener.close(done.append)
    assert "RuntimeError: drain bug" in capsys.readouterr().out
    assert not client and done == [listener]


@pytest.mark.parametrize("thready", [False, True])
def test_net_tells_each_open_connection_on_its_loop_thread(thready):
    impl = ngi.net.Implementation(name="ngi-test-drain")
    handlers = []

    def server(connection):
        handlers.append(Drains(connection))

    listener = impl.listener(None, server, thready=thready)
    drained = threading.Event()
    try:
        with socket.create_connection(listener.address, timeout=5) as a, \
                socket.create_connection(listener.address, timeout=5) as b:
            wait_for(lambda: len(listener.connections()) == 2, 10, "accepts")
            listener.close(lambda listener: drained.set())
            assert drained.wait(10)  # both idle: both closed at once
            for sock in (a, b):
                sock.settimeout(5)
                assert sock.recv(10) == b""
        assert [h.events for h in handlers] == [[("drain", None)]] * 2
        for handler in handlers:
            assert handler.thread is not threading.current_thread()
    finally:
        listener.close()
        impl.wait(10)


# -- the HTTP example ---------------------------------------------------------------

def test_http_idle_keep_alive_closes_at_once_when_draining(capsys):
    listener = ngi.testing.listener(httpserver.server)
    client = listener.connect()
    client.write(GET)
    assert "200 OK" in capsys.readouterr().out
    done = []
    listener.close(done.append)
    assert not client and done == [listener]
    assert capsys.readouterr().out == "-> CLOSE\n"


def test_http_a_request_under_way_is_answered_then_closed(capsys):
    listener = ngi.testing.listener(httpserver.server)
    client = listener.connect()
    client.write(b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nab")
    done = []
    listener.close(done.append)
    assert client and done == []  # still receiving the body
    client.write(b"cde")
    out = capsys.readouterr().out
    assert "Connection: close" in out and "-> CLOSE" in out
    assert done == [listener]


def test_http_requests_say_close_once_draining():
    requests = httpserver.Requests()
    assert requests.drain() is True
    responses, close = requests.feed(GET)
    assert b"Connection: close\r\n" in responses and close


# -- ngi serve ------------------------------------------------------------------------

def keep_alive_client(address):
    """A socket that made one keep-alive request and got its answer."""
    sock = socket.create_connection(address, timeout=10)
    sock.sendall(GET)
    data = b""
    while b"Hello, World!" not in data:
        data += sock.recv(65536)
    return sock


def test_serve_closes_an_idle_keep_alive_client_at_once():
    with Served(["serve", "examples.httpserver:server", "--bind",
                 "127.0.0.1:0", "--grace", "30"], cwd=ROOT) as served:
        sock = keep_alive_client(served.address)
        started = time.monotonic()
        assert served.stop(signal.SIGTERM, timeout=20) == 0
        assert time.monotonic() - started < 10  # not the 30 s grace
        assert sock.recv(100) == b""
        sock.close()
    assert "stopped" in served.log and "still open" not in served.log


def test_a_second_signal_stops_at_once(app):
    with Served(serve_args("--grace", "30"), cwd=app) as served:
        client = connect(served.address)
        client.sendall(b"x")
        assert client.recv(10) == b"x"  # open, and no handle_drain
        served.process.send_signal(signal.SIGTERM)
        served.wait_for("1 connections open")
        started = time.monotonic()
        assert served.stop(signal.SIGINT, timeout=20) == 0
        assert time.monotonic() - started < 10
        client.settimeout(10)
        assert client.recv(10) == b""
        client.close()
    assert "stopping 1 connections now" in served.log


def test_a_second_signal_to_the_supervisor_stops_the_workers_at_once(app):
    with Served(serve_args("--workers", "2", "--grace", "30"), cwd=app) as served:
        served.wait_for("starting 2 workers")
        wait_for(lambda: served.count("started (pid") == 2, 20, "workers")
        client = connect(served.address)
        client.sendall(b"x")
        assert client.recv(10) == b"x"
        served.process.send_signal(signal.SIGTERM)
        served.wait_for("1 connections open")
        started = time.monotonic()
        assert served.stop(signal.SIGTERM, timeout=20) == 0
        assert time.monotonic() - started < 15
        client.close()
    # The idle worker may have drained, exited and been reaped before the
    # second signal: then the supervisor has one worker left to hurry.
    assert re.search(r"SIGTERM again: stopping [12] workers now", served.log)
    assert "stopping 1 connections now" in served.log


def test_a_ctrl_c_to_the_process_group_counts_once_for_the_workers(app):
    """The terminal sends SIGINT to every process of the group, and the
    supervisor passes it on: a worker must not take that as a second stop."""
    with Served(serve_args("--workers", "2", "--grace", "30"), cwd=app,
                new_session=True) as served:
        wait_for(lambda: served.count("started (pid") == 2, 20, "workers")
        client = connect(served.address)
        client.sendall(b"x")
        assert client.recv(10) == b"x"
        os.killpg(served.process.pid, signal.SIGINT)  # what Ctrl-C does
        wait_for(lambda: served.count("connections open") == 2, 20,
                 lambda: f"both workers draining in:\n{served.log}")
        time.sleep(0.5)  # the supervisor's SIGTERM has arrived too
        client.sendall(b"still")
        assert client.recv(10) == b"still"  # still draining, not stopped
        assert served.process.poll() is None
        client.close()
        assert served.process.wait(20) == 0
    assert "now" not in served.log
