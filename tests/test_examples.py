"""The examples in examples/: in memory, over ngi.net, and under real clients.

wrk, redis-benchmark, redis-cli and redis-server come from the system's
packages (``.ci/run`` installs them); the tests that need one skip, saying
so, only where it is not installed.
"""
from __future__ import annotations

import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

import ngi.net
import ngi.testing

from helpers import read_exactly, wait_for

ROOT = pathlib.Path(__file__).resolve().parent.parent

from examples import chat, echo, httpserver, kv, wordcount  # noqa: E402
from test_serve import Served, ask  # noqa: E402


def needs(tool, package):
    return pytest.mark.skipif(
        shutil.which(tool) is None,
        reason=f"{tool} is not installed (apt-get install {package}; "
               ".ci/run does it)")


@pytest.fixture
def impl():
    """An ngi.net implementation with its own loop thread."""
    return ngi.net.Implementation(name="ngi-examples")


def serve_example(spec, *extra):
    """``ngi serve examples.X:server`` on a free loopback port."""
    return Served(["serve", spec, "--bind", "127.0.0.1:0", "--grace", "1",
                   *extra], cwd=ROOT)


def recv_until(sock, marker, timeout=10):
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before {marker!r}; got {data[-200:]!r}"
        data += chunk
    return data


# -- echo ---------------------------------------------------------------------

def test_echo_in_memory(capsys):
    connection = ngi.testing.Connection()
    echo.server(connection)
    connection.test_input(b"hello")
    assert capsys.readouterr().out == "-> b'hello'\n"


def test_echo_served():
    with serve_example("examples.echo:server") as served:
        assert ask(served.address, b"ping\n") == b"ping\n"
        assert served.stop() == 0


# -- word count -----------------------------------------------------------------

LINES = [b"hello world", b"", b"the quick brown fox", b"  spaced   out  "]
COUNTS = [2, 0, 4, 2]


def test_wordcount_in_memory():
    listener = ngi.testing.listener(("wordcount", 1), wordcount.server)
    try:
        assert wordcount.count_words(("wordcount", 1), LINES,
                                     connect=ngi.testing.connect) == COUNTS
    finally:
        listener.close()


def test_wordcount_over_ngi_net(impl):
    listener = impl.listener(None, wordcount.server)
    try:
        assert wordcount.count_words(listener.address, LINES,
                                     connect=impl.connect) == COUNTS
    finally:
        listener.close()


def test_wordcount_client_script_against_served_server():
    with serve_example("examples.wordcount:server") as served:
        host, port = served.address
        result = subprocess.run(
            [sys.executable, "-m", "examples.wordcount", f"{host}:{port}"],
            input=b"\n".join(LINES) + b"\n", capture_output=True, cwd=ROOT,
            timeout=60)
        assert result.returncode == 0, result.stderr
        assert [int(line.split()[0]) for line in
                result.stdout.decode().splitlines()] == COUNTS
        assert served.stop() == 0


# -- chat -------------------------------------------------------------------------

class Client:
    """An in-memory chat client that records what it receives."""

    def __init__(self):
        self.received = b""

    def connected(self, connection):
        self.connection = connection
        connection.set_handler(self)

    def failed_connect(self, reason):
        raise AssertionError(reason)

    def handle_input(self, connection, data):
        self.received += data

    def handle_close(self, connection, reason):
        pass


def test_chat_in_memory():
    room = chat.Room()
    listener = ngi.testing.listener(("chat", 1), room)
    alice, bob, carol = Client(), Client(), Client()
    for client in (alice, bob, carol):
        ngi.testing.connect(("chat", 1), client)
    alice.connection.write(b"/nick alice\nhello ")
    alice.connection.write(b"everyone\n")
    bob.connection.close()
    assert bob.received == (b"* guest3 joined\n* guest1 is now alice\n"
                            b"alice: hello everyone\n")
    assert carol.received == (b"* guest1 is now alice\nalice: hello everyone\n"
                              b"* guest2 left\n")
    assert alice.received.endswith(b"* guest2 left\n")
    assert b"alice: hello" not in alice.received  # not sent back
    listener.close()


