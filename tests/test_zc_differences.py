"""ngi's side of each difference from zc.ngi 2.1 that docs/porting.md lists.

One test per entry of the page's tables, named in its "test" column
(test_porting_page_names_only_real_tests checks that).  What ngi shares
with zc.ngi is in test_zc_compat.py and zc_style.txt.
"""
from __future__ import annotations

import logging
import pathlib
import re
import socket
import subprocess
import sys
import threading

import pytest

import ngi
import ngi.adapters
import ngi.blocking
import ngi.interfaces
import ngi.net
import ngi.testing
from ngi.interfaces import ConnectionClosed, ConnectionFailed

from helpers import Echo, Recorder, wait_for

PORTING = pathlib.Path(__file__).resolve().parent.parent / "docs" / "porting.md"


class Client:
    def __init__(self, handler=None):
        self.handler = handler or Recorder()
        self.connection = None
        self.failures = []
        self.settled = threading.Event()

    def connected(self, connection):
        self.connection = connection
        connection.set_handler(self.handler)
        self.settled.set()

    def failed_connect(self, reason):
        self.failures.append(reason)
        self.settled.set()


@pytest.fixture
def impl():
    impl = ngi.net.Implementation(name="ngi-test-zc-differences")
    yield impl
    impl.wait(10)


def free_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()


def test_porting_page_names_only_real_tests():
    named = set(re.findall(r"`(test_\w+)`", PORTING.read_text()))
    defined = set()
    for module in PORTING.parent.parent.glob("tests/test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", module.read_text(), re.M))
    assert not named - defined, f"no such tests: {named - defined}"
    here = {name for name in globals() if name.startswith("test_")}
    missing = here - named - {"test_porting_page_names_only_real_tests"}
    assert not missing, f"not on the porting page: {missing}"
    assert len(named) >= 30


# -- names ------------------------------------------------------------------------

def test_the_socket_implementation_is_ngi_net():
    for name in ["connect", "connector", "listener", "udp", "udp_listener",
                 "wait", "call_from_thread", "start_thread", "Implementation",
                 "Inline", "main"]:
        assert hasattr(ngi.net, name), name
    assert ngi.net.connector == ngi.net.connect


def test_set_handler_only():
    assert not hasattr(ngi.testing.Connection(), "setHandler")
    assert not hasattr(ngi.adapters.Lines(ngi.testing.Connection()), "setHandler")


def test_no_end_of_data_marker():
    assert not hasattr(ngi, "END_OF_DATA")
    connection = ngi.testing.Connection(Recorder())
    with pytest.raises(TypeError, match="bytes-like"):
        connection.write(object())  # what END_OF_DATA was


def test_no_asyncore_map(impl):
    for name in ["cleanup_map", "_map"]:
        assert not hasattr(ngi.net, name)
        assert not hasattr(impl, name)
    listener = impl.listener(None, Echo)
    listener.close()
    impl.wait(10)  # the way to wait for everything to be closed


def test_no_get_port():
    assert not hasattr(ngi.testing, "get_port")
    listener = ngi.net.listener(None, Echo)
    try:
        host, port = listener.address
        assert host == "127.0.0.1" and port > 0
    finally:
        listener.close()
        ngi.net.wait(10)


def test_interfaces_are_protocols():
    assert not hasattr(ngi.interfaces, "implements")
    assert not hasattr(ngi.interfaces.IConnection, "providedBy")
    assert isinstance(ngi.testing.Connection(), ngi.interfaces.IConnection)
    assert isinstance(Recorder(), ngi.interfaces.IConnectionHandler)


def test_listener_address_none_is_127_0_0_1(impl):
    listener = impl.listener(None, Echo)
    try:
        assert listener.address[0] == "127.0.0.1"
    finally:
        listener.close()


# -- data -----------------------------------------------------------------------------

def test_data_is_bytes():
    connection = ngi.testing.Connection(Recorder())
    with pytest.raises(TypeError, match="got str"):
        connection.write("text")
    with pytest.raises(TypeError, match="got str"):
        connection.writelines("text")


def test_printed_data_is_a_bytes_repr(capsys):
    ngi.testing.Connection().write(b"hello")
    assert capsys.readouterr().out == "-> b'hello'\n"


def test_text_printing_ends_each_input_with_a_newline(capsys):
    connection = ngi.testing.TextConnection()
    connection.write(b"no newline")
    connection.write(b"line\n")
    assert capsys.readouterr().out == "no newline\nline\n"


def test_input_is_delivered_as_it_came():
    connection = ngi.testing.Connection()
    connection.test_input(b"a")
    connection.test_input(b"b")  # before a handler: both wait, apart
    handler = Recorder()
    connection.set_handler(handler)
    assert handler.inputs == [b"a", b"b"]


