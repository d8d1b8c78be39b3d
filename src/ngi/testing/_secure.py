"""TLS in memory: a connection's `TLS` layer, over ``ssl.MemoryBIO`` pairs.

The handshake and the records are real (the ``ssl`` module's, so are the
certificate errors); what the network carries between the two ends is
the ciphertext, so chunking, deferred delivery and faults apply to it.
The argument rules, defaults and close reasons are ``ngi._tls``'s, shared
with ``ngi.net``.
"""
from __future__ import annotations

import collections
import enum
import ssl
from typing import TYPE_CHECKING, Any, Callable

from ngi import _tls
from ngi.testing._connection import UPGRADE, Event, State
from ngi.testing._reporting import logger

if TYPE_CHECKING:
    from ngi.testing._connection import Connection

READ_SIZE = 1 << 20  # plaintext asked of the SSL object per read call


class Phase(enum.Enum):
    """Where a connection's TLS stands; see the table in `TLS`."""

    HANDSHAKING = "handshaking"
    SECURE = "secure"
    # Our close_notify is sent; the peer's (or its EOF) is awaited.
    SHUTDOWN = "shutdown"
    DONE = "done"  # nothing more is sent or decrypted


class TLS:
    """The TLS layer of one `Connection`, between its handler and the wire.

    Made unattached (by ``connect``, a listener or ``start_tls``), so that
    a bad context or host name fails in the call; `attach` puts it on a
    connection and starts the handshake, bounded by ``handshake_timeout``
    on the network's clock.  ``secured(connection)`` hears of success,
    ``failed(connection, error)`` of failure while the connection is open.

    =========== ============================ ========= ============================
    from        event                        to        what happens
    =========== ============================ ========= ============================
    HANDSHAKING the handshake completes      SECURE    the writes held behind it
                                                       go, encrypted; ``secured``
    HANDSHAKING an ``ssl`` error, the peer's DONE      the alert (if any) goes;
                EOF, ``handshake_timeout``             ``failed``, which closes (a
                                                       closing connection drops
                                                       what it held)
    HANDSHAKING the connection closes        DONE      only the EOF goes
    SECURE      the peer's close_notify      SECURE    ``'closed'`` queued behind
                                                       the data before it
    SECURE      the peer's EOF without it    SECURE    `_tls.truncated()` queued,
                                                       as the close reason
    SECURE      a record fails to decrypt    DONE      the connection stops now:
                                                       ``handle_close(error)``
    SECURE      the connection closes        SHUTDOWN  our close_notify, then the
                (`shutdown`)                           EOF; ``shutdown_timeout``
                                                       starts
    SECURE      the connection closes, the   DONE      our close_notify (the
                peer's close_notify or EOF             answer), then the EOF
                in already
    SHUTDOWN    the peer's close_notify or   DONE      meanwhile what it sends is
                EOF, ``shutdown_timeout``              decrypted and dropped
    any         ``abort()``, ``reset()``,    DONE      nothing more is sent
                the peer's reset
    =========== ============================ ========= ============================

    Output: until `begin` (the connection's outbox reached the point where
    TLS was asked for) what is transmitted is plaintext written before; the
    handshake's bytes wait in the outgoing BIO.  Writes made during the
    handshake wait in the connection's outbox behind that point.  All that
    goes out passes through `emit`, in order, even when the peer answers
    (and this end sends again) in the middle of a send.  Input: what
    arrives is decrypted at once, and queued for the handler as ``RECORD``
    events, which ``pause_reading`` holds like plaintext input.

    Flow control counts plaintext: every end's peer credits it in wire
    bytes (what it received); `credit` turns those into the plaintext they
    carried, through a log of what each transmission carried.  A batch of
    ciphertext is credited once all of it came out of the peer as input
    handed to its handler (or dropped).
    """

    def __init__(self, context: ssl.SSLContext, server_side: bool,
                 server_hostname: str | None, handshake_timeout: float,
                 shutdown_timeout: float) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.sslobj = context.wrap_bio(self.incoming, self.outgoing,
                                       server_side=server_side,
                                       server_hostname=server_hostname)
        self.phase = Phase.HANDSHAKING
        self.timeouts = (handshake_timeout, shutdown_timeout)
        self.connection: Connection | None = None
        self.secured: Callable[[Any], Any] = _ignore
        self.failed: Callable[[Any, Any], Any] = _ignore
        # True until `begin`: plaintext written before TLS still goes first.
        self.plain_ahead = True
        self.peer_notified = False  # the peer's close_notify came
        self.peer_done = False  # its close_notify, EOF or reset came
        self.timer: Any = None
        # [wire bytes not yet credited, plaintext they carry, is plaintext]
        self.log: collections.deque[list[Any]] = collections.deque()
        # What goes out, in order: a handshake step or a handler's write
        # made while an earlier send is under way (the peer answering in
        # the same call) waits its turn instead of overtaking it.
        self.wire: collections.deque[tuple[Event, Any]] = collections.deque()
        self.sending = False

    def __repr__(self) -> str:
        return f"<ngi.testing TLS {self.phase.value}>"

    @property
    def handshaking(self) -> bool:
        return self.phase is Phase.HANDSHAKING

    @property
    def secure(self) -> bool:
        return self.phase is Phase.SECURE

    # -- the connection's side --------------------------------------------

    def attach(self, connection: Connection, secured: Callable[[Any], Any],
               failed: Callable[[Any, Any], Any]) -> None:
        """Become ``connection``'s layer: what arrives from now on is TLS
        (and what waits for its handler); what is transmitted is, once the
        outbox reaches `UPGRADE` (writes queued before it leave as
        plaintext) and `begin` is called."""
        self.connection = connection
        self.secured, self.failed = secured, failed
        in_flight = connection._buffered - connection._waiting
        if in_flight:  # plaintext on its way: the peer credits it as such
            self.log.append([in_flight, in_flight, True])
        connection._tls = self
        self.timer = connection._network.call_later(self.timeouts[0],
                                                    self._timed_out)
        connection._outbox.append(UPGRADE)
        connection._pull()
        # What came but was not handed to the handler yet (it was busy,
        # paused or not set) counts as come after: it is TLS.  So a server
        # may write its go-ahead, then call start_tls.
        queued = list(connection._inbound)
        connection._inbound.clear()
        for event in queued:
            connection._arrive(*event)

    def begin(self) -> None:
        """What was written before TLS has left: the handshake's bytes may."""
        if self.plain_ahead:
            self.plain_ahead = False
            if self.phase is Phase.HANDSHAKING:
                self._handshake()

    def send(self, data: bytes) -> None:
        """Transmit ``data``, counted already by the connection."""
        if self.plain_ahead:
            self._transmit(data, len(data), True)
        elif self.phase is Phase.SECURE:
            try:
                self.sslobj.write(data)
            except ssl.SSLError as exc:
                self._void(data)
                self._broken(exc)
                return
            self._transmit(self.outgoing.read(), len(data), False)
        else:  # the handshake failed or the peer is gone: nobody reads it
            self._void(data)

    def shutdown(self) -> None:
        """The connection closed: our close_notify, if we can say it."""
        if self.phase is Phase.SECURE:
            try:
                self.sslobj.unwrap()
            except ssl.SSLError:
                pass  # SSLWantReadError: the peer's close_notify is awaited
            if self.peer_done:
                self._finish()
            else:
                self.phase = Phase.SHUTDOWN
                assert self.connection is not None
                self.timer = self.connection._network.call_later(
                    self.timeouts[1], self._finish)
            self._flush()
        elif self.phase is Phase.HANDSHAKING:
            self._finish()

    def abandon(self) -> None:
        """``abort()`` or ``reset()``: nothing more is sent."""
        self._finish()
        self.wire.clear()

    def emit(self, kind: Event, arg: Any) -> None:
        """Send to the peer after whatever this end is still sending."""
        self.wire.append((kind, arg))
        self._drain()

    def _drain(self) -> None:
        if self.sending:
            return  # the call further up the stack sends it, in turn
        self.sending = True
        try:
            while self.wire:
                assert self.connection is not None
                self.connection._send(*self.wire.popleft())
        finally:
            self.sending = False

    def credit(self, wire: int) -> int:
        """The plaintext carried by ``wire`` bytes the peer has consumed."""
        counted = 0
        log = self.log
        while wire and log:
            entry = log[0]
            taken = min(wire, entry[0])
            entry[0] -= taken
            wire -= taken
            if entry[2]:  # plaintext: credited as it is consumed
                counted += taken
                entry[1] -= taken
            if not entry[0]:
                log.popleft()
                counted += entry[1]
        return counted

    # -- what arrives -------------------------------------------------------

    def arrive(self, kind: Event, arg: Any, sender: Connection) -> None:
        """Wire bytes, the peer's EOF or its reset reached the connection."""
        assert self.connection is not None
        if kind is Event.INPUT:
            self._received(arg, sender)
            return
        self.peer_done = True
        if kind is Event.PEER_CLOSED:
            self._eof(sender)
        else:  # RESET: TCP's, not TLS's
            if self.phase is Phase.SHUTDOWN:
                self._finish()
            self.connection._receive(kind, arg, sender)

    def _received(self, data: bytes, sender: Connection) -> None:
        phase = self.phase
        if phase is Phase.DONE:
            sender._credit(len(data))
            return
        self.incoming.write(data)
        if phase is Phase.SHUTDOWN:
            sender._credit(len(data))
            _, notified, error = self._read()
            if notified or error is not None:
                self._finish()
            return
        if phase is Phase.HANDSHAKING:
            self._handshake()
            if self.phase is not Phase.SECURE:
                sender._credit(len(data))
                return
        plain, notified, error = self._read()
        if notified:
            self.peer_notified = self.peer_done = True
        if error is not None:
            self._finish()
        # The state is settled before anything is handed on: a handler may
        # write, and what this end sends may come back before the call does.
        connection = self.connection
        assert connection is not None
        if plain or connection._inbound:  # credited when handed over
            connection._receive(Event.RECORD, (plain, len(data)), sender)
        else:
            sender._credit(len(data))
        if notified:
            connection._receive(Event.PEER_CLOSED, "closed", sender)
        if error is not None:
            self._broken(error)
        else:
            self._flush()

    def _eof(self, sender: Connection) -> None:
        """The peer ended the TCP stream."""
        connection = self.connection
        assert connection is not None
        if self.phase is Phase.HANDSHAKING:
            self.incoming.write_eof()
            try:
                self.sslobj.do_handshake()
            except ssl.SSLError as exc:
                self._fail(exc)
                return
            self._fail(ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "EOF occurred "
                                       "during the TLS handshake"))
        elif self.phase is Phase.SECURE:
            if not self.peer_notified:
                connection._receive(Event.PEER_CLOSED, _tls.truncated(),
                                    sender)
        elif self.phase is Phase.SHUTDOWN:
            self._finish()

    # -- inside -------------------------------------------------------------

    def _handshake(self) -> None:
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except ssl.SSLError as exc:  # incl. SSLCertVerificationError
            self._fail(exc)
            return
        self.phase = Phase.SECURE
        self._cancel_timer()
        self._flush()
        connection = self.connection
        assert connection is not None
        connection._pull()  # what waited for the handshake goes first
        if connection._state is State.OPEN:
            self.secured(connection)

    def _fail(self, error: Any) -> None:
        """The handshake failed or timed out."""
        self._finish()
        self._flush()  # the alert that says why, if there is one
        connection = self.connection
        assert connection is not None
        if connection._state is State.OPEN:
            self.failed(connection, error)
        else:  # closing already: what it held cannot be sent securely
            connection._pull()

    def _broken(self, error: Exception) -> None:
        """A record did not decrypt (or encrypt): the connection is dead."""
        self._finish()
        self._flush()
        connection = self.connection
        assert connection is not None
        if connection._state is State.OPEN:
            connection._stop(error)
        elif connection._state is State.CLOSING:
            connection._drop_outbox()
            connection._pull()

    def _timed_out(self) -> None:
        self.timer = None
        if self.phase is Phase.HANDSHAKING:
            self._fail(_tls.handshake_timed_out(self.timeouts[0]))

    def _read(self) -> tuple[bytes, bool, Exception | None]:
        """Decrypt what can be: (plaintext, close_notify seen, error)."""
        chunks = []
        notified = False
        error = None
        try:
            while True:
                chunk = self.sslobj.read(READ_SIZE)
                if not chunk:  # the peer's close_notify
                    notified = True
                    break
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            notified = True
        except ssl.SSLError as exc:
            error = exc
        return b"".join(chunks), notified, error

    def _flush(self) -> None:
        """Send the ciphertext the SSL object produced (no plaintext in it)."""
        if not self.plain_ahead and self.outgoing.pending:
            self._transmit(self.outgoing.read(), 0, False)

    def _transmit(self, data: bytes, plain: int, is_plain: bool) -> None:
        connection = self.connection
        assert connection is not None
        if not data:
            return
        self.log.append([len(data), plain, is_plain])
        self.wire.extend((Event.INPUT, piece)
                         for piece in connection._network._pieces(data))
        self._drain()

    def _void(self, data: bytes) -> None:
        assert self.connection is not None
        self.connection._buffered -= len(data)

    def _finish(self) -> None:
        self.phase = Phase.DONE
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()