def test_chat_disconnects_a_client_with_an_endless_line():
    room = chat.Room()
    listener = ngi.testing.listener(("chat", 2), room)
    rogue, other = Client(), Client()
    ngi.testing.connect(("chat", 2), rogue)
    ngi.testing.connect(("chat", 2), other)
    rogue.connection.write(b"x" * (chat.MAX_LINE + 1))
    assert rogue.received.endswith(b"* line too long, goodbye\n")
    assert not rogue.connection
    assert other.received.endswith(b"* guest1 was disconnected\n")
    assert len(room.members) == 1
    listener.close()


def test_chat_flow_control_in_memory():
    room = chat.Room()
    listener = ngi.testing.listener(("chat", 3), room)
    slow, talker = Client(), Client()
    ngi.testing.connect(("chat", 3), slow)
    ngi.testing.connect(("chat", 3), talker)
    slow.connection.pause_reading()
    member = next(m for m in room.members if m.name == b"guest1")
    line = b"y" * 1000 + b"\n"
    for _ in range(200):  # 200 KB, past the 64 KiB high-water mark
        talker.connection.write(line)
    assert member.paused and member.missed > 0
    assert member.connection.write_buffer_size < 70 * 1024
    slow.connection.resume_reading()
    assert not member.paused
    delivered = slow.received.count(b"guest2: ")
    assert slow.received.endswith(b"* you missed %d lines\n" % (200 - delivered))
    listener.close()


def test_chat_many_clients_over_ngi_net(impl):
    room = chat.Room()
    listener = impl.listener(None, room)
    clients = [socket.create_connection(listener.address, timeout=10)
               for _ in range(20)]
    try:
        wait_for(lambda: len(room.members) == 20, what="20 members")
        # Drain the join notices, so that what follows is the broadcast.
        for i, client in enumerate(clients[:-1]):
            recv_until(client, b"* guest20 joined\n")
        for i, client in enumerate(clients):
            client.sendall(b"message %d\n" % i)
        for i, client in enumerate(clients):
            got = b""
            while got.count(b"message") < 19:
                got = recv_until(client, b"\n") if not got else got + recv_until(client, b"\n")
            assert b"message %d\n" % i not in got
            assert got.count(b"message") == 19
    finally:
        for client in clients:
            client.close()
        listener.close()


def test_chat_drops_lines_for_a_client_that_does_not_keep_up(impl):
    """Flow control: a reader that stops reading is paused, not buffered for."""
    room = chat.Room()
    listener = impl.listener(None, room)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(listener.address)
    talker = socket.create_connection(listener.address, timeout=10)
    try:
        wait_for(lambda: len(room.members) == 2, what="2 members")
        member = next(m for m in room.members if m.name == b"guest1")
        line = b"x" * 1000 + b"\n"
        sent = 0
        # Talk until the room has paused the slow reader (bounded: 64 MiB).
        while not member.missed and sent < 64 * 1024 * 1024:
            talker.sendall(line * 100)
            sent += len(line) * 100
        wait_for(lambda: member.missed, what="lines dropped for the slow reader")
        high = member.connection.get_write_limits()[0]
        assert member.connection.write_buffer_size <= high + 2 * len(line)
        # Once it reads again, it catches up and is told what it missed.
        got = recv_until(slow, b"* you missed", timeout=30)
        assert b"guest2: xxx" in got
        wait_for(lambda: not member.paused, what="resume")
    finally:
        slow.close()
        talker.close()
        listener.close()


# -- HTTP -----------------------------------------------------------------------------

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
HELLO = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 13\r\n\r\nHello, World!")


def test_http_pipelined_requests_are_answered_in_order():
    requests = httpserver.Requests()
    post = b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    responses, close = requests.feed(GET + post + GET)
    assert not close
    assert responses == (HELLO + b"HTTP/1.1 200 OK\r\nContent-Type: text/plain"
                         b"\r\nContent-Length: 5\r\n\r\nhello" + HELLO)


