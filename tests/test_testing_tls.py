"""TLS in ngi.testing: what is particular to running it in memory.

The behaviour every implementation shares is in the conformance suite
(TLSConformanceTests, run by test_conformance.py); here are the exact
figures and the simulated network's part: ciphertext on the wire, faults
applied to it, the virtual clock bounding handshakes and shutdowns, the
log of failed handshakes, argument errors, and scripted connections.
"""
from __future__ import annotations

import itertools
import logging
import ssl

import pytest

import ngi.testing
from ngi.interfaces import ConnectionClosed
from ngi.testing._tls_conformance import Upgrading
from ngi.testing.conformance import Certificates

from helpers import Recorder

_names = itertools.count()


def address():
    return ("test_testing_tls", next(_names))


@pytest.fixture(scope="module")
def certs():
    return Certificates.shared()


@pytest.fixture
def server_context(certs):
    return certs.server_context()


@pytest.fixture
def client_context(certs):
    return certs.client_context()


class Served:
    """A server callable recording its connections, with Recorder handlers."""

    def __init__(self):
        self.connections = []
        self.handlers = []

    def __call__(self, connection):
        handler = Recorder()
        connection.set_handler(handler)
        self.connections.append(connection)
        self.handlers.append(handler)


class Wire(ngi.testing.Network):
    """A network that keeps a copy of every piece it carries."""

    def __init__(self, **options):
        super().__init__(**options)
        self.carried = []

    def _pieces(self, data):
        pieces = super()._pieces(data)
        self.carried.extend(pieces)
        return pieces


def tls_pair(network, server_context, client_context, **options):
    """(served, client recorder, client connection) over TLS on ``network``."""
    served = Served()
    where = address()
    network.listener(where, served, ssl=server_context)
    client = Recorder()
    network.connect(where, client, ssl=client_context,
                    server_hostname="localhost", **options)
    network.run_until_idle()
    assert client.connection is not None, client.events
    return served, client, client.connection


# What crosses the network --------------------------------------------------

def test_the_network_carries_ciphertext(server_context, client_context):
    network = Wire()
    served, client, connection = tls_pair(network, server_context,
                                          client_context)
    connection.write(b"a secret line\n")
    served.connections[0].write(b"a secret answer\n")
    assert served.handlers[0].inputs == [b"a secret line\n"]
    assert client.inputs == [b"a secret answer\n"]
    wire = b"".join(network.carried)
    assert b"secret" not in wire
    assert wire[:3] == b"\x16\x03\x01"  # the ClientHello's record


def test_one_byte_chunks_of_ciphertext(server_context, client_context):
    network = ngi.testing.Network(chunk_size=1)
    served, client, connection = tls_pair(network, server_context,
                                          client_context)
    connection.write(b"x" * 1000)
    assert served.handlers[0].inputs == [b"x" * 1000]  # one record, whole


@pytest.mark.parametrize("chunk_size", [1, 3, 17])
def test_answers_in_the_middle_of_a_send_do_not_overtake_it(
        chunk_size, server_context, client_context):
    # Delivered at once, each piece of the client's Finished lets the server
    # answer, and the client's pending write go, before the next piece is
    # sent: each end's bytes must still leave in the order they were made.
    network = ngi.testing.Network(chunk_size=chunk_size)
    server = Upgrading(b"STARTTLS\n", b"GO\n", b"secret", server_context,
                       server_side=True)
    client = Upgrading(b"GO\n", b"", b"after", client_context,
                       server_side=False)
    connection = ngi.testing.Connection(server, network=network)
    connection.set_handler(client)
    connection.write(b"STARTTLS\n")
    assert client.data == b"GO\nsecret"
    assert server.data == b"STARTTLS\nafter"
    assert client.handshakes == [3] and server.handshakes == [9]


