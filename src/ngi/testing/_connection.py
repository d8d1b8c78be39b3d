"""In-memory connections: a `Connection` is one end of a pair.

What one end writes is handed to the network, which calls the other end's
``_arrive``; each end queues what arrives and delivers it to its handler
one call at a time.
"""
from __future__ import annotations

import collections
import enum
import errno
from typing import TYPE_CHECKING, Any, Iterable, Iterator, TypeVar, Union

from ngi import _rules
from ngi import _tls as tls_rules  # `_tls` is a connection's layer here
from ngi.interfaces import ConnectionClosed
from ngi.testing._printing import PrintingHandler, TextPrintingHandler
from ngi.testing._reporting import call, report

if TYPE_CHECKING:
    import ssl

    from ngi.testing._network import Listener, Network
    from ngi.testing._secure import TLS

TEST_ADDRESS = "<test>"  # the address every unnamed end appears to have


class State(enum.Enum):
    """A connection's life; see the table in `Connection`."""

    OPEN = "open"
    # Closed by the application while its outbox (writelines iterators and
    # the writes behind them) drains; the peer hears the close after it.
    CLOSING = "closing"
    CLOSED = "closed"
    # Aborted or reset: closed, and what it sent and the peer was not
    # handed yet is void.  A state, not a fact beside CLOSED, because it
    # is entered only from OPEN (abort() and reset() do nothing once the
    # connection is closed) and never left.
    DROPPED = "dropped"


class Flow(enum.Enum):
    """Write flow control: where the handler's pause/resume calls stand."""

    WRITING = "writing"
    PAUSED = "paused"  # handle_pause_writing was called
    RESUME_DUE = "resume due"  # a RESUME_WRITING event is queued


class Event(enum.Enum):
    """What waits in a connection's queues for its handler."""

    INPUT = "input"  # data from the peer (or test_input)
    # The peer closed (or test_close): on delivery, close and tell.
    PEER_CLOSED = "peer closed"
    # The peer reset: overtakes the input queued before it, then is
    # delivered like PEER_CLOSED.
    RESET = "reset"
    WRITELINES_FAILED = "writelines failed"  # for handle_exception
    RESUME_WRITING = "resume writing"
    DRAIN = "drain"  # the listener is draining: handle_drain, if any
    # Closed already (the listener stopped it): only the handler's
    # handle_close is left to call.
    TELL_CLOSED = "tell closed"
    # TLS (see _secure): decrypted input, (data, wire bytes to credit the
    # sender), data possibly empty; and start_tls's handshake completed.
    RECORD = "record"
    HANDSHAKE = "handshake"


class _Upgrade:
    """`UPGRADE` marks where in the outbox a connection's TLS begins."""

    def __repr__(self) -> str:
        return "<UPGRADE>"


UPGRADE = _Upgrade()


# (event, argument, sending end or None)
Queued = tuple[Event, Any, Union["Connection", None]]
AnyConnection = TypeVar("AnyConnection", bound="Connection")