def test_http_requests_cut_anywhere():
    stream = (GET + b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc") * 2
    whole, _ = httpserver.Requests().feed(stream)
    for cut in range(1, len(stream)):
        requests = httpserver.Requests()
        first, _ = requests.feed(stream[:cut])
        second, _ = requests.feed(stream[cut:])
        assert first + second == whole


@pytest.mark.parametrize("request_bytes, status, closes", [
    (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 200, True),
    (b"GET / HTTP/1.0\r\n\r\n", 200, True),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200, False),
    (b"GET /nothing HTTP/1.1\r\n\r\n", 404, False),
    (b"HEAD / HTTP/1.1\r\n\r\n", 200, False),
    (b"garbage\r\n\r\n", 400, True),
    (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400, True),
    (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501, True),
    (b"POST /echo HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413, True),
    (b"GET / HTTP/1.1\r\nX: " + b"y" * httpserver.MAX_HEAD, 431, True),
])
def test_http_status_and_connection(request_bytes, status, closes):
    responses, close = httpserver.Requests().feed(request_bytes)
    assert responses.startswith(b"HTTP/1.1 %d " % status)
    assert close == closes
    assert (b"Connection: close" in responses) == (closes and b"HTTP/1.0" not in request_bytes)


class Output:
    def __init__(self):
        self.data = b""

    def handle_input(self, connection, data):
        self.data += data


def through_the_handler(stream, pieces=1):
    """What `httpserver.server` (framed by the core) answers to
    ``stream`` on an ngi.testing connection, and whether it closed."""
    connection = ngi.testing.Connection()
    output = Output()
    connection.peer.set_handler(output)
    httpserver.server(connection)
    size = -(-len(stream) // pieces)
    for start in range(0, len(stream), size):
        if connection.closed:
            break
        connection.test_input(stream[start:start + size])
    return output.data, bool(connection.closed)


@pytest.mark.parametrize("stream", [
    GET + b"POST /echo HTTP/1.1\r\nContent-Length: 14\r\n\r\nbody\r\n\r\nand more" + GET,
    GET * 3 + b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n" + GET,
    b"GET / HTTP/1.1\r\nX: " + b"y" * httpserver.MAX_HEAD,
    b"garbage\r\n\r\n" + GET,
    b"POST /echo HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
])
@pytest.mark.parametrize("pieces", [1, 7])
def test_the_framed_handler_answers_as_feed_does(stream, pieces):
    expected, closes = httpserver.Requests().feed(stream)
    assert through_the_handler(stream, pieces) == (expected, closes)


def test_http_over_ngi_net(impl):
    listener = impl.listener(None, httpserver.server)
    try:
        with socket.create_connection(listener.address, timeout=10) as sock:
            sock.sendall(GET * 50)  # pipelined
            got = b""
            while got.count(HELLO) < 50:
                got += recv_until(sock, b"Hello, World!")
            assert got == HELLO * 50
            sock.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            tail = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                tail += chunk
            assert tail.endswith(b"Connection: close\r\n\r\nHello, World!")
    finally:
        listener.close()


WRK_PIPELINE = """
-- Send DEPTH requests in each write (HTTP pipelining).
init = function(args)
   local depth = tonumber(args[1]) or 16
   local r = {}
   for i = 1, depth do r[i] = wrk.format() end
   req = table.concat(r)
end
request = function() return req end
"""


def run_wrk(url, *args, script_args=(), seconds=1, connections=10):
    script = ["--", *script_args] if script_args else []
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", *args, url, *script],
        capture_output=True, text=True, timeout=seconds + 30)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Non-2xx" not in out and "Socket errors" not in out, out
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return requests, rate


@needs("wrk", "wrk")
def test_wrk_keep_alive():
    with serve_example("examples.httpserver:server") as served:
        host, port = served.address
        requests, rate = run_wrk(f"http://{host}:{port}/")
        assert requests > 1000 and rate > 0
        assert served.stop() == 0


@needs("wrk", "wrk")
def test_wrk_pipelined(tmp_path):
    script = tmp_path / "pipeline.lua"
    script.write_text(WRK_PIPELINE)
    with serve_example("examples.httpserver:server") as served:
        host, port = served.address
        requests, rate = run_wrk(f"http://{host}:{port}/", "-s", str(script),
                                 script_args=["16"])
        assert requests > 1000
        assert served.stop() == 0


# -- the RESP key-value server ------------------------------------------------------

def resp(*arguments):
    return b"*%d\r\n" % len(arguments) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in arguments)


