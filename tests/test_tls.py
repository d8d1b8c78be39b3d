"""TLS on ngi.net: against clients and servers nobody here wrote, and what
only real sockets show (bulk data, a bad or silent peer, threads and
descriptors).

What both implementations share (handshake failures, close_notify,
start_tls, flow control) is in the conformance suite, run over TLS.
openssl and curl come from the system's packages (``.ci/run`` installs
them); the tests that need one skip, saying so, only where it is missing.
"""
from __future__ import annotations

import gc
import hashlib
import logging
import os
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest
import trustme

import ngi._core
import ngi.net

from helpers import Recorder, wait_for
from test_examples import ROOT
from test_serve import Served


def needs(tool, package):
    return pytest.mark.skipif(
        shutil.which(tool) is None,
        reason=f"{tool} is not installed (apt-get install {package}; "
               ".ci/run does it)")


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def certs(ca, tmp_path_factory):
    """PEM files: the CA's certificate, and a server certificate and key
    for localhost."""
    directory = tmp_path_factory.mktemp("certs")
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
    files = {"ca": directory / "ca.pem", "cert": directory / "cert.pem",
             "key": directory / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    return files


@pytest.fixture(scope="module")
def server_context(certs):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs["cert"], certs["key"])
    return context


@pytest.fixture(scope="module")
def client_context(certs):
    return ssl.create_default_context(cafile=str(certs["ca"]))


@pytest.fixture
def impl():
    impl = ngi.net.Implementation(name="ngi-tls")
    yield impl
    impl.wait(10)  # everything the test opened is closed by now


class EchoServer:
    """Echoes; records the connections it served."""

    def __init__(self):
        self.connections = []

    def __call__(self, connection):
        self.connections.append(connection)
        connection.set_handler(self)

    def handle_input(self, connection, data):
        connection.write(data)

    def handle_close(self, connection, reason):
        pass


def connect(impl, address, context, client=None, **options):
    client = Recorder() if client is None else client
    impl.connect(address, client, ssl=context, server_hostname="localhost",
                 **options)
    assert client.settled.wait(10), "no connect result"
    return client


def read_until(stream, marker, timeout=10):
    """Read a subprocess's stdout until ``marker``; what was read."""
    deadline = time.monotonic() + timeout
    data = b""
    poller = select.poll()  # (select() fails past descriptor 1023)
    poller.register(stream.fileno(), select.POLLIN)
    while marker not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} in {data[-500:]!r}"
        if poller.poll(left * 1000):
            chunk = os.read(stream.fileno(), 65536)
            assert chunk, f"EOF before {marker!r}; got {data[-500:]!r}"
            data += chunk
    return data


# -- real clients and servers ---------------------------------------------------

@needs("openssl", "openssl")
def test_openssl_s_client_talks_to_ngi_echo(certs):
    served = Served(["echo", "--bind", "127.0.0.1:0", "--certfile",
                     str(certs["cert"]), "--keyfile", str(certs["key"])])
    host, port = served.address
    client = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"{host}:{port}", "-CAfile",
         str(certs["ca"]), "-servername", "localhost", "-verify_return_error",
         "-quiet"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL)
    try:
        client.stdin.write(b"hello over TLS\n")
        client.stdin.flush()
        assert b"hello over TLS\n" in read_until(client.stdout, b"TLS\n")
    finally:
        client.kill()
        client.wait(10)
        assert served.stop() == 0


class VersionRecorder(Recorder):
    """Notes the TLS version in ``connected``, on the loop thread: the
    ``SSLObject`` is the loop's, and read from another thread it can be
    caught handling the server's session tickets (version() is then None)."""

    def connected(self, connection):
        self.version = connection.ssl_object.version()
        super().connected(connection)