class Connection:
    """One end of an in-memory connection; ``peer`` is the other end.

    ``Connection()`` makes a pair and returns one end.  The other end gets
    ``peer_handler``, by default a `PrintingHandler`, so that what the code
    under test writes shows up in the test's output.  The pair belongs to
    ``network`` (by default the module's `network`), whose rules apply to
    what the two ends write.

    An end's life is its `State`, changed by four methods: `close`,
    `_drop` (for `abort` and `reset`) and `_close_now` leave OPEN through
    `_shut` (a server end's also tells its listener); `_pull` ends CLOSING.

    ======= ===================== ========== ======= ============ =========== =============
    from    event                 method     to      sent to peer dropped     handle_close
    ======= ===================== ========== ======= ============ =========== =============
    OPEN    ``close()``, outbox   close      CLOSED  PEER_CLOSED  queued      no
            empty                                                 events
    OPEN    ``close()``, outbox   close      CLOSING              queued      no
            pending                                               events
    CLOSING the outbox drained    _pull      CLOSED  PEER_CLOSED,             no
                                                     after it
    CLOSING the peer is closed    _pull      CLOSED               the outbox  no
    OPEN    ``abort()``           _drop      DROPPED PEER_CLOSED  all unsent  no
    OPEN    ``reset()``           _drop      DROPPED RESET        all unsent  no (the
                                                                              peer's gets
                                                                              the error)
    OPEN    the peer's close or   _close_now CLOSED               the outbox, its reason,
            reset delivered, or                                   queued      now
            ``test_close()``                                      events
    OPEN    the listener stops it _close_now CLOSED  PEER_CLOSED  the outbox, ``'stopped'``,
            (``_stop``)                                           queued      queued
                                                                  events
    OPEN    a handler raised      _close_now CLOSED  PEER_CLOSED  the outbox, what raised,
            (``_failed``)                                         queued      now
                                                                  events
    ======= ===================== ========== ======= ============ =========== =============

    Queued events are held input (its sender is credited for it) and this
    end's own news (RESUME_WRITING, WRITELINES_FAILED); the outbox is the
    writelines iterators (they are closed) and the writes behind them.
    "All unsent" is both, and what the peer was not handed yet, even if
    on its way or queued there: the peer ignores it.  What a CLOSED end
    sent before still arrives.  RESET overtakes what the peer has queued,
    dropping it, and is delivered even while the peer's reading is
    paused; PEER_CLOSED and ``test_close()`` wait behind queued input.
    A ``connected`` or server callable that raises closes its connection
    with ``close()``.  ``handle_close`` is called only on leaving OPEN
    other than by the application's own ``close()``, ``abort()`` or
    ``reset()``, so it comes at most once and never after them; a closed
    end ignores what still arrives.

    TLS (``connect``/``listener`` with ``ssl``, or `start_tls`) adds a
    layer, ``_tls`` (see ``ngi.testing._secure.TLS`` for its own table),
    without new life states: what the end transmits and receives crosses
    it; `UPGRADE` in the outbox holds the writes behind it until the
    handshake is done (so a ``close()`` meanwhile is CLOSING), and the
    closes above send the close_notify before the EOF.
    """

    printing_handler = PrintingHandler
    peer_address: Any  # the other end's address (see `_setup`)
    _tls: TLS | None = None  # the TLS layer, once there is one

    def __init__(self, peer_handler: Any = None,
                 network: Network | None = None, *, address: Any = None,
                 peer_address: Any = None) -> None:
        if isinstance(peer_handler, type):  # zc.ngi took a factory here
            raise TypeError(
                "Connection() expects a handler for the peer, not the class "
                f"{peer_handler.__name__}: make one (Connection("
                f"{peer_handler.__name__}())), or give the peer a server's "
                f"handler afterwards ({peer_handler.__name__}(connection.peer))")
        if network is None:
            network = _default_network()
        self._setup(network)
        other = Connection._bare(network)
        link(self, other)
        # zc.ngi's Connection(address=..., peer_address=...): both ends.
        if peer_address is not None:
            self.peer_address = peer_address
        if address is not None:
            other.peer_address = address
        other.set_handler(peer_handler if peer_handler is not None
                          else self.printing_handler())

    @classmethod
    def _bare(cls: type[AnyConnection], network: Network,
              *args: Any) -> AnyConnection:
        """A connection without a peer, for the implementation to link."""
        connection = cls.__new__(cls)
        connection._setup(network, *args)
        return connection

    def _setup(self, network: Network) -> None:
        self.peer: Connection = self
        self.peer_address = TEST_ADDRESS
        self._network = network
        self._handler: Any = None
        self._state = State.OPEN
        self._outside: Any = None  # why it was closed from outside, if it was
        self._listener: Listener | None = None  # that counts it as its own
        # Events wait in two queues: what came from the peer (input and its
        # close, held while reading is paused) and this end's own news.
        self._inbound: collections.deque[Queued] = collections.deque()
        self._local: collections.deque[Queued] = collections.deque()
        self._reading_paused = False  # by pause_reading(); not the life
        # Reentrancy guards, plain flags: a handler call is under way; the
        # outbox is being pulled further up the stack.
        self._running = False
        self._pulling = False
        # Output: writelines iterators, and writes that must wait behind one
        # (or behind UPGRADE, TLS's start).
        self._outbox: collections.deque[bytes | Iterator[Any] | _Upgrade] = \
            collections.deque()
        self._buffered = 0  # written and not yet handed to the peer
        self._waiting = 0  # of which: writes in the outbox, behind an iterator
        self._high = _rules.DEFAULT_HIGH
        self._low = _rules.DEFAULT_LOW
        self._flow = Flow.WRITING

    def __bool__(self) -> bool:
        return self._state is State.OPEN

    def __repr__(self) -> str:
        state = "open" if self._state is State.OPEN else "closed"
        return f"<{type(self).__module__}.{type(self).__name__} {state}>"

    @property
    def closed(self) -> Any:
        """zc.ngi's view of the life: None while open, True once the
        application closed (or aborted) it, else why it was closed from
        outside (the reason its handler's ``handle_close`` got)."""
        if self._state is State.OPEN:
            return None
        return True if self._outside is None else self._outside

    @property
    def handler(self) -> Any:
        """The handler set with `set_handler` (None before)."""
        return self._handler

    # -- IConnection --------------------------------------------------------

    def set_handler(self, handler: Any) -> None:
        """Use ``handler`` from now on; deliver what waited for one."""
        _rules.check_handler(handler, "set_handler()", "handle_input")
        self._handler = handler
        self._deliver()

    def write(self, data: Any) -> None:
        """Send ``data`` to the peer (after any pending writelines)."""
        data = _rules.as_bytes(data, "write()")
        self._check_open()
        if data:
            self._buffered += len(data)
            if self._outbox:
                self._outbox.append(data)
                self._waiting += len(data)
            else:
                self._transmit(data)
            self._check_high()

    def writelines(self, data: Iterable[Any]) -> None:
        """Send each item, pulled while the write buffer is at or below the
        high-water mark; a bad item or a failing iterator goes to
        ``handle_exception``, because in a real implementation it surfaces
        only later, while the output drains."""
        _rules.check_writelines(data)
        items = iter(data)
        self._check_open()
        self._outbox.append(items)
        self._pull()

    def close(self) -> None:
        """Close this end; the peer hears of it once it got what was
        written before.  This end's handler hears nothing more."""
        if self._state is not State.OPEN:
            return
        if self._outbox:
            self._shut(State.CLOSING)  # _pull sends the close when done
        else:
            self._shut(State.CLOSED)
            self._send_close()

    def abort(self) -> None:
        """Close now, dropping what the peer has not received yet."""
        self._drop(Event.PEER_CLOSED, "closed")

    def reset(self) -> None:
        """Close abruptly, like a TCP reset: what the peer has not received
        yet is dropped and its ``handle_close`` gets a
        ``ConnectionResetError``.  This end's handler hears nothing more."""
        self._drop(Event.RESET, ConnectionResetError(
            errno.ECONNRESET, "connection reset by peer"))

    # -- flow control -------------------------------------------------------

    @property
    def write_buffer_size(self) -> int:
        """Bytes written and not yet handed to the peer's handler."""
        return self._buffered

    def set_write_limits(self, high: int | None = None,
                         low: int | None = None) -> None:
        """Set the marks for handle_pause/resume_writing (asyncio's rules:
        64 KiB and 16 KiB by default; ``low`` defaults to ``high // 4``)."""
        self._high, self._low = _rules.write_limits(high, low)
        self._check_high()
        self._check_low()
        self._pull()

    def get_write_limits(self) -> tuple[int, int]:
        """(high, low): the marks in force."""
        return (self._high, self._low)

    def pause_reading(self) -> None:
        """Hold input (and the peer's close) until `resume_reading`."""
        self._reading_paused = True

    def resume_reading(self) -> None:
        """Deliver what was held, and input from now on."""
        self._reading_paused = False
        self._deliver()

    @property
    def reading(self) -> bool:
        """True while open and not paused."""
        return self._state is State.OPEN and not self._reading_paused

    # -- TLS ----------------------------------------------------------------

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        """The ``ssl.SSLObject`` of a TLS connection, None for plaintext."""
        return self._tls.sslobj if self._tls is not None else None

    def start_tls(self, context: ssl.SSLContext, server_side: bool = False,
                  server_hostname: str | None = None, *,
                  handshake_timeout: float = tls_rules.HANDSHAKE_TIMEOUT,
                  shutdown_timeout: float = tls_rules.SHUTDOWN_TIMEOUT) -> None:
        """Upgrade this plaintext connection to TLS, in place (STARTTLS).

        What was written before leaves first, in plaintext; what is written
        after waits for the handshake and leaves encrypted.  Input handed
        to the handler stays handed; what arrives after the call is TLS.
        Success calls the handler's optional ``handle_handshake(connection)``
        (queued like input); failure or ``handshake_timeout`` closes the
        connection with ``handle_close(connection, error)``.
        """
        from ngi.testing._secure import TLS

        context, server_side, server_hostname = tls_rules.start_tls_args(
            context, server_side, server_hostname)
        timeouts = tls_rules.timeouts(handshake_timeout, shutdown_timeout,
                                      "start_tls()")
        self._check_open()
        if self._tls is not None:
            raise ValueError("start_tls() on a connection that is TLS already")
        TLS(context, server_side, server_hostname, *timeouts).attach(
            self, _handshake_done, Connection._stop)

    # -- scripting the peer -------------------------------------------------

    def test_input(self, data: Any) -> None:
        """Deliver ``data`` to this end's handler as if the peer sent it."""
        data = _rules.as_bytes(data, "test_input()")
        if data:
            self._arrive(Event.INPUT, data, None)

    def test_close(self, reason: Any = "closed") -> None:
        """Close this end as if from outside, with ``reason``."""
        self._arrive(Event.PEER_CLOSED, reason, None)

    # -- the transitions (see the table in the class docstring) -------------

    def _shut(self, state: State) -> None:
        """Leave OPEN for ``state``: no more flow control calls, and the
        queued input and news are dropped (subclasses also tell their
        listener)."""
        self._state = state
        self._flow = Flow.WRITING
        self._local.clear()
        _discard(self._inbound)
        if self._listener is not None:
            self._listener._closed(self)

    def _drop(self, event: Event, arg: Any) -> None:
        """abort() and reset(): OPEN -> DROPPED, voiding all that was sent
        and not handed over; ``event`` tells the peer."""
        if self._state is State.OPEN:
            self._shut(State.DROPPED)
            self._drop_outbox()
            self._buffered = 0
            if self._tls is not None:
                self._tls.abandon()
            # The data that comes from a dropped end is ignored.
            self._network._send(self.peer, event, arg, self)

    def _close_now(self, tell_peer: bool, reason: Any) -> None:
        """OPEN -> CLOSED from the implementation's side, dropping the
        outbox; the peer is told unless it is the one that closed.  The
        caller tells this end's handler ``reason``."""
        self._outside = reason
        self._shut(State.CLOSED)
        self._drop_outbox()
        if tell_peer or (self._tls is not None and self._tls.peer_notified):
            self._send_close()  # TLS answers a close_notify with its own
        elif self._tls is not None:
            self._tls.abandon()  # the peer is gone, or a script closed this

    def _pull(self) -> None:
        """Send what waits in the outbox: writes at once (they were accepted
        already), iterator items while what is in flight stays at or below
        the high mark.  Writes waiting behind an iterator do not count
        there, or they could hold up the very iterator they wait for.
        Ends CLOSING once the outbox is empty."""
        if self._pulling:
            return  # a call further up the stack is at it already
        self._pulling = True
        try:
            while self._outbox:
                if self.peer._state is not State.OPEN:
                    self._drop_outbox()  # nobody will ever read it
                    if self._state is State.CLOSING:
                        self._state = State.CLOSED  # nobody to tell either
                    break
                if isinstance(self._outbox[0], _Upgrade):
                    if not self._upgrade():
                        break
                    continue
                if (not isinstance(self._outbox[0], bytes)
                        and self._buffered - self._waiting > self._high):
                    break
                self._pull_one()
        finally:
            self._pulling = False
        if self._state is State.CLOSING and not self._outbox:
            self._state = State.CLOSED
            self._send_close()
        self._check_high()

    def _upgrade(self) -> bool:
        """`UPGRADE` heads the outbox: TLS output begins; pass it (True)
        once the handshake is done, or void what waited if it failed."""
        assert self._tls is not None
        self._tls.begin()
        if self._tls.handshaking:
            return False
        if self._outbox and isinstance(self._outbox[0], _Upgrade):  # here
            self._outbox.popleft()
            if not self._tls.secure:
                self._drop_outbox()
        return True

    # -- sending ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state is not State.OPEN:
            raise ConnectionClosed("the connection is closed")

    def _send(self, event: Event, arg: Any) -> None:
        self._network._send(self.peer, event, arg, self)

    def _send_close(self) -> None:
        """The EOF, after TLS's close_notify (and all it still sends)."""
        if self._tls is not None:
            self._tls.shutdown()
            self._tls.emit(Event.PEER_CLOSED, "closed")
        else:
            self._send(Event.PEER_CLOSED, "closed")

    def _transmit(self, data: bytes) -> None:
        """Hand counted data to the network, in pieces if it says so."""
        if self._tls is not None:
            self._tls.send(data)
            return
        for piece in self._network._pieces(data):
            self._send(Event.INPUT, piece)

    def _pull_one(self) -> None:
        head = self._outbox[0]
        if isinstance(head, bytes):  # a write that waited; counted already
            self._outbox.popleft()
            self._waiting -= len(head)
            self._transmit(head)
            return
        assert not isinstance(head, _Upgrade)  # _pull passes it itself
        try:
            item = _rules.as_bytes(next(head), "writelines()", "items")
        except StopIteration:
            self._outbox.popleft()
            return
        except Exception as exc:
            self._outbox.popleft()
            _close_iterator(head)
            self._writelines_failed(exc)
            return
        if item:
            self._buffered += len(item)
            self._transmit(item)

    def _writelines_failed(self, exc: Exception) -> None:
        if self._state is State.OPEN:
            self._local.append((Event.WRITELINES_FAILED, exc, None))
            self._deliver()
        else:  # closed by the application meanwhile: nobody to tell
            report("writelines", exc)

    def _drop_outbox(self) -> None:
        items = list(self._outbox)
        self._outbox.clear()
        self._waiting = 0
        for item in items:
            if isinstance(item, bytes):
                self._buffered -= len(item)
            elif isinstance(item, _Upgrade):
                assert self._tls is not None
                self._tls.plain_ahead = False  # nothing is ahead now
            else:
                _close_iterator(item)

    def _credit(self, size: int) -> None:
        """The peer was handed ``size`` bytes of ours (or dropped them);
        with TLS, wire bytes, for the plaintext they carried."""
        if self._state is State.DROPPED:
            return  # everything was written off already
        if self._tls is not None:
            size = self._tls.credit(size)
        self._buffered -= size
        self._pull()
        if self.peer._state is State.OPEN:  # a closing peer's dropped
            self._check_low()                # input is no cue to write more

    def _check_high(self) -> None:
        if (self._state is State.OPEN and self._flow is not Flow.PAUSED
                and self._buffered > self._high):
            was, self._flow = self._flow, Flow.PAUSED
            if was is Flow.WRITING:  # a resume not delivered yet cancels out
                self._flow_call("handle_pause_writing")

    def _check_low(self) -> None:
        if self._flow is Flow.PAUSED and self._buffered <= self._low:
            self._flow = Flow.WRITING
            if self._state is State.OPEN:
                self._flow = Flow.RESUME_DUE
                self._local.append((Event.RESUME_WRITING, None, None))
                self._deliver()

    def _flow_call(self, name: str) -> None:
        method = getattr(self._handler, name, None)
        if method is not None:
            try:
                method(self)
            except Exception as exc:
                self._failed(name, exc)

    def _stop(self, reason: Any) -> None:
        """Close now because the listener stopped (or TLS failed): both
        handlers hear."""
        if self._state is State.OPEN:
            self._close_now(tell_peer=True, reason=reason)
            self._local.append((Event.TELL_CLOSED, reason, None))
            self._deliver()

    def _drain(self) -> None:
        """The listener began draining: tell the handler, in turn."""
        if self._state is State.OPEN:
            self._local.append((Event.DRAIN, None, None))
            self._deliver()

    # -- delivery -----------------------------------------------------------

    def _arrive(self, kind: Event, arg: Any,
                sender: Connection | None) -> None:
        """An event reached this end: through TLS, if there is a layer and
        it came over the network (not from `test_input`/`test_close`)."""
        if (kind is Event.INPUT and sender is not None
                and sender._state is State.DROPPED):
            return  # aborted or reset on the way
        if self._tls is not None and sender is not None:
            self._tls.arrive(kind, arg, sender)
        else:
            self._receive(kind, arg, sender)

    def _receive(self, kind: Event, arg: Any,
                 sender: Connection | None) -> None:
        """Queue an event for the handler and deliver what can be."""
        if kind is Event.RESET:  # overtakes whatever the peer still held
            if self._state is State.OPEN:
                _discard(self._inbound)
                self._local.append((kind, arg, None))
        elif self._state is not State.OPEN:
            size = _wire_size(kind, arg)
            if size and sender is not None:
                sender._credit(size)
            return
        else:
            self._inbound.append((kind, arg, sender))
        self._deliver()

    def _deliver(self) -> None:
        """Hand queued events to the handler, one call at a time."""
        if self._handler is None or self._running:
            return
        self._running = True
        try:
            while True:
                if self._local:
                    event = self._local.popleft()
                elif self._inbound and not self._reading_paused:
                    event = self._inbound.popleft()
                else:
                    break
                self._dispatch(*event)
        finally:
            self._running = False

    def _dispatch(self, kind: Event, arg: Any,
                  sender: Connection | None) -> None:
        if kind is Event.INPUT or kind is Event.RECORD:
            data, size = (arg, len(arg)) if kind is Event.INPUT else arg
            if sender is not None:
                if sender._state is State.DROPPED:
                    return  # the sender aborted: this never arrives
                sender._credit(size)
            if self._state is State.OPEN and data:
                try:
                    self._handler.handle_input(self, data)
                except Exception as exc:
                    self._failed("handle_input", exc)
        elif kind is Event.WRITELINES_FAILED:
            if self._state is State.OPEN:
                self._exception(arg)
        elif kind is Event.PEER_CLOSED or kind is Event.RESET:
            if self._state is State.OPEN:
                self._close_now(tell_peer=False, reason=arg)
                self._notify_close(arg)
        elif kind is Event.RESUME_WRITING:
            if self._state is State.OPEN and self._flow is Flow.RESUME_DUE:
                self._flow = Flow.WRITING
                self._flow_call("handle_resume_writing")
        elif kind is Event.DRAIN:
            if self._state is State.OPEN:
                self._flow_call("handle_drain")
        elif kind is Event.HANDSHAKE:
            if self._state is State.OPEN:
                self._flow_call("handle_handshake")  # optional, like those
        else:  # TELL_CLOSED: closed already, only the handler is left
            self._notify_close(arg)

    def _exception(self, exc: Exception) -> None:
        handle_exception = getattr(self._handler, "handle_exception", None)
        if handle_exception is None:
            self._failed("writelines (no handle_exception)", exc)
            return
        try:
            handle_exception(self, exc)
        except Exception as error:
            self._failed("handle_exception", error)

    def _failed(self, what: str, exc: Exception) -> None:
        """A handler failed: report it, close, and tell its handle_close."""
        report(what, exc)
        if self._state is State.OPEN:
            reason = f"{what} raised {type(exc).__name__}: {exc}"
            self._close_now(tell_peer=True, reason=reason)
            self._notify_close(reason)

    def _notify_close(self, reason: Any) -> None:
        handle_close = getattr(self._handler, "handle_close", None)
        if handle_close is None:
            return
        try:
            handle_close(self, reason)
        except Exception as exc:
            report("handle_close", exc)


