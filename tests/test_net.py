"""ngi.net over real sockets: what only a real network implementation has.

Behaviour every implementation shares is in test_shared.py; these tests are
about sockets, threads and the kernel: volume, concurrency, address
families, descriptors, and the threading modes.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time

import pytest

import ngi.net
from ngi.interfaces import ConnectionClosed, Timeout

from helpers import Echo, Recorder, wait_for


def has_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def impl():
    impl = ngi.net.Implementation(name="ngi-test-net")
    yield impl
    impl.wait(10)


def recv_all(sock, timeout=20.0):
    sock.settimeout(timeout)
    chunks = []
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


# -- volume and concurrency ---------------------------------------------------

def test_ten_mebibytes_echoed_intact(impl):
    payload = os.urandom(10 << 20)
    listener = impl.listener(None, Echo)
    client = Recorder()
    try:
        impl.connect(listener.address, client)
        assert client.settled.wait(5)
        client.connection.writelines(payload[i:i + 65536]
                                     for i in range(0, len(payload), 65536))
        wait_for(lambda: sum(map(len, client.inputs)) >= len(payload), 30, "echo")
        assert hashlib.sha256(client.data).digest() == \
            hashlib.sha256(payload).digest()
        client.connection.close()
    finally:
        listener.close()


def test_three_hundred_concurrent_clients(impl):
    listener = impl.listener(None, Echo)
    clients = [Recorder() for _ in range(300)]
    try:
        for c in clients:
            impl.connect(listener.address, c)
        wait_for(lambda: all(c.connection for c in clients), 20, "connects")
        for i, c in enumerate(clients):
            c.connection.write(b"client %d\n" % i)
        wait_for(lambda: all(c.data == b"client %d\n" % i
                             for i, c in enumerate(clients)), 20, "echoes")
        wait_for(lambda: len(listener.connections()) == 300, 5, "accounting")
        for c in clients:
            c.connection.close()
        wait_for(lambda: not listener.connections(), 10, "server closes")
    finally:
        listener.close()


def test_eight_threads_writing_to_one_connection(impl):
    listener = impl.listener(None, Echo)
    client = Recorder()
    per_thread, record = 500, 100
    try:
        impl.connect(listener.address, client)
        assert client.settled.wait(5)
        conn = client.connection

        def writer(n):
            for i in range(per_thread):
                conn.write((b"%d:%06d;" % (n, i)).ljust(record, b"."))

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        total = 8 * per_thread * record
        wait_for(lambda: sum(map(len, client.inputs)) >= total, 20, "echo")
        data = client.data
        assert len(data) == total
        records = [data[i:i + record] for i in range(0, total, record)]
        for n in range(8):  # never interleaved, in order per thread
            mine = [r for r in records if r.startswith(b"%d:" % n)]
            assert [int(r[2:8]) for r in mine] == list(range(per_thread))
        conn.close()
    finally:
        listener.close()


def test_writev_parts_stay_together_among_other_threads_writes(impl):
    """Each writev is one write: its parts never have another write
    between them, from whichever thread (and the loop's own) it comes."""
    listener = impl.listener(None, Echo)
    client = Recorder()
    per_thread, part = 300, 40
    try:
        impl.connect(listener.address, client)
        assert client.settled.wait(5)
        conn = client.connection

        def writer(n):
            for i in range(per_thread):
                head = (b"<%d:%06d|" % (n, i)).ljust(part, b".")
                body = memoryview(bytearray(b"%d" % n * part))  # bytes-like
                if i % 3 == 0:  # some from the loop thread, outside a handler
                    impl.call_from_thread(lambda h=head, b=bytes(body):
                                          conn.writev([h, b, b">"]))
                else:
                    conn.writev((head, body, b">"))

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        total = 4 * per_thread * (2 * part + 1)
        wait_for(lambda: sum(map(len, client.inputs)) >= total, 20, "echo")
        data = client.data
        assert len(data) == total
        units = data.split(b">")[:-1]
        assert len(units) == 4 * per_thread
        for unit in units:
            n = unit[1:2]
            assert unit[part:] == n * part, unit  # head and body adjacent
        for n in range(4):  # in order per thread, from the other threads
            mine = [int(u[3:9]) for u in units if u[1:2] == b"%d" % n]
            assert sorted(mine) == list(range(per_thread))
            assert [i for i in mine if i % 3] == [
                i for i in range(per_thread) if i % 3]
        conn.close()
    finally:
        listener.close()


def test_writev_in_a_handler_leaves_with_its_other_writes(impl):
    class Framing:
        def handle_input(self, connection, data):
            connection.write(b"[")
            connection.writev([b"%d:" % len(data), data])
            connection.write(b"]")

    listener = impl.listener(None, lambda c: c.set_handler(Framing()))
    try:
        with socket.create_connection(listener.address, timeout=10) as sock:
            sock.sendall(b"hello")
            reply = b""
            while not reply.endswith(b"]"):
                reply += sock.recv(100)
            assert reply == b"[5:hello]"
    finally:
        listener.close()


def test_writev_refuses_what_is_not_parts_and_a_closed_connection(impl):
    listener = impl.listener(None, Echo)
    client = Recorder()
    try:
        impl.connect(listener.address, client)
        assert client.settled.wait(5)
        conn = client.connection
        with pytest.raises(TypeError, match=r"writev\(\) expects an iterable"):
            conn.writev(b"one buffer")
        with pytest.raises(TypeError, match=r"writev\(\)"):
            conn.writev([b"ok", "text"])
        conn.writev([])  # nothing: fine
        conn.writev([b"", b"x"])
        wait_for(lambda: client.data == b"x", 5, "the one byte")
        conn.close()
        with pytest.raises(ConnectionClosed):
            conn.writev([b"late"])
    finally:
        listener.close()


def test_close_right_after_a_big_write_delivers_everything(impl):
    payload = os.urandom(16 << 20)

    def server(conn):
        conn.write(payload)
        conn.close()
        with pytest.raises(ConnectionClosed):
            conn.write(b"more")

    listener = impl.listener(None, server)
    try:
        with socket.create_connection(listener.address, timeout=10) as s:
            received = recv_all(s)
        assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
    finally:
        listener.close()


class Replier:
    """Answers any input with `payload`, recording its close."""

    def __init__(self, payload, close_after=False):
        self.payload = payload
        self.close_after = close_after
        self.closed = []
        self.queued_at_close = None
        self.write_after_close = None
        self.connection = None

    def __call__(self, connection):
        self.connection = connection
        connection.set_handler(self)

    def handle_input(self, connection, data):
        connection.write(self.payload)
        if self.close_after:
            connection.close()

    def handle_close(self, connection, reason):
        self.queued_at_close = connection.write_buffer_size
        try:
            connection.write(b"late")
        except ConnectionClosed as e:
            self.write_after_close = e
        self.closed.append(reason)


def small_window_client(address):
    """A TCP client with a small receive buffer: a large reply backs up."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    s.settimeout(10)
    s.connect(address)
    return s


def half_closing_client(address):
    """A client that sends its request, shuts down its sending side and
    reads only later, as `nc -N` or an HTTP/1.0 client may."""
    s = small_window_client(address)
    s.sendall(b"request")
    s.shutdown(socket.SHUT_WR)
    return s


def test_a_half_closed_peer_still_gets_what_was_written(impl):
    payload = os.urandom(16 << 20)
    replier = Replier(payload)
    listener = impl.listener(None, replier)
    try:
        with half_closing_client(listener.address) as s:
            wait_for(lambda: replier.closed, 10, "handle_close")
            assert replier.closed == ["closed"]
            # The case at hand: the peer's EOF came while data was queued.
            assert replier.queued_at_close > 0
            assert isinstance(replier.write_after_close, ConnectionClosed)
            received = recv_all(s)
        assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
        wait_for(lambda: not listener.connections(), 5, "the connection to go")
        assert replier.closed == ["closed"]  # once
    finally:
        listener.close()


def test_close_then_the_peers_eof_still_delivers_everything(impl):
    payload = os.urandom(16 << 20)
    replier = Replier(payload, close_after=True)
    listener = impl.listener(None, replier)
    try:
        with half_closing_client(listener.address) as s:
            time.sleep(0.2)  # let the EOF reach the closing connection
            received = recv_all(s)
        assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
        assert replier.closed == []  # the application closed it
    finally:
        listener.close()


def test_a_reply_survives_closing_while_the_peer_still_sends(impl):
    """A server that answers and closes while the client is still uploading
    (an HTTP 413, say): closing with input unread would make the kernel
    send a reset that destroys the reply on its way.  ngi lingers instead."""
    payload = os.urandom(4 << 20)
    replier = Replier(payload, close_after=True)
    listener = impl.listener(None, replier)
    try:
        with small_window_client(listener.address) as s:
            s.settimeout(0.2)
            sent, deadline = 0, time.monotonic() + 0.5
            try:  # an upload the server never reads
                while time.monotonic() < deadline and sent < 256 << 20:
                    sent += s.send(b"u" * 65536)
            except socket.timeout:
                pass
            received = recv_all(s)  # a reset would raise here
        assert sent > 65536  # more than the request: input left unread
        assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
    finally:
        listener.close()


def test_a_lingering_close_is_bounded_and_lets_the_listener_drain(impl):
    payload = os.urandom(4 << 20)
    replier = Replier(payload, close_after=True)
    listener = impl.listener(None, replier)
    drained = threading.Event()
    with small_window_client(listener.address) as s:
        s.sendall(b"request")
        wait_for(lambda: replier.connection is not None and not replier.connection,
                 5, "the reply and close")
        deadline = time.monotonic() + 10
        # Read until the whole reply is in the kernel's hands, then neither
        # read nor close: the server's close has to linger.
        while replier.connection.write_buffer_size and time.monotonic() < deadline:
            s.recv(4096)
        listener.close(lambda listener: drained.set())
        assert drained.wait(5)  # the application is done with it
        assert replier.connection.write_buffer_size == 0
        # The kernel still holds part of the reply, so the socket lingers,
        # but not for ever (Timeout otherwise).
        impl.wait(15)


def test_a_lingering_close_ends_once_the_peer_has_everything(impl):
    # A reply the kernel takes whole, but the peer's window does not: the
    # close lingers, and the acknowledgements that come once the peer reads
    # make no event on the server's socket.
    payload = os.urandom(256 << 10)
    replier = Replier(payload, close_after=True)
    listener = impl.listener(None, replier)
    with small_window_client(listener.address) as s:
        s.sendall(b"request")
        wait_for(lambda: replier.connection is not None and not replier.connection,
                 5, "the close")
        # Read it all (the peer acknowledges it) but keep the socket open:
        # no EOF will tell the server.
        assert recv_all(s) == payload
        listener.close()
        impl.wait(2.5)  # well before the 5 s bound (Timeout otherwise)


def test_writes_from_another_thread_then_close_flush(impl):
    conns = []
    listener = impl.listener(None, lambda c: conns.append(c))
    try:
        with socket.create_connection(listener.address, timeout=10) as s:
            wait_for(lambda: conns, 5, "accept")
            conn = conns[0]  # this (test) thread is not the loop thread
            for i in range(1000):
                conn.write(b"%04d" % i)
            conn.close()
            with pytest.raises(ConnectionClosed):
                conn.write(b"x")
            received = recv_all(s)
        assert received == b"".join(b"%04d" % i for i in range(1000))
    finally:
        listener.close()


# -- writelines ---------------------------------------------------------------

def test_writelines_pulls_lazily_as_the_socket_drains(impl):
    pulled = []
    chunk = b"x" * 65536

    def body():
        for i in range(400):  # 25 MiB: far beyond the socket buffers
            pulled.append(i)
            yield chunk

    conns = []
    listener = impl.listener(None, lambda c: (conns.append(c), c.writelines(body())))
    try:
        with socket.create_connection(listener.address, timeout=10) as s:
            wait_for(lambda: pulled, 5, "first pull")
            time.sleep(0.2)
            assert len(pulled) < 200  # the peer reads nothing yet
            total = 0
            while total < 400 * 65536:
                total += len(s.recv(1 << 20))
            assert len(pulled) == 400
            conns[0].close()
    finally:
        listener.close()


def test_writelines_iterator_error_reaches_handle_exception(impl):
    handler = Recorder()

    def body():
        yield b"ok"
        raise ValueError("bad body")

    def server(conn):
        conn.set_handler(handler)
        conn.writelines(body())
        conn.writelines([b"a", "not bytes", b"b"])

    listener = impl.listener(None, server)
    try:
        with socket.create_connection(listener.address, timeout=10) as s:
            wait_for(lambda: len(handler.exceptions) == 2, 5, "exceptions")
            assert isinstance(handler.exceptions[0], ValueError)
            assert isinstance(handler.exceptions[1], TypeError)
            assert "str" in str(handler.exceptions[1])
            s.settimeout(5)
            got = b""
            while got != b"oka":
                got += s.recv(10)
            assert handler.connection is None or True
            for c in listener.connections():
                c.close()
    finally:
        listener.close()


# -- addresses ----------------------------------------------------------------

def test_listener_on_a_free_port_and_peer_address(impl):
    accepted = []
    listener = impl.listener(None, lambda c: accepted.append(c))
    try:
        host, port = listener.address
        assert host == "127.0.0.1" and port > 0
        with socket.create_connection(listener.address, timeout=5) as s:
            wait_for(lambda: accepted, 5, "accept")
            conn = accepted[0]
            assert conn.peer_address == s.getsockname()
            assert conn.control is listener
            assert listener.connections() == [conn]
            conn.close()
    finally:
        listener.close()


def test_port_zero_is_resolved(impl):
    listener = impl.listener(("127.0.0.1", 0), Echo)
    try:
        assert listener.address[1] != 0
    finally:
        listener.close()


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 on this machine")
def test_ipv6_echo(impl):
    listener = impl.listener(("::1", 0), Echo)
    client = Recorder()
    try:
        assert listener.address[0] == "::1"
        impl.connect(listener.address, client)
        assert client.settled.wait(5) and client.connection
        client.connection.write(b"over six")
        wait_for(lambda: client.data == b"over six", 5, "echo")
        assert client.connection.peer_address[:2] == listener.address
        client.connection.close()
    finally:
        listener.close()


def test_unix_socket_echo_and_cleanup(impl, tmp_path):
    path = str(tmp_path / "echo.sock")
    listener = impl.listener(path, Echo)
    client = Recorder()
    try:
        assert listener.address == path and os.path.exists(path)
        impl.connect(path, client)
        assert client.settled.wait(5) and client.connection
        client.connection.write(b"local")
        wait_for(lambda: client.data == b"local", 5, "echo")
        client.connection.close()
    finally:
        listener.close()
    assert not os.path.exists(path)


def test_failed_bind_leaves_the_owners_unix_socket_alone(impl, tmp_path):
    path = str(tmp_path / "owned.sock")
    owner = impl.listener(path, Echo)
    try:
        before = set(os.listdir("/proc/self/fd"))
        with pytest.raises(OSError):
            impl.listener(path, Echo)
        # Nothing leaked.  The bind's probe of the live socket is accepted
        # by the owner, in this process: wait for that side to close.
        wait_for(lambda: not set(os.listdir("/proc/self/fd")) - before, 5,
                 "the probe's accepted side to close")
        assert os.path.exists(path)
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)  # the owner still answers
    finally:
        owner.close()


def test_stale_unix_socket_file_is_replaced(impl, tmp_path):
    path = str(tmp_path / "stale.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()  # leaves the file, with nobody listening
    listener = impl.listener(path, Echo)
    listener.close()
    assert not os.path.exists(path)


def test_busy_port_raises_in_the_call_without_leaking(impl):
    listener = impl.listener(None, Echo)
    try:
        before = set(os.listdir("/proc/self/fd"))
        with pytest.raises(OSError):
            impl.listener(listener.address, Echo)
        assert not set(os.listdir("/proc/self/fd")) - before
    finally:
        listener.close()


@pytest.mark.parametrize("address, error", [
    (42, ValueError), (("127.0.0.1",), ValueError), ([1, 2], ValueError),
    (("127.0.0.1", "80"), TypeError), ((1, 80), TypeError),
    (("127.0.0.1", 70000), ValueError), ("", ValueError),
])
def test_invalid_addresses_raise_in_the_call(impl, address, error):
    with pytest.raises(error, match="address"):
        impl.connect(address, Recorder())
    with pytest.raises(error, match="address"):
        impl.listener(address, Echo)
    with pytest.raises(error, match="address"):
        impl.udp(address, b"x")
    with pytest.raises(error, match="address"):
        impl.udp_listener(address, lambda a, d: None)


def test_connect_refused_is_a_readable_failed_connect(impl):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = s.getsockname()
    client = Recorder()
    impl.connect(address, client)
    assert client.settled.wait(5)
    assert client.connection is None
    assert "refused" in str(client.failures[0]).lower()


def test_connect_to_a_missing_unix_path_fails(impl, tmp_path):
    client = Recorder()
    impl.connect(str(tmp_path / "nobody.sock"), client)
    assert client.settled.wait(5)
    assert "No such file" in str(client.failures[0])


def test_connect_to_an_unknown_host_fails(impl):
    client = Recorder()
    impl.connect(("no-such-host.invalid", 80), client)
    assert client.settled.wait(20)
    assert client.failures


def test_handler_without_connect_methods_is_rejected(impl):
    with pytest.raises(TypeError, match="connected"):
        impl.connect(("127.0.0.1", 1), object())
    with pytest.raises(TypeError, match="callable"):
        impl.listener(None, object())


# -- UDP ----------------------------------------------------------------------

@pytest.mark.parametrize("family", ["ipv4", "ipv6", "unix"])
def test_udp_send_listen_and_truncate(impl, family, tmp_path):
    if family == "ipv6" and not has_ipv6():
        pytest.skip("no IPv6 on this machine")
    address = {"ipv4": ("127.0.0.1", 0), "ipv6": ("::1", 0),
               "unix": str(tmp_path / "dgram.sock")}[family]
    got = []
    udp = impl.udp_listener(address, lambda a, d: got.append(d), buffer_size=8)
    try:
        impl.udp(udp.address, b"short")
        impl.udp(udp.address, b"0123456789abcdef")
        wait_for(lambda: len(got) == 2, 5, "datagrams")
        assert got == [b"short", b"01234567"]
    finally:
        udp.close()
    if family == "unix":
        assert not os.path.exists(address)


def test_udp_handler_errors_are_logged_and_the_listener_goes_on(impl, caplog):
    got = []

    def handler(address, data):
        if data == b"bad":
            raise RuntimeError("bad datagram")
        got.append((address, data))

    udp = impl.udp_listener(("127.0.0.1", 0), handler)
    try:
        with caplog.at_level(logging.ERROR, logger="ngi"):
            impl.udp(udp.address, b"bad")
            impl.udp(udp.address, b"good")
            wait_for(lambda: got, 5, "datagram")
        assert got[0][1] == b"good"
        assert got[0][0][0] == "127.0.0.1"
        assert "bad datagram" in caplog.text
    finally:
        udp.close()


# -- errors -------------------------------------------------------------------

def test_handler_exception_is_logged_with_traceback_and_closes_only_its_connection(impl, caplog):
    class Fragile(Echo):
        def handle_input(self, connection, data):
            if data.startswith(b"die"):
                raise RuntimeError("handler died")
            connection.write(data)

    listener = impl.listener(None, Fragile)
    try:
        with caplog.at_level(logging.ERROR, logger="ngi"):
            with socket.create_connection(listener.address, timeout=5) as a, \
                    socket.create_connection(listener.address, timeout=5) as b:
                a.sendall(b"die")
                assert recv_all(a, 5) == b""  # closed by the implementation
                b.sendall(b"alive")
                assert b.recv(10) == b"alive"
        assert "handler died" in caplog.text
        assert "Traceback" in caplog.text
        assert caplog.records[0].name.startswith("ngi")
    finally:
        listener.close()


def test_failing_server_callable_closes_only_its_connection(impl, caplog):
    calls = []

    def server(conn):
        calls.append(conn)
        if len(calls) == 1:
            raise RuntimeError("server failed")
        Echo(conn)

    listener = impl.listener(None, server)
    try:
        with socket.create_connection(listener.address, timeout=5) as a:
            assert recv_all(a, 5) == b""
        with socket.create_connection(listener.address, timeout=5) as b:
            b.sendall(b"still here")
            assert b.recv(20) == b"still here"
        assert "server failed" in caplog.text
    finally:
        listener.close()


def test_peer_reset_is_a_handle_close(impl):
    handler = Recorder()
    listener = impl.listener(None, lambda c: c.set_handler(handler))
    try:
        s = socket.create_connection(listener.address, timeout=5)
        s.sendall(b"x")
        wait_for(lambda: handler.inputs, 5, "input")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST
        wait_for(lambda: handler.closes, 5, "handle_close")
        assert handler.closes[0]
    finally:
        listener.close()


def test_writing_into_a_reset_connection_is_a_handle_close(impl):
    handler = Recorder()
    conns = []

    def server(conn):
        conns.append(conn)
        conn.set_handler(handler)

    listener = impl.listener(None, server)
    try:
        s = socket.create_connection(listener.address, timeout=5)
        wait_for(lambda: conns, 5, "accept")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
        wait_for(lambda: handler.closes, 5, "handle_close")
        with pytest.raises(ConnectionClosed):
            conns[0].write(b"x" * 100000)
    finally:
        listener.close()


# -- listeners ----------------------------------------------------------------

def test_listener_close_with_handler_waits_for_connections(impl):
    accepted = []
    drained = threading.Event()
    listener = impl.listener(None, lambda c: (accepted.append(c), Echo(c)))
    with socket.create_connection(listener.address, timeout=5) as s:
        wait_for(lambda: accepted, 5, "accept")
        listener.close(lambda l: drained.set())
        time.sleep(0.05)
        assert not drained.is_set()
        with pytest.raises(OSError):  # no longer accepting
            socket.create_connection(listener.address, timeout=2).close()
        s.sendall(b"still open")
        assert s.recv(20) == b"still open"
    assert drained.wait(5)


def test_listener_close_stops_connections(impl):
    handler = Recorder()
    listener = impl.listener(None, lambda c: c.set_handler(handler))
    with socket.create_connection(listener.address, timeout=5) as s:
        wait_for(lambda: listener.connections(), 5, "accept")
        listener.close()
        wait_for(lambda: handler.closes, 5, "stopped")
        assert handler.closes == ["stopped"]
        assert recv_all(s, 5) == b""


# -- threading modes ----------------------------------------------------------

def test_loop_thread_starts_lazily_and_ends_when_idle():
    impl = ngi.net.Implementation(name="ngi-lazy")
    assert not [t for t in threading.enumerate() if t.name == "ngi-lazy"]
    listener = impl.listener(None, Echo)
    assert [t for t in threading.enumerate() if t.name == "ngi-lazy"]
    listener.close()
    impl.wait(5)
    assert not [t for t in threading.enumerate() if t.name == "ngi-lazy"]
    listener = impl.listener(None, Echo)  # and starts again
    assert [t for t in threading.enumerate() if t.name == "ngi-lazy"]
    listener.close()
    impl.wait(5)


def test_wait_times_out_while_busy(impl):
    listener = impl.listener(None, Echo)
    try:
        with pytest.raises(Timeout):
            impl.wait(0.05)
    finally:
        listener.close()


def test_non_daemon_implementation_thread():
    impl = ngi.net.Implementation(daemon=False, name="ngi-nondaemon")
    listener = impl.listener(None, Echo)
    [thread] = [t for t in threading.enumerate() if t.name == "ngi-nondaemon"]
    assert not thread.daemon
    listener.close()
    impl.wait(5)


def test_call_from_thread_runs_on_the_loop_thread(impl):
    where = []
    impl.call_from_thread(lambda: where.append(threading.current_thread().name))
    impl.wait(5)
    assert where == ["ngi-test-net"]


def test_call_later_keeps_the_loop_busy_until_it_fires(impl):
    fired = []
    start = time.monotonic()
    impl.call_later(0.05, fired.append, 1)
    impl.wait(5)
    assert fired == [1] and time.monotonic() - start >= 0.04


def test_inline_loop_runs_in_the_caller_and_propagates_errors():
    impl = ngi.net.Inline()
    where = []

    class Boom(Echo):
        def handle_input(self, connection, data):
            where.append(threading.current_thread())
            raise RuntimeError("propagated")

    listener = impl.listener(None, Boom)
    with socket.create_connection(listener.address, timeout=5) as s:
        s.sendall(b"x")
        with pytest.raises(RuntimeError, match="propagated"):
            impl.loop(5)
        assert where == [threading.current_thread()]
    with pytest.raises(Timeout):
        impl.loop(0.02)  # the listener is still open
    listener.close()
    impl.loop(5)


def test_main_is_an_inline_instance():
    assert isinstance(ngi.net.main, ngi.net.Inline)
    ngi.net.main.loop(1)  # idle: returns at once


def test_thready_listener_gives_each_connection_its_own_thread(impl):
    threads = []

    class Where(Echo):
        def handle_input(self, connection, data):
            threads.append(threading.current_thread().name)
            connection.write(data)

    listener = impl.listener(None, Where, thready=True)
    try:
        with socket.create_connection(listener.address, timeout=5) as a, \
                socket.create_connection(listener.address, timeout=5) as b:
            a.sendall(b"a")
            assert a.recv(1) == b"a"
            b.sendall(b"b")
            assert b.recv(1) == b"b"
            assert len(listener.connections()) == 2
            ident = {t.ident for t in threading.enumerate() if t.name.endswith("-conn")}
            assert len(ident) == 2
        wait_for(lambda: not listener.connections(), 5, "closes")
    finally:
        listener.close()
    wait_for(lambda: not [t for t in threading.enumerate() if t.name.endswith("-conn")],
             5, "connection threads end")


def test_module_level_functions_use_the_default_implementation():
    listener = ngi.net.listener(None, Echo)
    client = Recorder()
    try:
        ngi.net.connect(listener.address, client)
        assert client.settled.wait(5)
        client.connection.write(b"default")
        wait_for(lambda: client.data == b"default", 5, "echo")
        client.connection.close()
    finally:
        listener.close()
    ngi.net.wait(5)


def test_bound_address_is_logged(impl, caplog):
    with caplog.at_level(logging.INFO, logger="ngi"):
        listener = impl.listener(None, Echo)
    listener.close()
    assert repr(listener.address) in caplog.text


# -- flow control -------------------------------------------------------------

class Pushy:
    """A server handler that writes until told to pause, and counts crossings."""

    def __init__(self, chunk=1 << 20):
        self.chunk = b"p" * chunk
        self.pauses = 0
        self.resumes = 0
        self.connection = None
        self.sizes = []

    def __call__(self, connection):
        self.connection = connection
        connection.set_handler(self)
        self.written = 0
        while not self.pauses:  # bounded: the kernel takes a few MiB at most
            connection.write(self.chunk)
            self.written += len(self.chunk)

    def handle_input(self, connection, data):
        pass

    def handle_pause_writing(self, connection):
        self.pauses += 1
        self.sizes.append(connection.write_buffer_size)

    def handle_resume_writing(self, connection):
        self.resumes += 1
        self.sizes.append(connection.write_buffer_size)


def test_pause_and_resume_writing_fire_once_per_crossing(impl):
    server = Pushy()
    listener = impl.listener(None, server)
    try:
        with socket.create_connection(listener.address, timeout=10) as s:
            wait_for(lambda: server.pauses, 5, "pause")
            time.sleep(0.1)
            assert server.pauses == 1 and server.resumes == 0
            assert server.sizes[0] > 65536
            assert server.connection.write_buffer_size > 65536
            total = 0
            while not server.resumes:  # bounded by what the server wrote
                total += len(s.recv(1 << 20))
                assert total <= server.written
            assert server.resumes == 1 and server.pauses == 1
            assert server.sizes[1] <= 16384
            server.connection.close()
            assert total + len(recv_all(s)) == server.written
    finally:
        listener.close()


def test_set_write_limits_rules_and_errors(impl):
    conns = []
    listener = impl.listener(None, conns.append)
    try:
        with socket.create_connection(listener.address, timeout=5):
            wait_for(lambda: conns, 5, "accept")
            c = conns[0]
            assert c.get_write_limits() == (65536, 16384)
            c.set_write_limits(high=1000)
            assert c.get_write_limits() == (1000, 250)
            c.set_write_limits(low=100)
            assert c.get_write_limits() == (400, 100)
            c.set_write_limits(high=10, low=10)
            assert c.get_write_limits() == (10, 10)
            for bad in ({"high": -1}, {"low": -1}, {"high": 10, "low": 11},
                        {"high": "big"}):
                with pytest.raises(ValueError):
                    c.set_write_limits(**bad)
            c.close()
    finally:
        listener.close()


def test_writelines_holds_memory_to_about_the_high_mark(impl):
    pulled = []

    def body():
        for i in range(4096):  # 256 MiB if it were all pulled
            pulled.append(i)
            yield b"w" * 65536

    conns = []

    def server(conn):
        conns.append(conn)
        conn.writelines(body())

    listener = impl.listener(None, server)
    try:
        with socket.create_connection(listener.address, timeout=10) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            wait_for(lambda: pulled, 5, "pulling")
            time.sleep(0.3)  # the peer reads nothing: the kernel's buffers fill
            held = conns[0].write_buffer_size
            assert held <= 2 * 65536
            assert len(pulled) < 300  # kernel buffers plus about one mark
            conns[0].abort()
            assert not conns[0]
            wait_for(lambda: conns[0].write_buffer_size == 0, 5, "queue freed")
    finally:
        listener.close()


def test_abort_drops_the_queue_and_closes_at_once(impl):
    conns = []
    listener = impl.listener(None, conns.append)
    try:
        with socket.create_connection(listener.address, timeout=10) as s:
            wait_for(lambda: conns, 5, "accept")
            conn = conns[0]
            conn.write(b"a" * (32 << 20))  # far more than the kernel takes
            wait_for(lambda: 0 < conn.write_buffer_size < (32 << 20), 5, "queued")
            conn.abort()
            wait_for(lambda: conn.write_buffer_size == 0, 5, "queue dropped")
            assert not listener.connections()
            with pytest.raises(ConnectionClosed):
                conn.write(b"x")
            with pytest.raises((ConnectionResetError, OSError)):
                got = recv_all(s, 5)
                assert len(got) < (32 << 20)
                raise ConnectionResetError  # EOF without all the data is fine too
    finally:
        listener.close()


def test_pause_reading_stops_input_and_resume_delivers_it(impl):
    handler = Recorder()
    conns = []

    def server(conn):
        conns.append(conn)
        conn.set_handler(handler)
        conn.pause_reading()
        conn.pause_reading()  # idempotent

    listener = impl.listener(None, server)
    try:
        with socket.create_connection(listener.address, timeout=5) as s:
            wait_for(lambda: conns, 5, "accept")
            conn = conns[0]
            assert conn.reading is False
            s.setblocking(False)
            sent = 0
            for _ in range(10000):  # until the kernel's buffers are full
                try:
                    sent += s.send(b"r" * 65536)
                except BlockingIOError:
                    break
            else:
                raise AssertionError("the peer's writes never backed up")
            time.sleep(0.1)
            assert handler.inputs == []
            conn.resume_reading()
            conn.resume_reading()
            assert conn.reading is True
            wait_for(lambda: sum(map(len, handler.inputs)) == sent, 10, "delivery")
            conn.close()
    finally:
        listener.close()


def test_writes_in_transit_from_other_threads_count(impl):
    conns = []
    release = threading.Event()

    def server(conn):
        conns.append(conn)

    listener = impl.listener(None, server)
    try:
        with socket.create_connection(listener.address, timeout=5) as s:
            wait_for(lambda: conns, 5, "accept")
            conn = conns[0]
            # Block the loop thread so the write stays in transit.
            impl.call_from_thread(release.wait)
            conn.write(b"t" * 1000)
            assert conn.write_buffer_size == 1000
            release.set()
            wait_for(lambda: conn.write_buffer_size == 0, 5, "sent")
            assert s.recv(2000) == b"t" * 1000
            conn.close()
    finally:
        listener.close()


# -- sockets made elsewhere, forks, second close ----------------------------------

def test_listener_on_a_socket_from_bind(impl, tmp_path):
    sock = ngi.net.bind(None)
    address = sock.getsockname()
    listener = impl.listener(sock, Echo)
    try:
        assert listener.address == address
        assert sock.fileno() == -1  # the listener owns the descriptor now
        with socket.create_connection(listener.address, timeout=5) as s:
            assert echo_roundtrip(s, b"adopted") == b"adopted"
    finally:
        listener.close()
    path = str(tmp_path / "made.sock")
    unix = ngi.net.bind(path)
    listener = impl.listener(unix, Echo)
    listener.close()
    assert os.path.exists(path)  # the maker's file, not the listener's
    os.unlink(path)


def test_bind_with_reuse_port_lets_two_listeners_share_a_port(impl):
    first = impl.listener(None, Echo, reuse_port=True)
    second = impl.listener(first.address, Echo, reuse_port=True)
    try:
        assert second.address == first.address
    finally:
        first.close()
        second.close()
    with pytest.raises(ValueError, match="stream"):
        impl.listener(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), Echo)


def echo_roundtrip(sock, data):
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        got += sock.recv(100)
    return got


def test_a_second_close_stops_what_a_draining_close_left_open(impl):
    handler = Recorder()
    drained = threading.Event()
    listener = impl.listener(None, lambda c: c.set_handler(handler))
    with socket.create_connection(listener.address, timeout=5):
        wait_for(lambda: listener.connections(), 5, "accept")
        listener.close(lambda l: drained.set())
        time.sleep(0.05)
        assert not drained.is_set() and handler.closes == []
        listener.close()
        assert drained.wait(5)
        assert handler.closes == ["stopped"]


FORK_SCRIPT = r'''
import os, socket, sys
import ngi.net
listener = ngi.net.listener(None, lambda c: None)   # the parent's loop is busy
pid = os.fork()
if pid == 0:
    # The child gets loops of its own: its listener works, independently.
    class Echo:
        def __init__(self, c): c.set_handler(self)
        def handle_input(self, c, d): c.write(d)
    mine = ngi.net.listener(None, Echo)
    with socket.create_connection(mine.address, timeout=5) as s:
        s.sendall(b"child")
        ok = s.recv(10) == b"child"
    mine.close()
    ngi.net.wait(5)
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
listener.close()
ngi.net.wait(5)
print("child", os.waitstatus_to_exitcode(status))
'''


def test_a_forked_child_gets_loops_of_its_own():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "child 0", out.stderr[-2000:]


@pytest.mark.parametrize("family", ["ipv4", "ipv6", "unix"])
def test_udp_listener_replies_from_its_own_address(impl, family, tmp_path):
    if family == "ipv6" and not has_ipv6():
        pytest.skip("no IPv6 on this machine")
    address = {"ipv4": ("127.0.0.1", 0), "ipv6": ("::1", 0),
               "unix": str(tmp_path / "reply.sock")}[family]
    listeners = []
    udp = impl.udp_listener(address, lambda a, d: listeners[0].udp(a, d.upper()))
    listeners.append(udp)
    af = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6, "unix": socket.AF_UNIX}[family]
    client = socket.socket(af, socket.SOCK_DGRAM)
    try:
        client.bind(str(tmp_path / "client.sock") if family == "unix" else (address[0], 0))
        client.connect(udp.address)  # a connected socket drops other sources
        client.settimeout(5)
        client.send(b"ping")
        assert client.recv(100) == b"PING"
        with pytest.raises(TypeError, match="bytes-like"):
            udp.udp(client.getsockname(), "text")
    finally:
        client.close()
        udp.close()
    with pytest.raises(ValueError):
        udp.udp(("127.0.0.1", 9), b"closed")


def test_thready_connections_read_through_a_smaller_buffer(impl):
    sizes = []
    done = threading.Event()

    class Count(Echo):
        def handle_input(self, connection, data):
            sizes.append(len(data))
            if sum(sizes) >= 4 << 20:
                done.set()

    listener = impl.listener(None, Count, thready=True)
    try:
        with socket.create_connection(listener.address, timeout=5) as s:
            s.sendall(b"t" * (4 << 20))
            assert done.wait(10)
        assert max(sizes) <= 65536  # one buffer per connection: kept small
    finally:
        listener.close()
    wait_for(lambda: not [t for t in threading.enumerate() if t.name.endswith("-conn")],
             5, "connection threads end")


IMPORT_SCRIPT = """
import os
before = len(os.listdir("/proc/self/fd"))
import ngi.net
after = len(os.listdir("/proc/self/fd"))
print(after - before, ngi.net._default._core_loop, ngi.net.main._core_loop)
"""


def test_importing_ngi_net_allocates_no_loop():
    # The default implementations make their epoll, eventfd and 256 KiB
    # receive buffer on first use, not at import.
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.split() == ["0", "None", "None"], out.stderr[-2000:]