def test_a_corrupted_record_closes_with_the_ssl_error(server_context,
                                                      client_context):
    class FlipsAByte(ngi.testing.Network):
        armed = False

        def _pieces(self, data):
            if self.armed and len(data) > 30:
                self.armed = False
                data = data[:-1] + bytes([data[-1] ^ 1])
            return super()._pieces(data)

    network = FlipsAByte()
    served, client, connection = tls_pair(network, server_context,
                                          client_context)
    network.armed = True
    connection.write(b"to be corrupted on the way")
    [reason] = served.handlers[0].closes
    assert isinstance(reason, ssl.SSLError), reason
    assert served.handlers[0].inputs == []
    assert not served.connections[0]
    [alert] = client.closes  # the server's alert says why
    assert isinstance(alert, ssl.SSLError) and "bad record mac" in str(alert)
    assert not connection


def test_reset_and_abort_over_tls(server_context, client_context):
    network = ngi.testing.Network()
    served, client, connection = tls_pair(network, server_context,
                                          client_context)
    connection.reset()
    [reason] = served.handlers[0].closes
    assert isinstance(reason, ConnectionResetError)
    served, client, connection = tls_pair(network, server_context,
                                          client_context)
    served.connections[0].abort()
    [reason] = client.closes
    assert isinstance(reason, ssl.SSLEOFError)
    assert str(reason).endswith("what it sent may have been cut short")


def test_tls_1_2_closes_with_close_notify(server_context, certs):
    client_context = certs.client_context()
    client_context.maximum_version = ssl.TLSVersion.TLSv1_2
    network = ngi.testing.Network(chunk_size="random", deferred=True)
    served, client, connection = tls_pair(network, server_context,
                                          client_context)
    assert connection.ssl_object.version() == "TLSv1.2"
    connection.write(b"ping")
    network.run_until_idle()
    served.connections[0].write(b"pong")
    served.connections[0].close()
    network.run_until_idle()
    assert client.inputs and b"".join(client.inputs) == b"pong"
    assert client.closes == ["closed"]
    assert served.handlers[0].inputs and served.handlers[0].closes == []


# Exact flow-control figures: plaintext -------------------------------------

def test_write_buffer_size_is_the_plaintext_not_yet_handed_over(
        server_context, client_context):
    network = ngi.testing.Network()
    served, client, connection = tls_pair(network, server_context,
                                          client_context)
    served.connections[0].pause_reading()
    connection.write(b"0123456789")
    assert connection.write_buffer_size == 10
    connection.write(b"x" * 50_000)  # several records in one write
    assert connection.write_buffer_size == 50_010
    served.connections[0].resume_reading()
    assert connection.write_buffer_size == 0
    assert b"".join(served.handlers[0].inputs) == b"0123456789" + b"x" * 50_000


def test_pause_and_resume_marks_apply_to_plaintext(server_context,
                                                   client_context):
    class Flow(Recorder):
        def __init__(self):
            super().__init__()
            self.flow = []

        def handle_pause_writing(self, connection):
            self.flow.append(connection.write_buffer_size)

        def handle_resume_writing(self, connection):
            self.flow.append(connection.write_buffer_size)

    served = Served()
    network = ngi.testing.Network()
    network.listener("s", served, ssl=server_context)
    flow = Flow()
    network.connect("s", flow, ssl=client_context,
                    server_hostname="localhost")
    connection = flow.connection
    connection.set_write_limits(high=1000, low=100)
    served.connections[0].pause_reading()
    for _ in range(10):
        connection.write(b"y" * 100)
    assert flow.flow == []  # exactly at the mark: not above it
    connection.write(b"y")
    assert flow.flow == [1001]
    served.connections[0].resume_reading()
    [paused, resumed] = flow.flow
    assert resumed <= 100
    assert connection.write_buffer_size == 0


def test_start_tls_credits_plaintext_in_flight_as_plaintext(
        server_context, client_context):
    # The peer has not read what was written before start_tls: it is
    # still counted, byte for byte, as the peer reads it.
    peer = Recorder()
    connection = ngi.testing.Connection(peer)
    connection.peer.pause_reading()
    connection.write(b"plain")
    connection.start_tls(client_context, server_hostname="localhost")
    assert connection.write_buffer_size == 5  # the ClientHello is not counted
    connection.write(b"held")
    assert connection.write_buffer_size == 9
    connection.peer.resume_reading()
    assert connection.write_buffer_size == 4  # only the held write is left
    assert peer.inputs[0] == b"plain"
    assert peer.inputs[1][:1] == b"\x16"  # the ClientHello, as data
    assert b"held" not in b"".join(peer.inputs)


