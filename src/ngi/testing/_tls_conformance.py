"""The TLS part of the conformance suite (``ngi.testing.conformance``).

`TLSConformanceTests` runs the whole plaintext suite over TLS (its `tls`
fixture gives `listen` and `connect` their contexts) and adds what only
TLS has: the session, certificate failures, close_notify, ``start_tls``,
plaintext flow control over records, and the handshake's time bound.
Everything is observed through the interfaces, with bounded waits, so
``ngi.net`` runs it too; an implementation that needs real time for a
timeout gets short ones (``handshake_timeout=0.5``), which a simulated
network passes by advancing its clock (`ConformanceTests.pass_time`).

Certificates come from ``trustme`` (in the ``test`` extra), made once per
process by `Certificates.shared`.
"""
from __future__ import annotations

import datetime
import functools
import ssl
from typing import Any

import pytest

from ngi.interfaces import ConnectionClosed
from ngi.testing.conformance import (
    ConformanceTests, Echo, Recorder, Server, _pattern, assert_same_bytes)

__all__ = ["Certificates", "TLSConformanceTests", "Upgrading"]

SHORT = 0.5  # seconds: the handshake_timeout of the timeout tests


class Certificates:
    """A ``trustme`` CA and certificates, and ``ssl`` contexts using them.

    ``server_context()`` holds a certificate for ``localhost`` (or for
    ``names``; ``expired=True`` makes one that expired yesterday);
    ``client_context()`` trusts this CA only.
    """

    def __init__(self) -> None:
        import trustme  # the test extra; imported only when TLS is tested

        self.ca = trustme.CA()
        self._localhost = self.ca.issue_cert("localhost")

    @classmethod
    @functools.lru_cache(maxsize=None)
    def shared(cls) -> Certificates:
        """One set per process: making keys takes a while."""
        return cls()

    def server_context(self, *names: str,
                       expired: bool = False) -> ssl.SSLContext:
        if names or expired:
            now = datetime.datetime.now(datetime.timezone.utc)
            day = datetime.timedelta(days=1)
            cert = self.ca.issue_cert(
                *(names or ("localhost",)),
                not_before=now - 2 * day if expired else None,
                not_after=now - day if expired else None)
        else:
            cert = self._localhost
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def contexts(self) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        """(server context, client context), as the ``tls`` fixture gives."""
        return self.server_context(), self.client_context()


class Upgrading(Recorder):
    """A STARTTLS peer: on ``trigger`` (once) it writes ``reply``, calls
    ``start_tls`` and writes ``then``; records when its handshake ended."""

    def __init__(self, trigger: bytes, reply: bytes, then: bytes,
                 context: ssl.SSLContext, server_side: bool) -> None:
        super().__init__()
        self.trigger, self.reply, self.then = trigger, reply, then
        self.context, self.server_side = context, server_side
        self.handshakes: list[int] = []  # len(self.data) at each one
        self.upgraded = False

    def handle_input(self, connection: Any, data: bytes) -> None:
        super().handle_input(connection, data)
        if not self.upgraded and self.data.endswith(self.trigger):
            self.upgraded = True
            if self.reply:
                connection.write(self.reply)
            if self.server_side:
                connection.start_tls(self.context, server_side=True)
            else:
                connection.start_tls(self.context,
                                     server_hostname="localhost")
            connection.write(self.then)

    def handle_handshake(self, connection: Any) -> None:
        self.handshakes.append(len(self.data))