def test_udp_printing_ends_with_a_newline(capsys):
    udp = ngi.testing.udp_listener(("zc-differences", 1))
    ngi.testing.udp(("zc-differences", 1), b"x")
    udp.close()
    assert capsys.readouterr().out.endswith("  b'x'\n")


# -- connections ------------------------------------------------------------------------

def test_writing_to_a_closed_connection_raises_connection_closed(impl):
    connection = ngi.testing.Connection(Recorder())
    connection.close()
    with pytest.raises(ConnectionClosed):
        connection.write(b"x")
    assert issubclass(ConnectionClosed, ValueError)  # as zc.ngi.async's
    listener = impl.listener(None, Echo)
    client = Client()
    try:
        impl.connect(listener.address, client)
        assert client.settled.wait(10)
        client.connection.close()
        with pytest.raises(ConnectionClosed):
            client.connection.write(b"x")
    finally:
        listener.close()


def test_peer_eof_reason_is_closed(impl):
    server = Recorder()
    listener = impl.listener(None, lambda c: c.set_handler(server))
    try:
        with socket.create_connection(listener.address, timeout=5):
            wait_for(lambda: listener.connections(), 10, "accept")
        wait_for(lambda: server.closes, 10, "handle_close")
        assert server.closes == ["closed"]  # zc.ngi.async: 'end of input'
    finally:
        listener.close()


def test_a_failed_connect_reason_is_the_oserror(impl):
    client = Client()
    impl.connect(free_address(), client)
    assert client.settled.wait(10)
    [reason] = client.failures
    assert isinstance(reason, ConnectionRefusedError)  # zc.ngi: 'ECONNREFUSED'


def test_a_handler_failure_reason_names_the_exception(capsys, impl):
    class Fails(Recorder):
        def handle_input(self, connection, data):
            raise ValueError("bug")

    handler = Fails()
    connection = ngi.testing.Connection(Recorder())
    connection.set_handler(handler)
    connection.test_input(b"x")
    assert handler.closes == ["handle_input raised ValueError: bug"]
    out = capsys.readouterr().out
    assert out.startswith("ngi.testing: handle_input raised an exception:\n"
                          "Traceback (most recent call last):")
    # ngi.net: the exception itself.
    net_handler = Fails()
    listener = impl.listener(None, lambda c: c.set_handler(net_handler))
    try:
        with socket.create_connection(listener.address, timeout=5) as sock:
            sock.sendall(b"x")
            wait_for(lambda: net_handler.closes, 10, "handle_close")
        assert isinstance(net_handler.closes[0], ValueError)
    finally:
        listener.close()


def test_a_handler_without_handle_close_is_fine_when_it_fails(capsys):
    class Fails:
        def handle_input(self, connection, data):
            raise ValueError("bug")

    connection = ngi.testing.Connection(Recorder())
    connection.set_handler(Fails())
    connection.test_input(b"x")  # zc.ngi.testing called handle_close anyway
    assert not connection
    assert "AttributeError" not in capsys.readouterr().out


def test_the_recursion_notice_says_giving_up(capsys):
    class Retry:
        def connected(self, connection):  # pragma: no cover
            pass

        def failed_connect(self, reason):
            ngi.testing.connect(("zc-differences", "retry"), self)

    ngi.testing.connect(("zc-differences", "retry"), Retry())
    assert capsys.readouterr().out == (
        "ngi.testing: connect(('zc-differences', 'retry')) was called from "
        "failed_connect for the same address; giving up\n")


def test_switching_handlers_is_allowed(impl):
    second = Recorder()

    class Switch(Recorder):
        def handle_input(self, connection, data):
            connection.set_handler(second)  # zc.ngi.async: TypeError
            connection.write(b"switched")

    listener = impl.listener(None, lambda c: c.set_handler(Switch()))
    try:
        with socket.create_connection(listener.address, timeout=5) as sock:
            sock.sendall(b"one")
            assert sock.recv(100) == b"switched"
            sock.sendall(b"two")
            wait_for(lambda: second.inputs, 10, "the second handler's input")
        assert second.data == b"two"
    finally:
        listener.close()


def test_peer_address_is_kept_after_the_close(impl):
    listener = impl.listener(None, Echo)
    client = Client()
    try:
        impl.connect(listener.address, client)
        assert client.settled.wait(10)
        client.connection.close()
        assert client.connection.peer_address == listener.address
    finally:
        listener.close()


def test_the_testing_peer_address_is_test_and_there_is_no_address():
    connection = ngi.testing.Connection()
    assert connection.peer_address == "<test>"  # zc.ngi.testing: None
    assert not hasattr(connection, "address")