def test_writelines_queued_before_start_tls_leave_in_plaintext_first(
        client_context):
    peer = Recorder()
    connection = ngi.testing.Connection(peer)
    connection.peer.pause_reading()
    body = [bytes([65 + i]) * 40_000 for i in range(4)]
    connection.writelines(iter(body))  # pulled up to the 64 KiB mark
    connection.start_tls(client_context, server_hostname="localhost")
    connection.write(b"after")
    connection.peer.resume_reading()
    data = b"".join(peer.inputs)
    assert data.startswith(b"".join(body))
    assert data[len(b"".join(body)):][:1] == b"\x16"  # then the ClientHello
    assert b"after" not in data


def test_close_during_the_handshake_sends_the_held_writes_first(
        server_context, client_context):
    network = ngi.testing.Network(deferred=True)
    peer = Recorder()
    connection = ngi.testing.Connection(peer, network=network)
    connection.peer.start_tls(server_context, server_side=True)
    connection.start_tls(client_context, server_hostname="localhost")
    connection.write(b"held")
    connection.close()  # closing: the handshake is still on the wire
    assert not connection and connection.write_buffer_size == 4
    network.run_until_idle()
    assert peer.events == [("input", b"held"), ("close", "closed")]
    assert connection.write_buffer_size == 0


def test_a_failed_handshake_drops_what_a_closing_end_held(certs,
                                                          client_context):
    network = ngi.testing.Network(deferred=True)
    peer = Recorder()
    connection = ngi.testing.Connection(peer, network=network)
    connection.peer.start_tls(Certificates().server_context(),
                              server_side=True)  # a CA nobody trusts
    connection.start_tls(client_context, server_hostname="localhost")
    connection.write(b"held")
    connection.close()
    network.run_until_idle()
    assert b"held" not in b"".join(peer.inputs)
    assert len(peer.closes) == 1 and isinstance(peer.closes[0], ssl.SSLError)
    assert connection.write_buffer_size == 0


# The virtual clock bounds the handshake and the shutdown -------------------

def test_a_handshake_is_dropped_at_its_timeout_by_the_clock(
        server_context, caplog):
    network = ngi.testing.Network()
    served = Served()
    network.listener("s", served, ssl=server_context)
    silent = Recorder()
    network.connect("s", silent)  # plaintext: never says ClientHello
    with caplog.at_level(logging.INFO, logger="ngi.testing"):
        network.advance(59.9)
        assert silent.closes == []
        network.advance(0.1)
    assert silent.closes == ["closed"]
    assert served.connections == []
    [record] = [r for r in caplog.records if "handshake" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "TLS handshake with '<test>' failed: the TLS handshake did not "
        "complete within 60 seconds")


def test_a_client_handshake_times_out_as_a_failed_connect(client_context):
    network = ngi.testing.Network()
    network.listener("mute", lambda connection: connection.set_handler(
        Recorder()))
    client = Recorder()
    network.connect("mute", client, ssl=client_context,
                    server_hostname="localhost", handshake_timeout=2.5)
    network.advance(2.4)
    assert client.events == []
    network.advance(0.1)
    [(kind, reason)] = client.events
    assert kind == "failed_connect" and isinstance(reason, TimeoutError)
    assert str(reason) == ("the TLS handshake did not complete within 2.5 "
                           "seconds")


def test_the_handshake_bound_counts_from_the_tcp_connection(
        server_context, client_context):
    network = ngi.testing.Network()
    network.listener("slow", Served(), ssl=server_context)
    network.delay_connect("slow", 100)
    client = Recorder()
    network.connect("slow", client, ssl=client_context,
                    server_hostname="localhost", handshake_timeout=60)
    network.advance(100)  # connected only now, and the handshake is quick
    assert client.connection is not None and client.failures == []
    network.refuse("slow")
    refused = Recorder()
    network.connect("slow", refused, ssl=client_context,
                    server_hostname="localhost")
    network.advance(100)
    [reason] = refused.failures
    assert isinstance(reason, ConnectionRefusedError)