class TLSConformanceTests(ConformanceTests):
    """The suite over TLS, and the tests of what only TLS has."""

    @pytest.fixture
    def tls(self) -> Any:
        return Certificates.shared().contexts()

    @property
    def certificates(self) -> Certificates:
        return Certificates.shared()

    def plain_listen(self, server: Any, **options: Any) -> Any:
        return self.listen(server, ssl=None, **options)

    def assert_never_served(self, server: Server) -> None:
        self.settle()
        assert server.connections == []

    def check_served(self, listener: Any) -> None:
        """The listener still serves a TLS client: an echo comes back."""
        got, connection = self.connect(listener)
        connection.write(b"next client")
        self.wait_until(lambda: got.data == b"next client", "the echo")
        connection.close()

    # -- the session ----------------------------------------------------------

    def test_ssl_object_shows_the_session(self) -> None:
        server = Server(Echo)
        listener = self.listen(server)
        got, connection = self.connect(listener)
        server_side = self.server_side(server)
        client_ssl, server_ssl = connection.ssl_object, server_side.ssl_object
        assert isinstance(client_ssl, ssl.SSLObject)
        assert isinstance(server_ssl, ssl.SSLObject)
        # Read on the loop thread, whose objects they are: from another
        # thread, version() is None while session tickets are handled.
        version, server_version, cipher, server_cipher, certificate, \
            client_certificate = self.on_loop(lambda: (
                client_ssl.version(), server_ssl.version(),
                client_ssl.cipher(), server_ssl.cipher(),
                client_ssl.getpeercert(), server_ssl.getpeercert()))
        assert str(version).startswith("TLS")
        assert version == server_version
        assert cipher == server_cipher is not None
        assert not client_ssl.server_side and server_ssl.server_side
        assert client_ssl.server_hostname == "localhost"
        assert certificate is not None
        assert ("DNS", "localhost") in certificate["subjectAltName"]
        assert client_certificate is None  # no client certificate
        plain = Server(Echo)
        plain_got, plain_connection = self.connect(self.plain_listen(plain),
                                                   ssl=None)
        assert plain_connection.ssl_object is None
        assert self.server_side(plain).ssl_object is None
        connection.close()

    # -- certificate failures -------------------------------------------------

    def check_failed_connect(self, listener: Any, server: Server,
                             error: type, text: str, **options: Any) -> None:
        client = self.attempt(listener, **options)
        assert client.connections == []
        [reason] = client.failures
        assert isinstance(reason, error), reason
        assert text in str(reason)
        self.assert_never_served(server)
        self.check_served(listener)

    def test_an_unknown_ca_fails_the_connect(self) -> None:
        server = Server(Echo)
        listener = self.listen(server)
        stranger = ssl.create_default_context()  # trusts the system's CAs
        self.check_failed_connect(listener, server,
                                  ssl.SSLCertVerificationError,
                                  "certificate verify failed", ssl=stranger)

    def test_a_wrong_host_name_fails_the_connect(self) -> None:
        server = Server(Echo)
        listener = self.listen(server)
        self.check_failed_connect(listener, server,
                                  ssl.SSLCertVerificationError,
                                  "wrong.example",
                                  server_hostname="wrong.example")

    def test_an_expired_certificate_fails_the_connect(self) -> None:
        server = Server(Echo)
        expired = self.listen(
            server, ssl=self.certificates.server_context(expired=True))
        client = self.attempt(expired)
        [reason] = client.failures
        assert isinstance(reason, ssl.SSLCertVerificationError), reason
        assert "expired" in str(reason)
        self.assert_never_served(server)

    def test_plaintext_garbage_to_a_tls_listener_is_dropped(self) -> None:
        server = Server(Echo)
        listener = self.listen(server)
        got, connection = self.connect(listener, ssl=None)
        connection.write(b"GET / HTTP/1.0\r\n\r\n")
        self.wait_until(lambda: got.closes, "the listener to drop it")
        assert not connection
        self.assert_never_served(server)
        self.check_served(listener)

    def test_a_tls_client_to_a_plaintext_server_fails_the_connect(
            self) -> None:
        server = Server(Echo)  # echoes the ClientHello back
        listener = self.plain_listen(server)
        client = self.attempt(listener)
        [reason] = client.failures
        assert isinstance(reason, ssl.SSLError), reason

    # -- closing --------------------------------------------------------------

    def test_close_sends_close_notify(self) -> None:
        server = Server(Echo)
        listener = self.listen(server)
        got, connection = self.connect(listener)
        connection.write(b"last words")
        connection.close()
        self.wait_until(lambda: server.closes(), "the server's handle_close")
        assert server.closes() == ["closed"]
        assert server.data() == b"last words"
        got, connection = self.connect(listener)
        self.server_side(server, 1).write(b"bye")
        server.connections[1].close()
        self.wait_until(lambda: got.closes, "the client's handle_close")
        assert got.closes == ["closed"]
        assert got.data == b"bye"
        assert server.closes(1) == []

    def test_an_end_without_close_notify_is_a_truncation(self) -> None:
        server = Server()
        listener = self.listen(server)
        got, connection = self.connect(listener)
        connection.write(b"cut")
        self.wait_until(lambda: server.data() == b"cut", "the data")
        connection.abort()  # the TCP stream ends; no close_notify
        self.wait_until(lambda: server.closes(), "the server's handle_close")
        [reason] = server.closes()
        assert isinstance(reason, ssl.SSLEOFError), reason
        assert "close_notify" in str(reason)
        assert not server.connections[0]

    # -- start_tls ------------------------------------------------------------

    def test_start_tls_upgrades_both_ends_in_place(self) -> None:
        server_context, client_context = self.tls_pair
        server = Server(lambda: Upgrading(b"STARTTLS\n", b"GO\n", b"secret",
                                          server_context, server_side=True))
        client = Upgrading(b"GO\n", b"", b"after", client_context,
                           server_side=False)
        listener = self.plain_listen(server)
        got, connection = self.connect(listener, client, ssl=None)
        plaintext = connection.ssl_object
        assert plaintext is None
        connection.write(b"STARTTLS\n")
        self.wait_until(lambda: got.data == b"GO\nsecret", "the secret")
        self.wait_until(lambda: server.data() == b"STARTTLS\nafter",
                        "the data after start_tls")
        upgraded = server.connections[0]
        # Each side's handshake came between its plaintext and its TLS.
        assert got.handshakes == [len(b"GO\n")]
        assert server.handlers[0].handshakes == [len(b"STARTTLS\n")]
        version = self.on_loop(connection.ssl_object.version)  # its thread
        assert version.startswith("TLS")
        assert upgraded.ssl_object.server_side
        connection.close()
        self.wait_until(lambda: server.closes(), "the server's handle_close")
        assert server.closes() == ["closed"]  # with close_notify

    def test_start_tls_sends_what_was_written_before_in_plaintext(
            self) -> None:
        server = Server()  # never upgrades: sees what goes over the wire
        listener = self.plain_listen(server)
        got, connection = self.connect(listener, ssl=None)
        connection.write(b"before")
        connection.start_tls(self.tls_pair[1], server_hostname="localhost")
        connection.write(b"after")  # held: the handshake cannot complete
        self.wait_until(lambda: len(server.data() or b"") > 6,
                        "the ClientHello")
        wire = server.data() or b""
        assert wire.startswith(b"before\x16\x03")  # then a handshake record
        assert connection.write_buffer_size >= len(b"after")
        self.settle()
        assert b"after" not in (server.data() or b"")
        connection.abort()

    def test_start_tls_failure_closes_with_the_ssl_error(self) -> None:
        other = Certificates()  # a CA the client does not trust
        server = Server(lambda: Upgrading(b"STARTTLS\n", b"GO\n", b"",
                                          other.server_context(),
                                          server_side=True))
        client = Upgrading(b"GO\n", b"", b"", self.tls_pair[1],
                           server_side=False)
        listener = self.plain_listen(server)
        got, connection = self.connect(listener, client, ssl=None)
        connection.write(b"STARTTLS\n")
        self.wait_until(lambda: got.closes, "the client's handle_close")
        [reason] = got.closes
        assert isinstance(reason, ssl.SSLCertVerificationError), reason
        assert not connection
        assert got.handshakes == []
        self.wait_until(lambda: server.closes(), "the server's handle_close")
        assert server.handlers[0].handshakes == []
        str(server.closes()[0])

    def test_start_tls_is_refused_on_tls_and_closed_connections(self) -> None:
        server_context, client_context = self.tls_pair
        listener = self.listen(Server())
        got, connection = self.connect(listener)
        with pytest.raises(ValueError):
            connection.start_tls(client_context, server_hostname="localhost")
        plain = self.plain_listen(Server())
        got, connection = self.connect(plain, ssl=None)
        with pytest.raises(TypeError):
            connection.start_tls("not a context")
        with pytest.raises(TypeError):
            connection.start_tls(server_context, server_side="yes")
        connection.close()
        with pytest.raises(ConnectionClosed):
            connection.start_tls(client_context, server_hostname="localhost")

    # -- flow control ---------------------------------------------------------

    def test_write_buffer_size_counts_plaintext(self) -> None:
        server = Server()
        listener = self.listen(server)
        got, connection = self.connect(listener)
        self.server_side(server).pause_reading()
        data = self.fill(connection, lambda: got.flow)
        # Nothing is read: what is counted is plaintext, not the bigger
        # ciphertext (a kernel may have taken some of it).  Seen on the loop
        # thread: asyncio's TLS may resume on its own as the socket takes
        # its data, and counts only what it holds itself.
        flow, size = self.on_loop(
            lambda: (list(got.flow), connection.write_buffer_size))
        assert size <= len(data)
        if flow[-1] == "pause":
            assert size > 64 * 1024
        server.connections[0].resume_reading()
        self.wait_until(lambda: len(server.data() or b"") >= len(data),
                        "everything written")
        assert_same_bytes(server.data(), data)
        self.wait_until(lambda: connection.write_buffer_size == 0,
                        "an empty write buffer")
        connection.close()

    def test_pause_reading_holds_records_already_decrypted(self) -> None:
        class PausesAtOnce(Recorder):
            def handle_input(self, connection: Any, data: bytes) -> None:
                super().handle_input(connection, data)
                connection.pause_reading()

        server = Server(PausesAtOnce)
        listener = self.listen(server)
        got, connection = self.connect(listener)
        records = [_pattern(1000, seed) for seed in range(20)]
        for record in records:  # records that arrive together
            connection.write(record)
        self.wait_until(lambda: server.data(), "the first input")
        self.settle()
        handler = server.handlers[0]
        assert len(handler.inputs) == 1
        expected = b"".join(records)
        for _ in range(len(expected)):  # one input per resume
            if handler.data == expected:
                break
            count = len(handler.inputs)
            server.connections[0].resume_reading()
            self.wait_until(lambda: len(handler.inputs) > count, "more input")
        assert_same_bytes(handler.data, expected)
        connection.close()

    # -- the handshake's bound ------------------------------------------------

    def test_a_client_that_never_handshakes_is_dropped_in_time(self) -> None:
        server = Server(Echo)
        listener = self.listen(server, handshake_timeout=SHORT)
        silent, silent_connection = self.connect(listener, ssl=None)
        got, connection = self.connect(listener)  # nobody else waits
        connection.write(b"not slowed")
        self.wait_until(lambda: got.data == b"not slowed", "the echo")
        assert silent.closes == []
        # Not served, so not among the listener's connections either.
        assert len(list(listener.connections())) == 1
        self.pass_time(SHORT)
        self.wait_until(lambda: silent.closes, "the silent client dropped")
        assert not silent_connection
        assert len(server.connections) == 1
        assert connection
        connection.close()

    def test_a_server_that_never_handshakes_fails_the_connect(self) -> None:
        listener = self.plain_listen(Server())  # reads, never answers
        client = self.attempt(listener, handshake_timeout=SHORT)
        [reason] = client.failures
        assert isinstance(reason, TimeoutError), reason
        assert client.connections == []