@needs("openssl", "openssl")
def test_ngi_client_talks_to_openssl_s_server(impl, certs, client_context):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert",
         str(certs["cert"]), "-key", str(certs["key"]), "-rev"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    try:
        read_until(server.stdout, b"ACCEPT")
        client = connect(impl, ("127.0.0.1", port), client_context,
                         client=VersionRecorder())
        assert not client.failures, client.failures
        conn = client.connection
        assert client.version in ("TLSv1.2", "TLSv1.3")
        conn.write(b"hello\n")  # -rev: each line comes back reversed
        wait_for(lambda: b"olleh" in b"".join(client.inputs), 10,
                 lambda: f"the reversed line, got {client.inputs}")
        conn.close()
    finally:
        server.kill()
        server.wait(10)


@needs("curl", "curl")
def test_curl_gets_a_page_from_the_http_example_over_tls(certs):
    served = Served(["serve", "examples.httpserver:server", "--bind",
                     "127.0.0.1:0", "--grace", "1", "--certfile",
                     str(certs["cert"]), "--keyfile", str(certs["key"])],
                    cwd=ROOT)
    host, port = served.address
    try:
        result = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--cacert", str(certs["ca"]),
             "--resolve", f"localhost:{port}:{host}",
             f"https://localhost:{port}/", f"https://localhost:{port}/"],
            capture_output=True, timeout=20)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count(b"Hello") == 2, result.stdout  # keep-alive
    finally:
        assert served.stop() == 0


def test_ngi_echo_with_cafile_requires_a_client_certificate(ca, certs, tmp_path):
    served = Served(["echo", "--bind", "127.0.0.1:0", "--certfile",
                     str(certs["cert"]), "--keyfile", str(certs["key"]),
                     "--cafile", str(certs["ca"])])
    try:
        for with_certificate in (False, True):
            context = ssl.create_default_context(cafile=str(certs["ca"]))
            if with_certificate:
                ca.issue_cert("client@example.com").configure_cert(context)
            with socket.create_connection(served.address, timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname="localhost") as tls:
                    if with_certificate:
                        tls.sendall(b"with a certificate")
                        assert tls.recv(100) == b"with a certificate"
                    else:  # TLS 1.3: the server refuses after the handshake
                        with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
                            tls.sendall(b"without")
                            tls.recv(100)
    finally:
        assert served.stop() == 0


# -- what only real sockets show --------------------------------------------------