def test_start_tls_times_out_with_handle_close(client_context):
    peer = Recorder()
    connection = ngi.testing.Connection(peer)
    mine = Recorder()
    connection.set_handler(mine)
    connection.start_tls(client_context, server_hostname="localhost",
                         handshake_timeout=5)
    network = ngi.testing.network
    network.advance(5)
    [reason] = mine.closes
    assert isinstance(reason, TimeoutError)
    assert not connection
    assert peer.closes == ["closed"]


def test_close_waits_for_the_peers_close_notify_at_most_shutdown_timeout(
        server_context, client_context):
    network = ngi.testing.Network()
    served, client, connection = tls_pair(network, server_context,
                                          client_context,
                                          shutdown_timeout=3)
    served.connections[0].pause_reading()  # holds our close_notify
    connection.close()
    assert connection._tls.phase.value == "shutdown"
    network.advance(2.9)
    assert connection._tls.phase.value == "shutdown"
    network.advance(0.1)
    assert connection._tls.phase.value == "done"
    # Reading again, the peer hears the close and answers: nobody waits.
    served.connections[0].resume_reading()
    assert served.handlers[0].closes == ["closed"]
    # An answered close_notify ends the wait at once.
    served, client, connection = tls_pair(network, server_context,
                                          client_context)
    connection.close()
    assert connection._tls.phase.value == "done"
    assert served.connections[0]._tls.phase.value == "done"


def test_a_failed_server_handshake_is_logged_at_info(server_context, caplog):
    network = ngi.testing.Network()
    served = Served()
    network.listener("s", served, ssl=server_context)
    stranger = Recorder()
    with caplog.at_level(logging.INFO, logger="ngi.testing"):
        network.connect("s", stranger, ssl=ssl.create_default_context(),
                        server_hostname="localhost")
    [(kind, reason)] = stranger.events
    assert kind == "failed_connect"
    assert isinstance(reason, ssl.SSLCertVerificationError)
    [record] = caplog.records
    assert record.levelno == logging.INFO and record.name == "ngi.testing"
    assert record.getMessage().startswith("TLS handshake with '<test>' failed")
    assert "unknown ca" in record.getMessage()
    assert served.connections == []


# Listeners ------------------------------------------------------------------

def test_listener_connections_and_close_leave_out_handshakes(
        server_context, client_context):
    network = ngi.testing.Network(deferred=True)
    served = Served()
    listener = network.listener("s", served, ssl=server_context)
    client = Recorder()
    network.connect("s", client, ssl=client_context,
                    server_hostname="localhost")
    network.pump()  # connected; the ClientHello on its way
    assert list(listener.connections()) == []
    done = []
    listener.close(done.append)  # nobody is served: done at once
    assert done == [listener]
    network.run_until_idle()
    [(kind, reason)] = client.events
    assert kind == "failed_connect" and isinstance(reason, ssl.SSLEOFError)
    assert served.connections == []


def test_a_retrying_failed_connect_does_not_recurse(server_context, capsys):
    network = ngi.testing.Network()
    network.listener("s", Served(), ssl=server_context)

    class Retrying:
        attempts = 0

        def connected(self, connection):
            raise AssertionError("not trusted: never connected")

        def failed_connect(self, reason):
            self.attempts += 1
            network.connect("s", self, ssl=ssl.create_default_context(),
                            server_hostname="localhost")

    retrying = Retrying()
    network.connect("s", retrying, ssl=ssl.create_default_context(),
                    server_hostname="localhost")
    assert retrying.attempts == 1
    assert "giving up" in capsys.readouterr().out


def test_tls_connect_to_a_scripted_connection(server_context, client_context):
    network = ngi.testing.Network()
    scripted = ngi.testing.Connection(network=network)
    server_side = Recorder()
    scripted.peer.set_handler(server_side)
    scripted.peer.start_tls(server_context, server_side=True)
    network.connectable("svc", scripted)
    client = Recorder()
    network.connect("svc", client, ssl=client_context,
                    server_hostname="localhost")
    assert client.connection is scripted
    assert scripted.ssl_object.version().startswith("TLS")
    scripted.write(b"hi")
    assert server_side.inputs == [b"hi"]


