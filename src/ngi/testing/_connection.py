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
from ngi.interfaces import ConnectionClosed
from ngi.testing._printing import PrintingHandler, TextPrintingHandler
from ngi.testing._reporting import call, report

if TYPE_CHECKING:
    from ngi.testing._network import Listener, Network

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
    # Closed already (the listener stopped it): only the handler's
    # handle_close is left to call.
    TELL_CLOSED = "tell closed"


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
    """

    printing_handler = PrintingHandler

    def __init__(self, peer_handler: Any = None,
                 network: Network | None = None) -> None:
        if network is None:
            network = _default_network()
        self._setup(network)
        other = Connection._bare(network)
        link(self, other)
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
        self.peer_address: Any = TEST_ADDRESS
        self._network = network
        self._handler: Any = None
        self._state = State.OPEN
        # Events wait in two queues: what came from the peer (input and its
        # close, held while reading is paused) and this end's own news.
        self._inbound: collections.deque[Queued] = collections.deque()
        self._local: collections.deque[Queued] = collections.deque()
        self._reading_paused = False  # by pause_reading(); not the life
        # Reentrancy guards, plain flags: a handler call is under way; the
        # outbox is being pulled further up the stack.
        self._running = False
        self._pulling = False
        # Output: writelines iterators, and writes that must wait behind one.
        self._outbox: collections.deque[bytes | Iterator[Any]] = \
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
            self._send(Event.PEER_CLOSED, "closed")

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

    def _drop(self, event: Event, arg: Any) -> None:
        """abort() and reset(): OPEN -> DROPPED, voiding all that was sent
        and not handed over; ``event`` tells the peer."""
        if self._state is State.OPEN:
            self._shut(State.DROPPED)
            self._drop_outbox()
            self._buffered = 0
            # From no sender: what comes from a dropped end is ignored.
            self._network._send(self.peer, event, arg, None)

    def _close_now(self, tell_peer: bool) -> None:
        """OPEN -> CLOSED from the implementation's side, dropping the
        outbox; the peer is told unless it is the one that closed.  The
        caller tells this end's handler."""
        self._shut(State.CLOSED)
        self._drop_outbox()
        if tell_peer:
            self._send(Event.PEER_CLOSED, "closed")

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
                if (not isinstance(self._outbox[0], bytes)
                        and self._buffered - self._waiting > self._high):
                    break
                self._pull_one()
        finally:
            self._pulling = False
        if self._state is State.CLOSING and not self._outbox:
            self._state = State.CLOSED
            self._send(Event.PEER_CLOSED, "closed")
        self._check_high()

    # -- sending ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state is not State.OPEN:
            raise ConnectionClosed("the connection is closed")

    def _send(self, event: Event, arg: Any) -> None:
        self._network._send(self.peer, event, arg, self)

    def _transmit(self, data: bytes) -> None:
        """Hand counted data to the network, in pieces if it says so."""
        for piece in self._network._pieces(data):
            self._send(Event.INPUT, piece)

    def _pull_one(self) -> None:
        head = self._outbox[0]
        if isinstance(head, bytes):  # a write that waited; counted already
            self._outbox.popleft()
            self._waiting -= len(head)
            self._transmit(head)
            return
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
            else:
                _close_iterator(item)

    def _credit(self, size: int) -> None:
        """The peer was handed ``size`` bytes of ours (or dropped them)."""
        if self._state is State.DROPPED:
            return  # everything was written off already
        self._buffered -= size
        self._pull()
        self._check_low()

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
        """Close now because the listener stopped: both handlers hear."""
        if self._state is State.OPEN:
            self._close_now(tell_peer=True)
            self._local.append((Event.TELL_CLOSED, reason, None))
            self._deliver()

    # -- delivery -----------------------------------------------------------

    def _arrive(self, kind: Event, arg: Any,
                sender: Connection | None) -> None:
        """An event reached this end: queue it and deliver what can be."""
        if sender is not None and sender._state is State.DROPPED:
            return  # aborted or reset on the way
        if kind is Event.RESET:  # overtakes whatever the peer still held
            if self._state is State.OPEN:
                _discard(self._inbound)
                self._local.append((kind, arg, None))
        elif self._state is not State.OPEN:
            if kind is Event.INPUT and sender is not None:
                sender._credit(len(arg))
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
        if kind is Event.INPUT:
            if sender is not None:
                if sender._state is State.DROPPED:
                    return  # the sender aborted: this never arrives
                sender._credit(len(arg))
            if self._state is State.OPEN:
                try:
                    self._handler.handle_input(self, arg)
                except Exception as exc:
                    self._failed("handle_input", exc)
        elif kind is Event.WRITELINES_FAILED:
            if self._state is State.OPEN:
                self._exception(arg)
        elif kind is Event.PEER_CLOSED or kind is Event.RESET:
            if self._state is State.OPEN:
                self._close_now(tell_peer=False)
                self._notify_close(arg)
        elif kind is Event.RESUME_WRITING:
            if self._state is State.OPEN and self._flow is Flow.RESUME_DUE:
                self._flow = Flow.WRITING
                self._flow_call("handle_resume_writing")
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
            self._close_now(tell_peer=True)
            self._notify_close(f"{what} raised {type(exc).__name__}: {exc}")

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
        if kind is Event.INPUT and sender is not None:
            sender._credit(len(arg))


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

    def _setup(self, network: Network,  # type: ignore[override]
               listener: Listener) -> None:
        super()._setup(network)
        self.control = listener

    def _shut(self, state: State) -> None:
        super()._shut(state)
        self.control._closed(self)