def test_connection_takes_a_handler_not_a_factory():
    with pytest.raises(TypeError, match="not the class Recorder"):
        ngi.testing.Connection(Recorder)
    handler = Recorder()
    connection = ngi.testing.Connection(handler)
    connection.write(b"x")
    assert handler.inputs == [b"x"]


def test_writelines_is_pulled_as_the_peer_reads():
    pulled = []

    def chunks():
        for i in range(100):
            pulled.append(i)
            yield b"x" * 8192

    connection = ngi.testing.Connection(Recorder())
    connection.peer.pause_reading()
    connection.writelines(chunks())
    assert len(pulled) < 20  # zc.ngi.testing pulled all 100 in the call
    connection.peer.resume_reading()
    assert len(pulled) == 100


def test_lines_and_sized_bound_their_records():
    handler = Recorder()
    connection = ngi.testing.Connection(Recorder())
    ngi.adapters.Lines(connection, max_line=10).set_handler(handler)
    connection.test_input(b"x" * 11)
    assert isinstance(handler.closes[0], ngi.adapters.LineTooLong)
    assert ngi.adapters.Sized(ngi.testing.Connection()).max_size == 16 << 20


# -- listeners ---------------------------------------------------------------------------

def test_testing_listener_connections_is_a_list():
    listener = ngi.testing.listener(lambda c: c.set_handler(Recorder()))
    listener.connect()
    assert type(listener.connections()) is list
    listener.close()


def test_a_closed_testing_listener_refuses_with_connection_failed():
    listener = ngi.testing.listener(lambda c: c.set_handler(Recorder()))
    listener.close()
    with pytest.raises(ConnectionFailed, match="the listener is closed"):
        listener.connect()
    client = Client()
    listener.connect(handler=client)
    assert client.failures == ["the listener is closed"]


def test_listener_connect_takes_no_address():
    listener = ngi.testing.listener(lambda c: c.set_handler(Recorder()))
    with pytest.raises(TypeError, match="expects an ngi.testing Connection"):
        listener.connect("", Client())  # an old zc.ngi form
    listener.close()


def test_a_testing_listener_close_tells_the_server_side_stopped(capsys):
    handler = Recorder()
    listener = ngi.testing.listener(lambda c: c.set_handler(handler))
    listener.connect()
    listener.close()
    assert handler.closes == ["stopped"]  # zc.ngi.testing: nothing
    assert capsys.readouterr().out == "-> CLOSE\n"


def test_a_peer_connector_connects_other_addresses_as_connect_does():
    server = ngi.testing.listener(("zc-differences", "other"),
                                  lambda c: c.set_handler(Recorder()))
    peer = ngi.testing.peer(("zc-differences", "peer"),
                            lambda c: c.set_handler(Recorder()))
    client = Client()
    peer(("zc-differences", "other"), client)  # zc.ngi: 'connection refused'
    assert client.connection and not client.failures
    server.close()


def test_net_listeners_have_no_close_wait_or_connect(impl):
    listener = impl.listener(None, Echo)
    try:
        assert not hasattr(listener, "close_wait")
        assert not hasattr(listener, "connect")
        drained = threading.Event()
        listener.close(lambda listener: drained.set())  # close_wait's way
        assert drained.wait(10)
    finally:
        listener.close()


# -- blocking -----------------------------------------------------------------------------

def test_output_file_write_returns_the_length():
    output, input = ngi.blocking.open(ngi.testing.Connection(Recorder()))
    assert output.write(b"abc") == 3  # zc.ngi: None
    assert output.write(memoryview(b"hello")) == 5


def test_files_have_no_seek_or_tell():
    output, input = ngi.blocking.open(ngi.testing.Connection(Recorder()))
    for f in (output, input):
        assert not hasattr(f, "seek") and not hasattr(f, "tell")


def test_readlines_keeps_line_endings_at_the_close():
    connection = ngi.testing.Connection(Recorder())
    output, input = ngi.blocking.open(connection)
    connection.test_input(b"one\ntwo\n")
    connection.test_close()
    assert input.readlines(timeout=1) == [b"one\n", b"two\n"]


def test_blocking_is_not_deprecated_and_has_one_timeout():
    result = subprocess.run([sys.executable, "-W", "error", "-c",
                             "import ngi.blocking"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr  # zc.ngi: DeprecationWarning
    assert ngi.blocking.Timeout is ngi.interfaces.Timeout


# -- logging --------------------------------------------------------------------------------

def test_loggers_are_named_for_ngi(impl, caplog):
    class Hopeful:
        def connected(self, connection):  # pragma: no cover
            connection.close()

    with caplog.at_level(logging.WARNING, logger="ngi"):
        impl.connect(free_address(), Hopeful())  # zc.ngi.async.client
        wait_for(lambda: caplog.records, 10, "the warning")
    assert {r.name for r in caplog.records} == {"ngi.net.client"}
