"""Tests of ngi.blocking, against ngi.net on loopback and ngi.testing."""
from __future__ import annotations

import threading
import time

import pytest

import ngi.adapters
import ngi.blocking
import ngi.generator
import ngi.net
import ngi.testing
from ngi.blocking import ConnectionTimeout
from ngi.interfaces import ConnectionClosed, ConnectionFailed, Timeout

from helpers import SHORT, WAIT, Echo, Env, Silent, UpperOnce, sends, wait_for


@pytest.fixture(params=["net", "testing"])
def env(request):
    env = Env(request.param)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def net():
    env = Env("net")
    try:
        yield env
    finally:
        env.close()


class Timer:
    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *args):
        self.elapsed = time.monotonic() - self.start


# request -------------------------------------------------------------------

class Client:
    """An IClientConnectHandler that sends a message and collects input."""

    def __init__(self, message=b"hello", close_after=None):
        self.message = message
        self.close_after = close_after
        self.got = b""

    def connected(self, connection):
        connection.set_handler(self)
        connection.write(self.message)

    def failed_connect(self, reason):
        raise AssertionError("request() must not call failed_connect")

    def handle_input(self, connection, data):
        self.got += data
        if self.close_after is not None and len(self.got) >= self.close_after:
            connection.close()


def test_request_returns_the_peer_close_reason(env):
    address = env.listen(UpperOnce)
    client = Client(b"hello")
    assert ngi.blocking.request(env.connect, address, client, WAIT) == "closed"
    assert client.got == b"HELLO"


def test_request_returns_none_when_the_handler_closes(env):
    address = env.listen(Echo)
    client = Client(b"hello", close_after=5)
    assert ngi.blocking.request(env.connect, address, client, WAIT) is None
    assert client.got == b"hello"


def test_request_takes_a_connection_handler(env):
    address = env.listen(sends(b"greetings"))

    class Handler:
        got = b""
        closed = None

        def handle_input(self, connection, data):
            self.got += data

        def handle_close(self, connection, reason):
            self.closed = reason

    handler = Handler()
    assert ngi.blocking.request(env.connect, address, handler, WAIT) == "closed"
    assert handler.got == b"greetings"
    assert handler.closed == "closed"


def test_request_takes_a_callable(env):
    address = env.listen(UpperOnce)
    client = Client(b"abc")
    seen = []

    def start(connection):
        seen.append(connection)
        client.connected(connection)

    assert ngi.blocking.request(env.connect, address, start, WAIT) == "closed"
    assert client.got == b"ABC"
    assert len(seen) == 1 and seen[0].peer_address is not None


def test_request_callable_that_sets_no_handler_still_sees_the_close(env):
    address = env.listen(UpperOnce)
    result = ngi.blocking.request(env.connect, address,
                                  lambda connection: connection.write(b"x"),
                                  WAIT)
    assert result == "closed"


def test_request_with_a_generator_handler(env):
    @ngi.generator.handler
    def server(connection):
        while True:
            connection.write((yield).upper())

    lines = []

    @ngi.adapters.Lines.handler
    def client(connection):
        connection.write(b"ho world\n")
        lines.append((yield))

    address = env.listen(server)
    # The generator returns after one line, which closes the connection.
    assert ngi.blocking.request(env.connect, address, client, WAIT) is None
    assert lines == [b"HO WORLD"]


class Boom(Exception):
    pass


def test_request_raises_what_handle_input_raises(env):
    address = env.listen(Echo)

    class Failing(Client):
        def handle_input(self, connection, data):
            raise Boom(data)

    with pytest.raises(Boom) as info:
        ngi.blocking.request(env.connect, address, Failing(b"x"), WAIT)
    assert info.value.args == (b"x",)


def test_request_raises_what_connected_raises(env):
    silent = Silent()
    address = env.listen(silent)

    class Failing(Client):
        def connected(self, connection):
            raise Boom("in connected")

    with pytest.raises(Boom, match="in connected"):
        ngi.blocking.request(env.connect, address, Failing(), WAIT)
    # ... and the connection was closed.
    wait_for(silent.closed.is_set, WAIT)


def test_request_raises_what_handle_close_raises(env):
    address = env.listen(UpperOnce)

    class Failing(Client):
        def handle_close(self, connection, reason):
            raise Boom(reason)

    with pytest.raises(Boom) as info:
        ngi.blocking.request(env.connect, address, Failing(), WAIT)
    assert info.value.args == ("closed",)


def test_request_raises_writelines_errors_without_handle_exception(env):
    address = env.listen(Echo)

    class BadLines(Client):
        def connected(self, connection):
            connection.set_handler(self)
            connection.writelines([b"ok", 42])

    with pytest.raises(TypeError):
        ngi.blocking.request(env.connect, address, BadLines(), WAIT)


