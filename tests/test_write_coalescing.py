"""Write coalescing in ngi.net's core: the writes one ``handle_input`` call
makes leave together, in one system call, once it returns.

The system calls themselves are counted with strace (from the system's
packages; ``.ci/run`` installs it); what the application sees (order,
counts, close, the write marks) needs no tool.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import threading

import pytest
import trustme

import ngi.net

from helpers import Recorder, wait_for

SERVER = textwrap.dedent('''
    import ssl, sys
    import ngi.net

    class ThreeWrites:
        """Answers each request with a header, the body and a trailer."""
        def handle_input(self, connection, data):
            connection.write(b"<")
            connection.write(data)
            connection.write(b">")

    context = None
    if len(sys.argv) > 1:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[1], sys.argv[2])
    impl = ngi.net.Inline()
    listener = impl.listener(("127.0.0.1", 0),
                             lambda c: c.set_handler(ThreeWrites()), ssl=context)
    print(listener.address[1], flush=True)
    impl.loop()
''')

REQUESTS = 40


def count_sends(tmp_path, tls):
    """Run SERVER under strace, make REQUESTS ping-pongs, count the
    server's sending system calls."""
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    args, client_context = [], None
    if tls:
        ca = trustme.CA()
        cert = ca.issue_cert("localhost")
        cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
        cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
        args = [str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")]
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
    trace = tmp_path / "trace"
    server = subprocess.Popen(
        ["strace", "-f", "-qq", "-e", "trace=sendto,sendmsg,write",
         "-o", str(trace), sys.executable, str(script), *args],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
        start_new_session=True)  # a group: strace's tracee goes with it
    try:
        port = int(server.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            sock = raw
            if tls:
                sock = client_context.wrap_socket(raw, server_hostname="localhost")
            for i in range(REQUESTS):
                request = b"request %d" % i
                expected = b"<" + request + b">"
                sock.sendall(request)
                reply = b""
                while len(reply) < len(expected):
                    reply += sock.recv(100)
                assert reply == expected
            # Count while the connection is still open (no close sends).
            lines_before_close = len(trace.read_text().splitlines())
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # killing strace alone leaves the server
        server.wait(10)
    sends = [line for line in trace.read_text().splitlines()[:lines_before_close]
             if re.search(r"\b(sendto|sendmsg)\(", line)]
    return len(sends)


needs_strace = pytest.mark.skipif(
    shutil.which("strace") is None,
    reason="strace is not installed (apt-get install strace; .ci/run does it)")


@needs_strace
def test_three_writes_of_one_call_leave_in_one_send(tmp_path):
    sends = count_sends(tmp_path, tls=False)
    assert sends == REQUESTS  # not 3 per request


@needs_strace
def test_over_tls_they_are_encrypted_together_and_leave_in_one_send(tmp_path):
    sends = count_sends(tmp_path, tls=True)
    # The handshake's flights and the session tickets take a few more.
    assert REQUESTS <= sends <= REQUESTS + 4, sends


# What the application sees ----------------------------------------------------

@pytest.fixture
def impl():
    impl = ngi.net.Implementation(name="ngi-coalescing")
    yield impl
    impl.wait(10)


def serve(impl, handler_class):
    handlers = []

    def server(connection):
        handler = handler_class()
        handlers.append(handler)
        connection.set_handler(handler)

    listener = impl.listener(("127.0.0.1", 0), server)
    client = Recorder()
    impl.connect(listener.address, client)
    assert client.settled.wait(10)
    return listener, client, handlers


def test_writes_and_writelines_of_one_call_keep_their_order(impl):
    class Mixed:
        def handle_input(self, connection, data):
            connection.write(b"a")
            connection.writelines(iter([b"b", b"c"]))
            connection.write(b"d")
            connection.writelines([b"e"])

    listener, client, _ = serve(impl, Mixed)
    client.connection.write(b"go")
    wait_for(lambda: b"".join(client.inputs) == b"abcde", 10,
             lambda: f"abcde, got {b''.join(client.inputs)!r}")
    client.connection.close()
    listener.close()


@pytest.mark.parametrize("sizes", [
    (16, 1006, 2),           # joined into one buffer before the send
    (16, 20_000, 2),         # past the join limit: one sendmsg of the parts
    tuple(range(1, 80)),     # more parts than one sendmsg takes
])
def test_the_writes_of_a_call_arrive_whole_and_in_order(impl, sizes):
    pieces = [bytes([65 + i % 26]) * size for i, size in enumerate(sizes)]

    class Pieces:
        def handle_input(self, connection, data):
            for piece in pieces:
                connection.write(piece)

    listener, client, _ = serve(impl, Pieces)
    client.connection.write(b"go")
    expected = b"".join(pieces)
    wait_for(lambda: len(b"".join(client.inputs)) >= len(expected), 10,
             "the reply")
    assert b"".join(client.inputs) == expected
    client.connection.close()
    listener.close()


def test_writes_then_close_in_one_call_all_arrive_before_the_end(impl):
    class WriteAndClose:
        def handle_input(self, connection, data):
            connection.write(b"one ")
            connection.write(b"two")
            connection.close()

    listener, client, _ = serve(impl, WriteAndClose)
    client.connection.write(b"go")
    wait_for(lambda: client.closes, 10, "the server's close")
    assert b"".join(client.inputs) == b"one two"
    assert client.closes == ["closed"]
    listener.close()


def test_what_a_call_wrote_counts_in_write_buffer_size_meanwhile(impl):
    seen = []

    class Counting:
        def handle_input(self, connection, data):
            connection.write(b"x" * 10)
            connection.write(b"y" * 5)
            seen.append(connection.write_buffer_size)

    listener, client, _ = serve(impl, Counting)
    client.connection.write(b"go")
    wait_for(lambda: len(b"".join(client.inputs)) == 15, 10, "the reply")
    assert seen == [15]
    client.connection.close()
    listener.close()


def test_a_call_writing_past_the_high_mark_is_paused_while_it_writes(impl):
    stopped = threading.Event()

    class Flood:
        def handle_input(self, connection, data):
            self.paused = False
            self.written = 0
            for _ in range(1000):  # 64 MiB at most; the peer does not read
                if self.paused:
                    break
                connection.write(b"z" * 65536)
                self.written += 65536
            stopped.set()

        def handle_pause_writing(self, connection):
            self.paused = True

        def handle_resume_writing(self, connection):
            pass

    listener, client, handlers = serve(impl, Flood)
    client.connection.pause_reading()
    client.connection.write(b"go")
    assert stopped.wait(10)
    assert handlers[0].paused
    assert handlers[0].written < 1000 * 65536  # told during the call
    client.connection.abort()
    listener.close()