def test_kv_commands_in_memory():
    replies = _Collect()
    connection = ngi.testing.Connection(peer_handler=replies)
    kv.Server()(connection)
    connection.test_input(resp(b"SET", b"k", b"v\r\nwith crlf") + resp(b"GET", b"k")
                          + resp(b"get", b"missing") + b"PING\r\n"
                          + resp(b"PING", b"hi") + resp(b"NOPE")
                          + resp(b"GET") + resp(b"CONFIG", b"GET", b"save"))
    assert replies.data == (b"+OK\r\n$12\r\nv\r\nwith crlf\r\n$-1\r\n+PONG\r\n"
                            b"$2\r\nhi\r\n-ERR unknown command 'NOPE'\r\n"
                            b"-ERR wrong number of arguments for 'get' command\r\n"
                            b"*0\r\n")


def test_kv_commands_cut_anywhere():
    stream = resp(b"SET", b"key", b"value") + resp(b"GET", b"key") + b"PING\r\n"
    for cut in range(1, len(stream)):
        replies = _Collect()
        connection = ngi.testing.Connection(peer_handler=replies)
        kv.Server()(connection)
        connection.test_input(stream[:cut])
        connection.test_input(stream[cut:])
        assert replies.data == b"+OK\r\n$5\r\nvalue\r\n+PONG\r\n"


def test_kv_protocol_error_closes():
    replies = _Collect()
    connection = ngi.testing.Connection(peer_handler=replies)
    kv.Server()(connection)
    connection.test_input(b"*1\r\n:5\r\n")
    assert replies.data.startswith(b"-ERR Protocol error")
    assert not connection


def test_kv_fetch_without_an_upstream_is_an_error_reply():
    replies = _Collect()
    connection = ngi.testing.Connection(peer_handler=replies)
    kv.Server()(connection)
    connection.test_input(resp(b"FETCH", b"k") + resp(b"FETCH") + b"PING\r\n")
    assert replies.data == (b"-ERR no upstream configured\r\n"
                            b"-ERR wrong number of arguments for 'fetch' command\r\n"
                            b"+PONG\r\n")


@pytest.fixture
def kv_pair():
    """An upstream kv server holding b"k" and a front one whose FETCH asks
    it, both on ngi.net over loopback, the front's bridge on its own
    asyncio loop."""
    import ngi.aio
    impl = ngi.net.Implementation(name="kv-fetch")
    upstream = kv.Server()
    upstream.store.data[b"k"] = b"from upstream"
    up = impl.listener(None, upstream)
    bridge = ngi.aio.Bridge()
    front = kv.Server(upstream=up.address, bridge=bridge)
    listener = impl.listener(None, front)
    yield front, listener, up
    listener.close()
    up.close()
    bridge.close()
    impl.wait(10)


def test_kv_fetch_asks_the_upstream_through_asyncio_in_order(kv_pair):
    front, listener, up = kv_pair
    request = (resp(b"SET", b"a", b"1") + resp(b"FETCH", b"k")
               + resp(b"GET", b"k") + resp(b"FETCH", b"missing") + b"PING\r\n")
    expected = (b"+OK\r\n$13\r\nfrom upstream\r\n$13\r\nfrom upstream\r\n"
                b"$-1\r\n+PONG\r\n")
    with socket.create_connection(listener.address, 10) as sock:
        sock.sendall(request)  # pipelined: the replies keep their order
        assert read_exactly(sock, len(expected)) == expected
    assert front.store.data[b"k"] == b"from upstream"  # kept