def test_request_passes_writelines_errors_to_handle_exception(env):
    address = env.listen(Echo)

    class Handled(Client):
        error = None

        def connected(self, connection):
            connection.set_handler(self)
            connection.writelines([b"ok", 42])

        def handle_exception(self, connection, exception):
            self.error = exception
            connection.close()

    handler = Handled()
    assert ngi.blocking.request(env.connect, address, handler, WAIT) is None
    assert isinstance(handler.error, TypeError)


def test_request_raises_connection_failed(env):
    with pytest.raises(ConnectionFailed) as info:
        ngi.blocking.request(env.connect, env.nowhere(), Client(), WAIT)
    assert not isinstance(info.value, Timeout)
    assert info.value.args[0]  # the reason


def test_request_rejects_what_is_not_a_handler():
    with pytest.raises(TypeError):
        ngi.blocking.request(lambda *args: None, "x", object(), SHORT)


def test_request_timeout_closes_the_connection(net):
    silent = Silent()
    address = net.listen(silent)
    with Timer() as timer, pytest.raises(Timeout) as info:
        ngi.blocking.request(None, address, Client(), SHORT)
    assert not isinstance(info.value, ConnectionFailed)
    assert SHORT * 0.9 <= timer.elapsed < WAIT
    assert silent.closed.wait(WAIT)
    assert silent.reason == "closed"


def test_request_timeout_while_connecting():
    with Timer() as timer, pytest.raises(ConnectionTimeout):
        ngi.blocking.request(lambda address, handler: None, "somewhere",
                             Client(), SHORT)
    assert SHORT * 0.9 <= timer.elapsed < WAIT


def test_request_closes_a_connection_that_comes_too_late():
    handlers = []
    with pytest.raises(ConnectionTimeout):
        ngi.blocking.request(lambda address, handler: handlers.append(handler),
                             "somewhere", Client(), 0.01)
    connection = ngi.testing.Connection(Silent())
    handlers[0].connected(connection)
    assert not connection


def test_request_defaults_to_ngi_net(net):
    address = net.listen(UpperOnce)
    client = Client(b"net")
    assert ngi.blocking.request(None, address, client, WAIT) == "closed"
    assert client.got == b"NET"


# connect -------------------------------------------------------------------

def test_connection_timeout_is_a_timeout_and_a_connection_failure():
    assert issubclass(ConnectionTimeout, Timeout)
    assert issubclass(ConnectionTimeout, ConnectionFailed)


def test_connect_returns_an_open_connection(env):
    address = env.listen(UpperOnce)
    connection = ngi.blocking.connect(address, env.connect, WAIT)
    assert connection
    client = Client()
    connection.set_handler(client)
    connection.write(b"abc")
    wait_for(lambda: not connection, WAIT)
    assert client.got == b"ABC"


def test_connect_defaults_to_ngi_net(net):
    address = net.listen(Echo)
    connection = ngi.blocking.connect(address, timeout=WAIT)
    assert connection
    assert connection.peer_address == address
    connection.close()


def test_connect_raises_connection_failed(env):
    with pytest.raises(ConnectionFailed) as info:
        ngi.blocking.connect(env.nowhere(), env.connect, WAIT)
    assert not isinstance(info.value, Timeout)


def test_connect_timeout():
    with Timer() as timer, pytest.raises(ConnectionTimeout):
        ngi.blocking.connect("somewhere", lambda *args: None, SHORT)
    assert SHORT * 0.9 <= timer.elapsed < WAIT


def test_connect_closes_a_connection_that_comes_too_late():
    handlers = []
    with pytest.raises(ConnectionTimeout):
        ngi.blocking.connect("somewhere",
                             lambda address, handler: handlers.append(handler),
                             0.01)
    connection = ngi.testing.Connection(Silent())
    handlers[0].connected(connection)
    assert not connection


# open ----------------------------------------------------------------------

def test_open_read_write(env):
    output, input = ngi.blocking.open(env.listen(Echo), env.connect, WAIT)
    assert output.write(b"hello\nworld\n") == 12
    output.write(bytearray(b"!"))
    assert input.readline(timeout=WAIT) == b"hello\n"
    assert input.read(3, timeout=WAIT) == b"wor"
    assert input.readline(timeout=WAIT) == b"ld\n"
    assert input.read(1, timeout=WAIT) == b"!"
    output.close()


def test_open_reads_to_eof(env):
    address = env.listen(sends(b"one\ntwo\r\nthree\nfour"))
    output, input = ngi.blocking.open(address, env.connect, WAIT)
    assert input.read(2, timeout=WAIT) == b"on"
    assert input.readline(timeout=WAIT) == b"e\n"
    assert input.readlines(timeout=WAIT) == [b"two\r\n", b"three\n", b"four"]
    assert input.read(timeout=WAIT) == b""
    assert input.read(5, timeout=WAIT) == b""
    assert input.readline(timeout=WAIT) == b""
    assert input.readlines(timeout=WAIT) == []
    assert input.reason == "closed"