# Handlers -------------------------------------------------------------------

def test_handle_handshake_errors_close_only_that_connection(
        server_context, client_context, capsys):
    class Failing(Recorder):
        def handle_handshake(self, connection):
            raise ValueError("handshake handler bug")

    server_end, client_end = Recorder(), Failing()
    connection = ngi.testing.Connection(server_end)
    connection.set_handler(client_end)
    connection.peer.start_tls(server_context, server_side=True)
    connection.start_tls(client_context, server_hostname="localhost")
    [reason] = client_end.closes
    assert reason == "handle_handshake raised ValueError: handshake handler bug"
    assert "handshake handler bug" in capsys.readouterr().out
    assert server_end.closes == ["closed"]  # with close_notify


def test_a_printing_peer_shows_the_plaintext(server_context, client_context,
                                             capsys):
    connection = ngi.testing.Connection()
    connection.peer.start_tls(server_context, server_side=True)
    connection.start_tls(client_context, server_hostname="localhost")
    connection.write(b"hello over TLS")
    connection.close()
    assert capsys.readouterr().out == "-> b'hello over TLS'\n-> CLOSE\n"


def test_test_input_and_test_close_script_the_plaintext(server_context,
                                                        client_context):
    network = ngi.testing.Network()
    served, client, connection = tls_pair(network, server_context,
                                          client_context)
    connection.test_input(b"as if decrypted")
    assert client.inputs == [b"as if decrypted"]
    connection.test_close("scripted")
    assert client.closes == ["scripted"]
    assert served.handlers[0].closes == []  # the peer heard nothing


# Arguments ------------------------------------------------------------------

def test_tls_arguments_are_checked(server_context, client_context):
    network = ngi.testing.Network()
    client = Recorder()
    with pytest.raises(TypeError, match="ssl to be an ssl.SSLContext"):
        network.connect(address(), client, ssl="yes")
    with pytest.raises(ValueError, match="server_hostname is only"):
        network.connect(address(), client, server_hostname="localhost")
    with pytest.raises(ValueError, match="needs server_hostname"):
        network.connect("a name", client, ssl=client_context)
    with pytest.raises(TypeError, match="server_hostname to be a str"):
        network.connect(address(), client, ssl=client_context,
                        server_hostname=7)
    with pytest.raises(ValueError, match="handshake_timeout must be positive"):
        network.connect(address(), client, ssl=client_context,
                        server_hostname="localhost", handshake_timeout=0)
    with pytest.raises(TypeError, match="listener.. expects ssl"):
        network.listener(address(), Served(), ssl=True)
    with pytest.raises(ValueError, match="listener.. shutdown_timeout"):
        network.listener(address(), Served(), ssl=server_context,
                         shutdown_timeout=-1)
    assert client.events == []


def test_ssl_true_verifies_against_the_default_trust(server_context):
    network = ngi.testing.Network()
    network.listener("s", Served(), ssl=server_context)
    client = Recorder()
    network.connect("s", client, ssl=True, server_hostname="localhost")
    [(kind, reason)] = client.events
    assert isinstance(reason, ssl.SSLCertVerificationError)


def test_start_tls_arguments_and_states(server_context, client_context):
    connection = ngi.testing.Connection()
    with pytest.raises(TypeError, match="expects an ssl.SSLContext"):
        connection.start_tls(None)
    with pytest.raises(ValueError, match="needs server_hostname"):
        connection.start_tls(client_context)
    with pytest.raises(ValueError, match="server_hostname is for the client"):
        connection.start_tls(server_context, server_side=True,
                             server_hostname="x")
    with pytest.raises(ValueError, match="handshake_timeout must be positive"):
        connection.start_tls(client_context, server_hostname="localhost",
                             handshake_timeout=0)
    assert connection.ssl_object is None
    connection.start_tls(client_context, server_hostname="localhost")
    assert isinstance(connection.ssl_object, ssl.SSLObject)
    with pytest.raises(ValueError, match="TLS already"):
        connection.start_tls(client_context, server_hostname="localhost")
    connection.close()
    with pytest.raises(ConnectionClosed):
        connection.start_tls(client_context, server_hostname="localhost")