def test_kv_fetch_from_an_upstream_that_is_gone_is_an_error_reply(kv_pair):
    front, listener, up = kv_pair
    front.upstream = ("127.0.0.1", free_port())  # nobody listens there
    with socket.create_connection(listener.address, 10) as sock:
        sock.sendall(resp(b"FETCH", b"k") + b"PING\r\n")
        reply = recv_until(sock, b"+PONG\r\n")
    assert reply.startswith(b"-ERR upstream: ") and reply.endswith(b"+PONG\r\n")


def test_kv_fetch_is_cancelled_when_the_client_goes_away(kv_pair):
    front, listener, up = kv_pair
    asked, gone = [], []

    class Silent:  # an upstream that reads the request and never answers
        def handle_input(self, connection, data):
            asked.append(data)

        def handle_close(self, connection, reason):
            gone.append(reason)

    impl = ngi.net.Implementation(name="kv-silent")
    silent = impl.listener(None, lambda c: c.set_handler(Silent()))
    front.upstream = silent.address
    try:
        with socket.create_connection(listener.address, 10) as sock:
            sock.sendall(resp(b"FETCH", b"k"))
            deadline = time.monotonic() + 10
            while not asked:
                assert time.monotonic() < deadline, "the upstream was not asked"
                time.sleep(0.01)
        # The client left: the asyncio call is cancelled, and its connection
        # to the upstream closed (fetch's finally), long before its timeout.
        deadline = time.monotonic() + kv.FETCH_TIMEOUT / 2
        while not gone:
            assert time.monotonic() < deadline, "the fetch was not cancelled"
            time.sleep(0.01)
    finally:
        silent.close()
        impl.wait(10)


class _Collect:
    def __init__(self):
        self.data = b""

    def handle_input(self, connection, data):
        self.data += data

    def handle_close(self, connection, reason):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A real redis-server on loopback, without persistence."""

    def __init__(self):
        self.port = free_port()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--logfile", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                assert self.process.poll() is None, "redis-server exited"
                time.sleep(0.05)

    def close(self):
        self.process.terminate()
        self.process.wait(20)


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
                          capture_output=True, text=True, timeout=30).stdout


@needs("redis-cli", "redis-tools")
@needs("redis-server", "redis-server")
def test_kv_answers_redis_cli_like_redis_server():
    commands = [["PING"], ["PING", "hello there"], ["SET", "greeting", "hi"],
                ["GET", "greeting"], ["GET", "nothing"], ["SET", "k"]]
    reference = RedisServer()
    try:
        expected = [redis_cli(reference.port, *c) for c in commands]
    finally:
        reference.close()
    with serve_example("examples.kv:server") as served:
        got = [redis_cli(served.address[1], *c) for c in commands]
        assert served.stop() == 0
    # Error texts differ in detail; everything else is the same.
    assert got[:-1] == expected[:-1]
    assert got[-1].startswith("ERR wrong number of arguments")


@needs("redis-benchmark", "redis-tools")
def test_redis_benchmark_pipelined():
    with serve_example("examples.kv:server") as served:
        result = subprocess.run(
            ["redis-benchmark", "-h", "127.0.0.1", "-p", str(served.address[1]),
             "-n", "20000", "-c", "10", "-P", "16", "-t", "ping,set,get", "--csv"],
            capture_output=True, text=True, timeout=60)
        assert served.stop() == 0
    assert result.returncode == 0, result.stderr
    rates = {row[0]: float(row[1]) for row in
             (line.replace('"', "").split(",") for line in result.stdout.splitlines()[1:])}
    assert set(rates) == {"PING_INLINE", "PING_MBULK", "SET", "GET"}, result.stdout
    assert all(rate > 0 for rate in rates.values())