def test_open_read_without_size_waits_for_the_close(env):
    address = env.listen(UpperOnce)
    output, input = ngi.blocking.open(address, env.connect, WAIT)
    output.write(b"all of it")
    assert input.read(timeout=WAIT) == b"ALL OF IT"
    assert input.read(timeout=WAIT) == b""


def test_open_read_size_returns_less_only_at_eof(env):
    address = env.listen(sends(b"abcde"))
    output, input = ngi.blocking.open(address, env.connect, WAIT)
    assert input.read(3, timeout=WAIT) == b"abc"
    assert input.read(3, timeout=WAIT) == b"de"
    assert input.read(0, timeout=WAIT) == b""


def test_open_read_size_waits_for_enough_data(net):
    output, input = ngi.blocking.open(net.listen(Echo), timeout=WAIT)
    output.write(b"ab")
    # Only two bytes will come: asking for three times out...
    with pytest.raises(Timeout):
        input.read(3, timeout=SHORT)
    # ... and consumed nothing.
    output.write(b"c")
    assert input.read(3, timeout=WAIT) == b"abc"
    input.close()


def test_open_readline_size(env):
    address = env.listen(sends(b"abcdef\ngh"))
    output, input = ngi.blocking.open(address, env.connect, WAIT)
    assert input.readline(4, timeout=WAIT) == b"abcd"
    assert input.readline(10, timeout=WAIT) == b"ef\n"
    assert input.readline(timeout=WAIT) == b"gh"


def test_open_readlines_sizehint(env):
    address = env.listen(sends(b"a\nbb\nccc\ndddd\n"))
    output, input = ngi.blocking.open(address, env.connect, WAIT)
    # Whole lines, stopping once the hint is reached.
    assert input.readlines(3, timeout=WAIT) == [b"a\n", b"bb\n"]
    assert input.readlines(1, timeout=WAIT) == [b"ccc\n"]
    assert input.readlines(timeout=WAIT) == [b"dddd\n"]


def test_open_iteration(env):
    address = env.listen(sends(b"x\ny\nz"))
    output, input = ngi.blocking.open(address, env.connect, WAIT)
    assert list(input) == [b"x\n", b"y\n", b"z"]
    assert list(input) == []


@pytest.mark.parametrize("method", ["read", "readline", "readlines"])
def test_open_input_timeouts(env, method):
    silent = Silent()
    output, input = ngi.blocking.open(env.listen(silent), env.connect, WAIT)
    output.write(b"no newline")  # the server ignores it anyway
    with Timer() as timer, pytest.raises(Timeout):
        getattr(input, method)(timeout=SHORT)
    assert SHORT * 0.9 <= timer.elapsed < WAIT
    output.close()
    if env.name == "net":
        assert silent.closed.wait(WAIT)
    else:
        assert silent.closed.is_set()


def test_open_keeps_data_when_a_readline_times_out(net):
    output, input = ngi.blocking.open(net.listen(Echo), timeout=WAIT)
    output.write(b"par")
    assert input.read(3, timeout=WAIT) == b"par"
    output.write(b"tial")
    wait_for(lambda: len(input._stream.buffer) == 4, WAIT)
    with pytest.raises(Timeout):
        input.readline(timeout=SHORT)
    output.write(b" line\n")
    assert input.readline(timeout=WAIT) == b"tial line\n"
    output.close()


def test_open_an_existing_connection(env):
    connection = ngi.blocking.connect(env.listen(Echo), env.connect, WAIT)
    output, input = ngi.blocking.open(connection)
    output.write(b"ping\n")
    assert input.readline(timeout=WAIT) == b"ping\n"
    input.close()
    assert not connection


def test_open_connect_failures(env):
    with pytest.raises(ConnectionFailed):
        ngi.blocking.open(env.nowhere(), env.connect, WAIT)
    with pytest.raises(ConnectionTimeout):
        ngi.blocking.open("somewhere", lambda *args: None, SHORT)


def test_open_writelines_waits_until_the_iterable_is_used_up(env):
    output, input = ngi.blocking.open(env.listen(Echo), env.connect, WAIT)
    state = []

    def chunks():
        try:
            for i in range(100):
                yield b"%d\n" % i
        finally:
            state.append("done")

    output.writelines(chunks(), timeout=WAIT)
    assert state == ["done"]
    lines = [input.readline(timeout=WAIT) for i in range(100)]
    assert lines == [b"%d\n" % i for i in range(100)]
    output.close()