def _discard(events: collections.deque[Queued]) -> None:
    """Drop queued events; the peer's buffer no longer holds its input."""
    dropped = list(events)
    events.clear()
    for kind, arg, sender in dropped:
        size = _wire_size(kind, arg)
        if size and sender is not None:
            sender._credit(size)


def _wire_size(kind: Event, arg: Any) -> int:
    """What an event credits its sender: the bytes that came over the wire."""
    if kind is Event.INPUT:
        return len(arg)
    if kind is Event.RECORD:
        return int(arg[1])
    return 0


def _handshake_done(connection: Connection) -> None:
    """start_tls() succeeded: the handler hears, in turn with its input."""
    connection._receive(Event.HANDSHAKE, None, None)


def _close_iterator(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        call(close, "closing a writelines iterator")


def _default_network() -> Network:
    """The package's default network, made after this module is loaded."""
    from ngi import testing
    return testing.network


def link(a: Connection, b: Connection) -> None:
    """Make ``a`` and ``b`` each other's peer."""
    a.peer, b.peer = b, a


class TextConnection(Connection):
    """A `Connection` whose peer prints the data as text."""

    printing_handler = TextPrintingHandler


class ServerConnection(Connection):
    """The server end of a connection made through a `Listener`."""

    control: Listener

    def _setup(self, network: Network,  # type: ignore[override]
               listener: Listener) -> None:
        super()._setup(network)
        self.control = self._listener = listener