def test_64_mib_through_tls_arrive_intact(impl, server_context, client_context):
    size = 64 << 20
    listener = impl.listener(("127.0.0.1", 0), EchoServer(), ssl=server_context)
    client = connect(impl, listener.address, client_context)
    digest = hashlib.sha256()
    received = [0]
    done = threading.Event()

    def chunks():  # pulled lazily: memory stays near the write marks
        block = bytes(range(256)) * 1024
        for i in range(size // len(block)):
            piece = block[i % 256:] + block[:i % 256]
            digest.update(piece)
            yield piece

    echoed = hashlib.sha256()

    class Counter(Recorder):
        def handle_input(self, connection, data):
            echoed.update(data)
            received[0] += len(data)
            if received[0] >= size:
                done.set()

    client.connection.set_handler(Counter())
    client.connection.writelines(chunks())
    assert done.wait(60), f"{received[0]} of {size} bytes came back"
    assert received[0] == size
    assert echoed.hexdigest() == digest.hexdigest()
    client.connection.close()
    listener.close()


def test_a_failed_handshake_is_logged_at_info_under_ngi_net_server(
        impl, server_context, caplog):
    # (That it is dropped and the listener serves on is the conformance
    # suite's; the logger is ngi.net's own.)
    server = EchoServer()
    listener = impl.listener(("127.0.0.1", 0), server, ssl=server_context)
    with caplog.at_level(logging.INFO, logger="ngi"):
        with socket.create_connection(listener.address, timeout=10) as raw:
            port = raw.getsockname()[1]
            raw.sendall(b"GET / HTTP/1.0\r\n\r\n" * 10)
            while raw.recv(4096):  # an alert, then the close
                pass
        wait_for(lambda: "TLS handshake with" in caplog.text, 10,
                 "the failed handshake's log record")
    [record] = [r for r in caplog.records if "TLS handshake" in r.message]
    assert record.name == "ngi.net.server" and record.levelno == logging.INFO
    assert str(port) in record.message  # the peer's address
    assert "WRONG_VERSION_NUMBER" in record.message or "http" in record.message.lower()
    assert not server.connections
    listener.close()


def test_a_thready_tls_listener_serves_each_connection_on_its_thread(
        impl, server_context, client_context):
    threads = []

    class Server(EchoServer):
        def __call__(self, connection):
            threads.append(threading.current_thread().name)
            super().__call__(connection)

    listener = impl.listener(("127.0.0.1", 0), Server(), thready=True,
                             ssl=server_context)
    clients = [connect(impl, listener.address, client_context) for _ in range(3)]
    for i, client in enumerate(clients):
        client.connection.write(b"hi %d" % i)
    for i, client in enumerate(clients):
        wait_for(lambda: b"".join(client.inputs) == b"hi %d" % i, 10, "echo")
        client.connection.close()
    assert len(threads) == 3 and all(t.endswith("-conn") for t in threads)
    listener.close()


def test_every_descriptor_is_released(impl, ca, server_context, client_context):
    def open_fds():
        gc.collect()  # loops of earlier tests' implementations, in cycles
        return len(os.listdir("/proc/self/fd"))

    untrusting = ssl.create_default_context(cafile=None)
    untrusting.load_verify_locations(cadata=trustme.CA().cert_pem.bytes().decode())
    listener = impl.listener(("127.0.0.1", 0), EchoServer(), ssl=server_context)
    connect(impl, listener.address, client_context).connection.close()
    listener.close()
    impl.wait(10)
    before = open_fds()
    listener = impl.listener(("127.0.0.1", 0), EchoServer(), ssl=server_context)
    for _ in range(5):
        good = connect(impl, listener.address, client_context)
        good.connection.write(b"x")
        wait_for(lambda: good.inputs, 10, "the echo")
        good.connection.close()
        bad = connect(impl, listener.address, untrusting)
        assert isinstance(bad.failures[0], ssl.SSLCertVerificationError)
    listener.close()
    impl.wait(10)
    assert open_fds() == before


def test_a_receive_buffer_smaller_than_a_record_still_delivers_everything(
        server_context, client_context):
    # Records are decrypted into the loop's buffer; one smaller than a
    # record (16 KiB) takes a record in pieces.
    class Small(ngi.net.Implementation):
        _bufsize = 1000

    impl = Small(name="ngi-small")
    data = bytes(range(256)) * 400  # 100 KiB: records of 16 KiB
    listener = impl.listener(("127.0.0.1", 0), EchoServer(), ssl=server_context)
    client = connect(impl, listener.address, client_context)
    client.connection.write(data)
    wait_for(lambda: len(b"".join(client.inputs)) >= len(data), 10,
             lambda: f"the echo, {len(b''.join(client.inputs))} bytes so far")
    assert b"".join(client.inputs) == data
    assert max(map(len, client.inputs)) <= 1000
    client.connection.close()
    listener.close()
    impl.wait(10)


# -- the data path: direct OpenSSL calls, or the ssl module's methods -------------

def _libssl_is_mapped():
    with open("/proc/self/maps") as maps:
        return "libssl" in maps.read()


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc")
def test_an_interpreter_whose_ssl_module_links_libssl_gets_direct_calls(
        impl, server_context, client_context):
    # Where _ssl links libssl as a shared library, the core must find it
    # there; where it cannot, it falls back quietly, and only speed shows.
    if not _libssl_is_mapped():
        pytest.skip("this interpreter's _ssl carries its OpenSSL inside")
    assert ngi._core.tls_direct_calls()
    server = EchoServer()
    listener = impl.listener(("127.0.0.1", 0), server, ssl=server_context)
    client = connect(impl, listener.address, client_context)
    assert client.connection._tls_direct is True
    wait_for(lambda: server.connections, 10, "the server's connection")
    assert server.connections[0]._tls_direct is True
    client.connection.close()
    listener.close()


@pytest.fixture(params=["direct", "ssl module"])
def data_path(request):
    """Run the test once over each data path; restore the setting after."""
    was = ngi._core.tls_direct_calls()
    if request.param == "direct" and not was:
        pytest.skip("no direct OpenSSL calls with this interpreter")
    ngi._core.tls_direct_calls(request.param == "direct")
    yield request.param
    ngi._core.tls_direct_calls(was)


class HandMadeClient:
    """A TLS client over a blocking socket and two memory BIOs, so that a
    test can send records the ssl module would never send."""

    def __init__(self, address, context):
        self.sock = socket.create_connection(address, timeout=10)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing,
                                    server_hostname="localhost")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                self.incoming.write(self.sock.recv(65536))
        self.sock.sendall(self.outgoing.read())

    def record(self, data):
        """The ciphertext of `data`, not sent."""
        self.tls.write(data)
        return self.outgoing.read()

    def echo(self, data):
        self.sock.sendall(self.record(data))
        got = b""
        while len(got) < len(data):
            self.incoming.write(self.sock.recv(65536))
            try:
                while True:  # every whole record that came
                    got += self.tls.read(65536)
            except ssl.SSLWantReadError:
                pass
        return got