def test_open_writelines_timeout(net):
    output, input = ngi.blocking.open(net.listen(Echo), timeout=WAIT)
    release = threading.Event()

    def slow():
        yield b"a"
        release.wait(WAIT)  # holds up the loop thread until released
        yield b"b"

    try:
        with pytest.raises(Timeout):
            output.writelines(slow(), timeout=SHORT)
    finally:
        release.set()
    assert input.read(2, timeout=WAIT) == b"ab"
    output.close()


def test_open_writelines_nonblocking_returns_at_once(net):
    output, input = ngi.blocking.open(net.listen(Echo), timeout=WAIT)
    release = threading.Event()
    started = threading.Event()

    def held():
        started.set()
        release.wait(WAIT)
        yield b"late"

    try:
        with Timer() as timer:
            output.writelines(held(), nonblocking=True)
        assert timer.elapsed < WAIT / 2
        assert started.wait(WAIT)
    finally:
        release.set()
    assert input.read(4, timeout=WAIT) == b"late"
    output.close()


def test_open_writelines_raises_errors_from_the_iterable(env):
    output, input = ngi.blocking.open(env.listen(Echo), env.connect, WAIT)

    def failing():
        yield b"fine\n"
        raise Boom("in the iterable")

    with pytest.raises(Boom):
        output.writelines(failing(), timeout=WAIT)
    with pytest.raises(TypeError):
        output.writelines([b"x", "not bytes"], timeout=WAIT)
    # The connection stays open, and the errors were raised once only.
    output.write(b"still open\n")
    assert input.readline(timeout=WAIT) == b"fine\n"
    assert input.readline(timeout=WAIT) == b"x" + b"still open\n"
    output.close()


def test_open_errors_are_raised_by_the_next_read(env):
    output, input = ngi.blocking.open(env.listen(Echo), env.connect, WAIT)
    output.write(b"first\n")
    output.writelines([b"second\n", 42], nonblocking=True)
    with pytest.raises(TypeError):
        input.read(100, timeout=WAIT)
    assert input.readline(timeout=WAIT) == b"first\n"
    assert input.readline(timeout=WAIT) == b"second\n"
    output.close()


def test_open_flush_raises_a_reported_error(env):
    output, input = ngi.blocking.open(env.listen(Echo), env.connect, WAIT)
    output.flush()
    output.writelines([object()], nonblocking=True)
    if env.name == "net":
        wait_for(lambda: input._stream.error is not None, WAIT)
    with pytest.raises(TypeError):
        output.flush()
    output.flush()  # raised once
    output.close()


def test_open_wrong_direction_raises_oserror(env):
    output, input = ngi.blocking.open(env.listen(Echo), env.connect, WAIT)
    for call in (output.read, output.readline, output.readlines,
                 lambda: iter(output), lambda: input.write(b"x"),
                 lambda: input.writelines([b"x"]), input.flush):
        with pytest.raises(OSError):
            call()
    assert output.writable() and not output.readable()
    assert input.readable() and not input.writable()
    output.close()


def test_open_write_rejects_str(env):
    output, input = ngi.blocking.open(env.listen(Echo), env.connect, WAIT)
    with pytest.raises(TypeError):
        output.write("text")
    output.close()


def test_open_closing_the_output_ends_the_input(env):
    output, input = ngi.blocking.open(env.listen(Echo), env.connect, WAIT)
    output.write(b"echoed\n")
    assert input.readline(timeout=WAIT) == b"echoed\n"
    output.close()
    assert input.read(timeout=WAIT) == b""
    with pytest.raises(ValueError):
        output.write(b"more")


def test_open_closed_input_refuses_reads(env):
    output, input = ngi.blocking.open(env.listen(Echo), env.connect, WAIT)
    with input:
        pass
    assert input.closed
    with pytest.raises(ValueError):
        input.read(timeout=WAIT)


def test_open_write_after_the_peer_closed(env):
    output, input = ngi.blocking.open(env.listen(sends(b"bye")), env.connect,
                                      WAIT)
    assert input.read(timeout=WAIT) == b"bye"
    with pytest.raises(ConnectionClosed):
        output.write(b"too late")
    with pytest.raises(ValueError):
        output.writelines([b"too late"], timeout=WAIT)


def test_open_reads_across_threads(net):
    """A reader blocked in read() wakes as data arrives from the loop."""
    output, input = ngi.blocking.open(net.listen(Echo), timeout=WAIT)
    got = []
    reader = threading.Thread(
        target=lambda: got.append(input.read(6, timeout=WAIT)))
    reader.start()
    time.sleep(0.05)
    output.write(b"abc")
    time.sleep(0.05)
    output.write(b"def")
    reader.join(WAIT)
    assert got == [b"abcdef"]
    output.close()