def _ignore(*args: Any) -> None:
    pass


# -- what connect() and listener() take ---------------------------------------

class Options:
    """A connect's or a listener's TLS settings, checked: `layer` makes
    each connection's `TLS`."""

    def __init__(self, context: ssl.SSLContext, server_side: bool,
                 server_hostname: str | None, handshake_timeout: float,
                 shutdown_timeout: float) -> None:
        self.context = context
        self.server_side = server_side
        self.server_hostname = server_hostname
        self.timeouts = (handshake_timeout, shutdown_timeout)

    def layer(self) -> TLS:
        return TLS(self.context, self.server_side, self.server_hostname,
                   *self.timeouts)


def client_options(ssl_: Any, server_hostname: Any, address: Any,
                   handshake_timeout: Any,
                   shutdown_timeout: Any) -> Options | None:
    """``connect()``'s TLS arguments, checked; None for plaintext."""
    context, hostname = _tls.client_context(ssl_, server_hostname, address)
    timeouts = _tls.timeouts(handshake_timeout, shutdown_timeout, "connect()")
    if context is None:
        return None
    options = Options(context, False, hostname, *timeouts)
    options.layer()  # a host name the ssl module refuses fails here
    return options


def server_options(ssl_: Any, handshake_timeout: Any,
                   shutdown_timeout: Any) -> Options | None:
    """``listener()``'s TLS arguments, checked; None for plaintext."""
    context = _tls.server_context(ssl_)
    timeouts = _tls.timeouts(handshake_timeout, shutdown_timeout,
                             "listener()")
    if context is None:
        return None
    return Options(context, True, None, *timeouts)


def log_failed_handshake(connection: Connection, error: Any) -> None:
    """A listener's handshake failed: log it; the connection is dropped."""
    _tls.log_failed_handshake(logger, connection.peer_address, error)
    connection._close_now(tell_peer=True, reason=error)