def test_a_corrupted_record_closes_the_connection_with_the_ssl_error(
        data_path, impl, server_context, client_context):
    # What OpenSSL says is what the ssl module would have raised, either way.
    closes = []

    class Server(EchoServer):
        def handle_close(self, connection, reason):
            closes.append((reason, connection._tls_direct))

    listener = impl.listener(("127.0.0.1", 0), Server(), ssl=server_context)
    client = HandMadeClient(listener.address, client_context)
    assert client.echo(b"intact") == b"intact"
    record = bytearray(client.record(b"x" * 100))
    record[-1] ^= 1  # the authentication tag
    client.sock.sendall(record)
    wait_for(lambda: closes, 10, "the server's handle_close")
    [(reason, direct)] = closes
    assert direct is (data_path == "direct")
    assert type(reason) is ssl.SSLError, reason
    assert reason.reason == "DECRYPTION_FAILED_OR_BAD_RECORD_MAC", reason
    assert "decryption failed or bad record mac" in str(reason)
    client.sock.close()
    listener.close()


def test_a_tcp_close_without_close_notify_is_truncated_either_way(
        data_path, impl, server_context, client_context):
    closes = []

    class Server(EchoServer):
        def handle_close(self, connection, reason):
            closes.append(reason)

    listener = impl.listener(("127.0.0.1", 0), Server(), ssl=server_context)
    client = HandMadeClient(listener.address, client_context)
    assert client.echo(b"intact") == b"intact"
    client.sock.close()
    wait_for(lambda: closes, 10, "the server's handle_close")
    [reason] = closes
    assert isinstance(reason, ssl.SSLEOFError), reason
    assert "close_notify" in str(reason)
    listener.close()


def test_large_records_decrypt_with_other_threads_running(
        data_path, impl, server_context, client_context):
    # Records of 16 KiB are decrypted and encrypted with the GIL released
    # on the direct path: a busy Python thread meanwhile changes nothing.
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            pass

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        listener = impl.listener(("127.0.0.1", 0), EchoServer(), ssl=server_context)
        client = HandMadeClient(listener.address, client_context)
        data = os.urandom(1 << 20)
        assert client.echo(data) == data
        client.sock.close()
        listener.close()
    finally:
        stop.set()
        spinner.join()
