"""The testing implementation: NGI in memory, with no sockets and no threads.

Application code written against the NGI interfaces can be tested by passing
it this module (or a `Network`) instead of `ngi.net`.  Everything happens in
the calling thread: by default a ``write`` on one end of a connection calls
the other end's ``handle_input`` before it returns (unless that handler is
busy, see below), so a test can make a call and check the outcome on the
next line.

- `Connection` (and `TextConnection`) make a connected pair: test your
  handler on one end, and by default the other end prints what it gets.
- `listener`, `connect`, `udp`, `udp_listener` and `call_later` work like a
  real implementation's, with addresses that are just hashable keys.  They
  are bound to the default network, `network`.
- `connectable`, `peer`, `Connection.test_input` and
  `Connection.test_close` script the other side of a conversation.
- `Network(chunk_size=None, seed=None, deferred=False)` is an isolated
  network with its own listeners, its own virtual clock and its own rules:
  ``chunk_size`` splits every write into pieces (``'random'``: at random
  points, reproducible from ``seed``), ``deferred`` holds everything that
  crosses the network until `Network.pump` or `Network.run_until_idle`.
- Time is virtual: ``network.time()`` starts at 0.0 and moves only with
  ``network.advance(seconds)``, which runs the due timers in deadline order.
- Faults: `Connection.reset`, `Network.refuse`, `Network.delay_connect`.
- Flow control: ``write_buffer_size``, ``set_write_limits``, the handler's
  ``handle_pause_writing`` / ``handle_resume_writing``, and
  ``pause_reading`` / ``resume_reading`` / ``reading``.
- `ngi.testing.conformance` is the conformance suite that this and every
  other implementation pass.

Rules that keep tests close to a real network:

- Handlers are never re-entered.  Input or a close that arrives while a
  handler of that connection runs is queued and delivered, in order, after
  it returns; the same happens before a handler is set.
- A close from the peer takes effect when it is delivered to the handler, as
  the real implementation only learns of it by reading.
- Exceptions from application callbacks are printed with their traceback
  (so they show up in doctests) and logged under ``ngi.testing``; the
  connection concerned is closed.
- Binding an address that a listener already holds raises ``OSError``; a
  listener or UDP listener asked for the address ``None`` gets a fresh one,
  and so does ``listener(server)``.  Addresses must be hashable.
- ``writelines`` pulls its iterable in the call for as long as the
  connection's write buffer stays at or below its high-water mark; the rest
  is pulled as the peer reads.

Flow control, in memory: what one end writes counts toward its
``write_buffer_size`` until the other end's handler is handed it, so a peer
that paused reading (or has no handler yet, or whose network is deferred
and not pumped) makes the writer's buffer grow.  ``handle_pause_writing``
is called by the write that takes the buffer above the high-water mark (as
in asyncio and ``ngi.net``); ``handle_resume_writing`` comes when the peer's
reading brings it back to the low-water mark, queued like input if the
handler is busy.  Neither comes after the connection closed.

Choices made where the API is silent: close reasons are ``'closed'`` (the
peer closed), ``'stopped'`` (the listener closed), a
``ConnectionResetError`` (the peer called `Connection.reset`), and
``'<method> raised <Name>: <message>'`` (a handler failed); a refused
connect fails with a ``ConnectionRefusedError``, a connect to an address
nobody listens on with ``'no such server'``; the client end of a connection
made through a listener has the listener's address as ``peer_address``,
every other end has ``'<test>'``.  Pieces of different writes are never
merged into one ``handle_input``.
"""
from __future__ import annotations

import collections
import errno
import heapq
import itertools
import logging
import math
import numbers
import random
import traceback
from typing import Any, Callable, Iterable

from ngi.interfaces import ConnectionClosed, ConnectionFailed

__all__ = [
    "Connection", "TextConnection", "ServerConnection",
    "PrintingHandler", "TextPrintingHandler",
    "Listener", "UDPListener", "Peer", "Network", "Timer", "network",
    "connect", "listener", "udp", "udp_listener", "connectable", "peer",
    "call_later",
]

logger = logging.getLogger(__name__)
# Errors are printed already; without this, Python's last-resort handler
# would print them a second time, to stderr, when logging is not set up.
logger.addHandler(logging.NullHandler())

TEST_ADDRESS = "<test>"  # the address every unnamed end appears to have
DEFAULT_HIGH = 64 * 1024  # write buffer marks: asyncio's defaults
DEFAULT_LOW = 16 * 1024


def _report(what: str, exc: BaseException) -> None:
    """Print and log an exception from application code, then carry on."""
    print(f"ngi.testing: {what} raised an exception:")
    print("".join(traceback.format_exception(type(exc), exc,
                                             exc.__traceback__)),
          end="")
    logger.error("%s raised an exception", what,
                 exc_info=(type(exc), exc, exc.__traceback__))


def _as_bytes(data: Any, what: str, noun: str = "data") -> bytes:
    """Return a snapshot of bytes-like ``data``, so later changes don't leak."""
    if isinstance(data, bytes):
        return data
    if not isinstance(data, str):
        try:
            return memoryview(data).tobytes()
        except TypeError:
            pass
    raise TypeError(f"{what} expects bytes-like {noun}, got "
                    f"{type(data).__name__}")


def _check_address(address: Any) -> None:
    try:
        hash(address)
    except TypeError:
        raise TypeError("ngi.testing addresses must be hashable, got "
                        f"{type(address).__name__}") from None


def _seconds(what: str, seconds: Any, negative_ok: bool = False) -> float:
    """Check a number of seconds: a real number, not NaN (and not negative
    unless ``negative_ok``, which then means zero)."""
    if not isinstance(seconds, numbers.Real) or isinstance(seconds, bool):
        raise TypeError(f"{what} expects a number of seconds, got "
                        f"{type(seconds).__name__}")
    seconds = float(seconds)
    if math.isnan(seconds) or (seconds < 0 and not negative_ok):
        raise ValueError(f"{what} expects a non-negative number of seconds, "
                         f"got {seconds!r}")
    return max(seconds, 0.0)


def _check_mark(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, int)
                              or isinstance(value, bool) or value < 0):
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


# Printing handlers ---------------------------------------------------------

class PrintingHandler:
    """Print what arrives, so a doctest or capsys can check it.

    Data is shown as its ``repr`` in 50-character pieces: ``->`` and a
    space before the first, ``.>`` and a space before the rest.
    """

    width = 50

    def handle_input(self, connection: Any, data: bytes) -> None:
        text = repr(data)
        prefix = "->"
        for start in range(0, len(text), self.width):
            print(prefix, text[start:start + self.width])
            prefix = ".>"

    def handle_close(self, connection: Any, reason: Any) -> None:
        if reason == "closed":
            print("-> CLOSE")
        else:
            print("-> CLOSE", reason)

    def handle_exception(self, connection: Any, exception: Exception) -> None:
        print("-> EXCEPTION", type(exception).__name__, exception)


class TextPrintingHandler(PrintingHandler):
    """Print arriving data as text, for line-oriented protocols.

    A newline is added when the data does not end with one, so that the
    output of each ``handle_input`` reads as whole lines in a doctest.
    """

    encoding = "utf-8"

    def handle_input(self, connection: Any, data: bytes) -> None:
        text = data.decode(self.encoding, errors="replace")
        print(text, end="" if text.endswith("\n") else "\n")


# Connections ---------------------------------------------------------------

class Connection:
    """One end of an in-memory connection; ``peer`` is the other end.

    ``Connection()`` makes a pair and returns one end.  The other end gets
    ``peer_handler``, by default a `PrintingHandler`, so that what the code
    under test writes shows up in the test's output.  The pair belongs to
    ``network`` (by default the module's `network`), whose rules apply to
    what the two ends write.
    """

    printing_handler = PrintingHandler

    def __init__(self, peer_handler: Any = None,
                 network: Network | None = None) -> None:
        if network is None:
            network = _default_network()
        self._setup(network)
        other = Connection._bare(network)
        _link(self, other)
        other.set_handler(peer_handler if peer_handler is not None
                          else self.printing_handler())

    @classmethod
    def _bare(cls, network: Network, *args: Any) -> Connection:
        """A connection without a peer, for the implementation to link."""
        connection = cls.__new__(cls)
        connection._setup(network, *args)
        return connection

    def _setup(self, network: Network) -> None:
        self.peer: Connection = self
        self.peer_address: Any = TEST_ADDRESS
        self._network = network
        self._handler: Any = None
        self._open = True
        # Events wait in two queues: what came from the peer (input and its
        # close, held while reading is paused) and this end's own news.
        self._inbound: collections.deque = collections.deque()
        self._local: collections.deque = collections.deque()
        self._running = False  # a handler call is under way
        self._paused = False  # reading paused
        # Output: writelines iterators, and writes that must wait behind one.
        self._outbox: collections.deque = collections.deque()
        self._pulling = False
        self._closing = False  # closed by the application, outbox draining
        self._dropped = False  # aborted or reset: what it sent is void
        self._buffered = 0  # written and not yet handed to the peer
        self._waiting = 0  # of which: writes in the outbox, behind an iterator
        self._high = DEFAULT_HIGH
        self._low = DEFAULT_LOW
        self._writing_paused = False
        self._resume_due = False  # a handle_resume_writing is queued

    def __bool__(self) -> bool:
        return self._open

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<{type(self).__module__}.{type(self).__name__} {state}>"

    # -- IConnection --------------------------------------------------------

    def set_handler(self, handler: Any) -> None:
        """Use ``handler`` from now on; deliver what waited for one."""
        if not callable(getattr(handler, "handle_input", None)):
            raise TypeError("set_handler() expects a handler with a "
                            f"handle_input method, got {handler!r}")
        self._handler = handler
        self._deliver()

    def write(self, data: Any) -> None:
        """Send ``data`` to the peer (after any pending writelines)."""
        data = _as_bytes(data, "write()")
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
        if isinstance(data, (str, bytes, bytearray, memoryview)):
            raise TypeError("writelines() expects an iterable of bytes-like "
                            f"objects, got {type(data).__name__}; use "
                            "write() for a single chunk")
        items = iter(data)
        self._check_open()
        self._outbox.append(items)
        self._pull()

    def close(self) -> None:
        """Close this end; the peer hears of it once it got what was
        written before.  This end's handler hears nothing more."""
        if not self._open:
            return
        self._shut()
        if self._outbox:
            self._closing = True  # _pull sends the close when done
        else:
            self._network._send(self.peer, "close", "closed", self)

    def abort(self) -> None:
        """Close now, dropping what the peer has not received yet."""
        if self._open:
            self._shut()
            self._drop_sent()
            self._network._send(self.peer, "close", "closed", None)

    def reset(self) -> None:
        """Close abruptly, like a TCP reset: what the peer has not received
        yet is dropped and its ``handle_close`` gets a
        ``ConnectionResetError``.  This end's handler hears nothing more."""
        if self._open:
            self._shut()
            self._drop_sent()
            self._network._send(
                self.peer, "reset",
                ConnectionResetError(errno.ECONNRESET,
                                     "connection reset by peer"), None)

    # -- flow control -------------------------------------------------------

    @property
    def write_buffer_size(self) -> int:
        """Bytes written and not yet handed to the peer's handler."""
        return self._buffered

    def set_write_limits(self, high: int | None = None,
                         low: int | None = None) -> None:
        """Set the marks for handle_pause/resume_writing (asyncio's rules:
        64 KiB and 16 KiB by default; ``low`` defaults to ``high // 4``)."""
        _check_mark("high", high)
        _check_mark("low", low)
        if high is None:
            high = DEFAULT_HIGH if low is None else 4 * low
        if low is None:
            low = high // 4
        if low > high:
            raise ValueError(f"low ({low}) must not be above high ({high})")
        self._high, self._low = high, low
        self._check_high()
        self._check_low()
        self._pull()

    def get_write_limits(self) -> tuple[int, int]:
        """(high, low): the marks in force."""
        return (self._high, self._low)

    def pause_reading(self) -> None:
        """Hold input (and the peer's close) until `resume_reading`."""
        self._paused = True

    def resume_reading(self) -> None:
        """Deliver what was held, and input from now on."""
        self._paused = False
        self._deliver()

    @property
    def reading(self) -> bool:
        """True while open and not paused."""
        return self._open and not self._paused

    # -- scripting the peer -------------------------------------------------

    def test_input(self, data: Any) -> None:
        """Deliver ``data`` to this end's handler as if the peer sent it."""
        data = _as_bytes(data, "test_input()")
        if data:
            self._arrive("input", data, None)

    def test_close(self, reason: Any = "closed") -> None:
        """Close this end as if from outside, with ``reason``."""
        self._arrive("close", reason, None)

    # -- sending ------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._open:
            raise ConnectionClosed("the connection is closed")

    def _transmit(self, data: bytes) -> None:
        """Hand counted data to the network, in pieces if it says so."""
        for piece in self._network._pieces(data):
            self._network._send(self.peer, "input", piece, self)

    def _pull(self) -> None:
        """Send what waits in the outbox: writes at once (they were accepted
        already), iterator items while what is in flight stays at or below
        the high mark.  Writes waiting behind an iterator do not count
        there, or they could hold up the very iterator they wait for."""
        if self._pulling:
            return  # a call further up the stack is at it already
        self._pulling = True
        try:
            while self._outbox:
                if not self.peer._open:  # nobody will ever read it
                    self._drop_outbox()
                    break
                if (not isinstance(self._outbox[0], bytes)
                        and self._buffered - self._waiting > self._high):
                    break
                self._pull_one()
        finally:
            self._pulling = False
        if self._closing and not self._outbox:
            self._closing = False
            self._network._send(self.peer, "close", "closed", self)
        self._check_high()

    def _pull_one(self) -> None:
        head = self._outbox[0]
        if isinstance(head, bytes):  # a write that waited; counted already
            self._outbox.popleft()
            self._waiting -= len(head)
            self._transmit(head)
            return
        try:
            item = _as_bytes(next(head), "writelines()", "items")
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
        if self._open:
            self._local.append(("exception", exc, None))
            self._deliver()
        else:  # closed by the application meanwhile: nobody to tell
            _report("writelines", exc)

    def _credit(self, size: int) -> None:
        """The peer was handed ``size`` bytes of ours (or dropped them)."""
        if self._dropped:
            return  # everything was written off already
        self._buffered -= size
        self._pull()
        self._check_low()

    def _check_high(self) -> None:
        if (self._open and not self._writing_paused
                and self._buffered > self._high):
            self._writing_paused = True
            if self._resume_due:  # not delivered yet: the two cancel out
                self._resume_due = False
            else:
                self._flow_call("handle_pause_writing")

    def _check_low(self) -> None:
        if self._writing_paused and self._buffered <= self._low:
            self._writing_paused = False
            if self._open:
                self._resume_due = True
                self._local.append(("resume_writing", None, None))
                self._deliver()

    def _flow_call(self, name: str) -> None:
        method = getattr(self._handler, name, None)
        if method is not None:
            try:
                method(self)
            except Exception as exc:
                self._failed(name, exc)

    # -- closing ------------------------------------------------------------

    def _shut(self) -> None:
        """Mark this end closed (subclasses also tell their listener);
        drop the input nobody will read."""
        self._open = False
        self._writing_paused = self._resume_due = False
        self._local.clear()
        _discard(self._inbound)

    def _drop_outbox(self) -> None:
        items = list(self._outbox)
        self._outbox.clear()
        self._waiting = 0
        self._closing = False
        for item in items:
            if isinstance(item, bytes):
                self._buffered -= len(item)
            else:
                _close_iterator(item)

    def _drop_sent(self) -> None:
        """Void everything this end sent that was not handed over yet."""
        self._drop_outbox()
        self._dropped = True
        self._buffered = 0

    def _close_now(self) -> None:
        """Close from the implementation's side, dropping the outbox."""
        self._shut()
        self._drop_outbox()
        self._network._send(self.peer, "close", "closed", self)

    def _stop(self, reason: Any) -> None:
        """Close now because the listener stopped: both handlers hear."""
        if self._open:
            self._close_now()
            self._local.append(("closed", reason, None))
            self._deliver()

    # -- delivery -----------------------------------------------------------

    def _arrive(self, kind: str, arg: Any, sender: Connection | None) -> None:
        """An event reached this end: queue it and deliver what can be."""
        if sender is not None and sender._dropped:
            return  # aborted or reset on the way
        if kind == "reset":  # overtakes whatever the peer still held
            if self._open:
                _discard(self._inbound)
                self._local.append(("close", arg, None))
        elif not self._open:
            if kind == "input" and sender is not None:
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
                elif self._inbound and not self._paused:
                    event = self._inbound.popleft()
                else:
                    break
                self._dispatch(*event)
        finally:
            self._running = False

    def _dispatch(self, kind: str, arg: Any, sender: Connection | None) -> None:
        if kind == "input":
            if sender is not None:
                if sender._dropped:
                    return  # the sender aborted: this never arrives
                sender._credit(len(arg))
            if self._open:
                try:
                    self._handler.handle_input(self, arg)
                except Exception as exc:
                    self._failed("handle_input", exc)
        elif kind == "exception":
            if self._open:
                self._exception(arg)
        elif kind == "close":
            if self._open:
                self._shut()
                self._drop_outbox()
                self._notify_close(arg)
        elif kind == "resume_writing":
            if self._open and self._resume_due:
                self._resume_due = False
                self._flow_call("handle_resume_writing")
        else:  # "closed": already shut, only the handler is left to tell
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
        _report(what, exc)
        if self._open:
            self._close_now()
            self._notify_close(f"{what} raised {type(exc).__name__}: {exc}")

    def _notify_close(self, reason: Any) -> None:
        handle_close = getattr(self._handler, "handle_close", None)
        if handle_close is None:
            return
        try:
            handle_close(self, reason)
        except Exception as exc:
            _report("handle_close", exc)


def _discard(events: collections.deque) -> None:
    """Drop queued events; the peer's buffer no longer holds its input."""
    dropped = list(events)
    events.clear()
    for kind, arg, sender in dropped:
        if kind == "input" and sender is not None:
            sender._credit(len(arg))


def _close_iterator(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        _call(close, "closing a writelines iterator")


class TextConnection(Connection):
    """A `Connection` whose peer prints the data as text."""

    printing_handler = TextPrintingHandler


class ServerConnection(Connection):
    """The server end of a connection made through a `Listener`."""

    def _setup(self, network: Network,  # type: ignore[override]
               listener: Listener) -> None:
        super()._setup(network)
        self.control = listener

    def _shut(self) -> None:
        super()._shut()
        self.control._closed(self)


def _link(a: Connection, b: Connection) -> None:
    a.peer, b.peer = b, a


# Listeners -----------------------------------------------------------------

class Listener:
    """Accepts connections for ``server``; made by `listener`."""

    def __init__(self, network: Network, address: Any,
                 server: Callable[[Any], Any]) -> None:
        self.address = address
        self._network = network
        self._server = server
        self._accepting = True
        self._connections: list[ServerConnection] = []
        self._close_handler: Callable[[Listener], Any] | None = None

    def __repr__(self) -> str:
        return f"<ngi.testing.Listener {self.address!r}>"

    def connect(self, handler: Any = None) -> Connection | None:
        """Connect to this listener directly and return the client end.

        Without ``handler`` the client end prints what the server sends;
        with one, ``handler.connected`` gets the client end.  This connect
        is never deferred, delayed or refused.
        """
        if not self._accepting:
            if handler is None:
                raise ConnectionFailed("the listener is closed")
            _call(handler.failed_connect, "failed_connect",
                  "the listener is closed")
            return None
        client = self._accept()
        if handler is None:
            client.set_handler(PrintingHandler())
        else:
            _connected(handler, client)
        return client

    def _accept(self) -> Connection:
        """Make a connection, let the server set its handler, return the
        client end (whose handler is not set yet)."""
        server = ServerConnection._bare(self._network, self)
        client = Connection._bare(self._network)
        _link(client, server)
        client.peer_address = self.address
        self._connections.append(server)
        try:
            self._server(server)
        except Exception as exc:
            _report("the server callable", exc)
            server.close()
        return client

    def connections(self) -> list[ServerConnection]:
        """The open server connections, as a list (a snapshot)."""
        return list(self._connections)

    def close(self, handler: Callable[[Listener], Any] | None = None) -> None:
        """Stop accepting; close the connections now, or, with ``handler``,
        call ``handler(self)`` once the last one has closed."""
        if self._accepting:
            self._accepting = False
            self._network._unbind(self._network._listeners, self)
        if handler is None:
            for connection in list(self._connections):
                connection._stop("stopped")
        elif self._connections:
            self._close_handler = handler
        else:
            _call(handler, "the listener close handler", self)

    def _closed(self, connection: ServerConnection) -> None:
        self._connections.remove(connection)
        if not self._connections and self._close_handler is not None:
            handler, self._close_handler = self._close_handler, None
            _call(handler, "the listener close handler", self)


class UDPListener:
    """Receives datagrams sent with `udp`; made by `udp_listener`."""

    def __init__(self, network: Network, address: Any,
                 handler: Callable[[Any, bytes], Any],
                 buffer_size: int) -> None:
        self.address = address
        self._network = network
        self._handler = handler
        self._buffer_size = buffer_size

    def __repr__(self) -> str:
        return f"<ngi.testing.UDPListener {self.address!r}>"

    def close(self) -> None:
        self._network._unbind(self._network._udp_listeners, self)

    def _receive(self, data: bytes) -> None:
        _call(self._handler, "the UDP handler", TEST_ADDRESS,
              data[:self._buffer_size])


class Peer:
    """A connector that reaches ``server`` at ``address``: each call makes a
    new connection; other addresses are connected as by `connect`."""

    def __init__(self, network: Network, address: Any,
                 server: Callable[[Any], Any]) -> None:
        self.address = address
        self.listener = Listener(network, address, server)
        self._network = network

    def __call__(self, address: Any, handler: Any) -> None:
        if address == self.address:
            self._network._dial(address, handler, self.listener._accept)
        else:
            self._network.connect(address, handler)


class Timer:
    """A pending `Network.call_later`; ``cancel()`` stops it."""

    def __init__(self, when: float, func: Callable[..., Any],
                 args: tuple) -> None:
        self.when = when  # the network time it is due at
        self.cancelled = False
        self._func = func
        self._args = args

    def __repr__(self) -> str:
        state = " cancelled" if self.cancelled else ""
        return f"<ngi.testing.Timer at {self.when}{state}>"

    def cancel(self) -> None:
        """Do not run it; a timer that ran already is left alone."""
        self.cancelled = True

    def _run(self) -> None:
        func, args = self._func, self._args
        self._func = self._args = None  # run once; free what it holds
        if func is not None:
            _call(func, "a timer callback", *args)


def _call(func: Callable[..., Any], what: str, *args: Any) -> None:
    """Call an application callback, reporting what it raises."""
    try:
        func(*args)
    except Exception as exc:
        _report(what, exc)


def _connected(handler: Any, connection: Connection) -> None:
    try:
        handler.connected(connection)
    except Exception as exc:
        _report("connected", exc)
        connection.close()


# The network ---------------------------------------------------------------

class Network:
    """A simulated network: an `IImplementation` with its own listeners,
    virtual clock, and rules for what crosses it.

    ``chunk_size=n`` splits every write into pieces of at most ``n`` bytes,
    each its own ``handle_input``; ``chunk_size='random'`` splits at random
    points, reproducibly from ``seed`` (by default a random seed, kept in
    ``network.seed`` so a failure can be replayed).  This shows whether
    handlers assume record boundaries.

    ``deferred=True`` holds everything that crosses the network (data,
    closes, connects, datagrams) until `pump` or `run_until_idle`, so a
    test can look at the state in between and see what each round does.
    """

    def __init__(self, chunk_size: int | str | None = None,
                 seed: int | None = None, deferred: bool = False) -> None:
        if chunk_size is not None and chunk_size != "random" and (
                not isinstance(chunk_size, int)
                or isinstance(chunk_size, bool) or chunk_size < 1):
            raise ValueError("chunk_size must be None, a positive int or "
                             f"'random', got {chunk_size!r}")
        self.chunk_size = chunk_size
        self.seed = seed if seed is not None else random.randrange(2 ** 32)
        self.deferred = bool(deferred)
        self._random = random.Random(self.seed)
        self._transit: list = []  # (function, args): deferred deliveries
        self._now = 0.0
        self._timers: list = []  # heap of (when, sequence, Timer)
        self._timer_sequence = itertools.count()
        self._listeners: dict[Any, Listener] = {}
        self._udp_listeners: dict[Any, UDPListener] = {}
        self._connectable: dict[Any, collections.deque] = {}
        self._refused: set[Any] = set()
        self._connect_delays: dict[Any, float] = {}
        self._failing: set[Any] = set()  # addresses in failed_connect
        self._counter = itertools.count(1)

    def __repr__(self) -> str:
        return (f"<ngi.testing.Network chunk_size={self.chunk_size!r} "
                f"seed={self.seed} deferred={self.deferred}>")

    # -- IImplementation ----------------------------------------------------

    def connect(self, address: Any, handler: Any) -> None:
        """Connect ``handler`` to what ``address`` leads to, if anything."""
        _check_address(address)
        self._dial(address, handler, None)

    def listener(self, address: Any, server: Any = None) -> Listener:
        """Listen at ``address``; ``listener(server)`` picks a fresh one."""
        if server is None and callable(address):
            address, server = None, address
        if not callable(server):
            raise TypeError("listener() expects a server callable, got "
                            f"{server!r}")
        address = self._bind_address(self._listeners, address)
        listener = self._listeners[address] = Listener(self, address, server)
        return listener

    def udp(self, address: Any, data: Any) -> None:
        """Send a datagram; as with UDP, it is lost if nobody listens."""
        data = _as_bytes(data, "udp()")
        _check_address(address)
        self._later(self._datagram, address, data)

    def udp_listener(self, address: Any, handler: Callable[[Any, bytes], Any],
                     buffer_size: int = 4096) -> UDPListener:
        """Call ``handler('<test>', data)`` for each datagram to ``address``."""
        if not callable(handler):
            raise TypeError("udp_listener() expects a callable handler, got "
                            f"{handler!r}")
        if not isinstance(buffer_size, int) or buffer_size < 1:
            raise ValueError("buffer_size must be a positive int, got "
                             f"{buffer_size!r}")
        address = self._bind_address(self._udp_listeners, address)
        receiver = UDPListener(self, address, handler, buffer_size)
        self._udp_listeners[address] = receiver
        return receiver

    def call_later(self, seconds: float, func: Callable[..., Any],
                   *args: Any) -> Timer:
        """Run ``func(*args)`` once `advance` has moved the clock
        ``seconds`` on; return a `Timer` to cancel it."""
        seconds = _seconds("call_later()", seconds, negative_ok=True)
        if not callable(func):
            raise TypeError(f"call_later() expects a callable, got {func!r}")
        timer = Timer(self._now + seconds, func, args)
        heapq.heappush(self._timers,
                       (timer.when, next(self._timer_sequence), timer))
        return timer

    # -- scripting ----------------------------------------------------------

    def connectable(self, address: Any, connection: Connection) -> None:
        """Hand ``connection`` to the next ``connect(address, ...)``."""
        _check_address(address)
        self._connectable.setdefault(address, collections.deque()).append(
            connection)

    def peer(self, address: Any, server: Callable[[Any], Any]) -> Peer:
        """A connector whose connects to ``address`` always reach
        ``server``, without registering a listener."""
        _check_address(address)
        return Peer(self, address, server)

    # -- time ---------------------------------------------------------------

    def time(self) -> float:
        """The virtual time, in seconds: 0.0 at first."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock on, running the timers that fall due, in
        deadline order (the clock reads each one's deadline as it runs)."""
        end = self._now + _seconds("advance()", seconds)
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self._now = max(self._now, when)
                timer._run()
        self._now = max(self._now, end)

    # -- deferred delivery --------------------------------------------------

    def pump(self) -> bool:
        """Deliver what was sent before this call (one hop); what handlers
        send meanwhile waits for the next round.  True if anything moved."""
        batch, self._transit = self._transit, []
        for function, args in batch:
            function(*args)
        return bool(batch)

    def run_until_idle(self, max_rounds: int = 10_000) -> int:
        """Pump until nothing is in transit; return the rounds used.

        ``RuntimeError`` if still busy after ``max_rounds``: the handlers
        keep each other busy forever (a livelock).  Timers do not count:
        they wait for `advance`.
        """
        rounds = 0
        while self._transit:
            if rounds >= max_rounds:
                raise RuntimeError(f"{self!r} was still busy after "
                                   f"{max_rounds} rounds")
            self.pump()
            rounds += 1
        return rounds

    # -- faults -------------------------------------------------------------

    def refuse(self, address: Any) -> None:
        """Make connects to ``address`` fail (with a ConnectionRefusedError),
        even if something listens there, until `restore`."""
        _check_address(address)
        self._refused.add(address)

    def delay_connect(self, address: Any, seconds: float) -> None:
        """Complete connects to ``address`` (or fail them, if refused) only
        once the clock has moved ``seconds`` on, until `restore`."""
        _check_address(address)
        self._connect_delays[address] = _seconds("delay_connect()", seconds)

    def restore(self, address: Any) -> None:
        """Undo `refuse` and `delay_connect` for ``address``."""
        self._refused.discard(address)
        self._connect_delays.pop(address, None)

    # -- inside -------------------------------------------------------------

    def _later(self, function: Callable[..., Any], *args: Any) -> None:
        """Call now, or on the next pump if the network is deferred."""
        if self.deferred:
            self._transit.append((function, args))
        else:
            function(*args)

    def _send(self, to: Connection, kind: str, arg: Any,
              sender: Connection | None) -> None:
        self._later(to._arrive, kind, arg, sender)

    def _pieces(self, data: bytes) -> list[bytes]:
        """Split one write as the network's ``chunk_size`` says."""
        size = self.chunk_size
        if size is None:
            return [data]
        if size != "random":
            return [data[i:i + size] for i in range(0, len(data), size)]
        pieces = []
        start = 0
        while start < len(data):
            end = start + self._random.randint(1, len(data) - start)
            pieces.append(data[start:end])
            start = end
        return pieces

    def _dial(self, address: Any, handler: Any,
              accept: Callable[[], Connection] | None) -> None:
        """Complete a connect now, on the next pump, or after its delay."""
        delay = self._connect_delays.get(address)
        if delay is not None:
            self.call_later(delay, self._complete_connect, address, handler,
                            accept)
        else:
            self._later(self._complete_connect, address, handler, accept)

    def _complete_connect(self, address: Any, handler: Any,
                          accept: Callable[[], Connection] | None) -> None:
        if address in self._refused:
            self._fail_connect(address, handler, ConnectionRefusedError(
                errno.ECONNREFUSED, f"connection refused: {address!r}"))
            return
        if accept is not None:
            _connected(handler, accept())
            return
        queued = self._connectable.get(address)
        if queued:
            connection = queued.popleft()
            if not queued:
                del self._connectable[address]
            _connected(handler, connection)
            return
        found = self._listeners.get(address)
        if found is not None:
            _connected(handler, found._accept())
            return
        self._fail_connect(address, handler, "no such server")

    def _fail_connect(self, address: Any, handler: Any, reason: Any) -> None:
        if address in self._failing:
            # failed_connect is retrying; calling it again would recurse
            # forever.  A real network would fail later, from the loop.
            print(f"ngi.testing: connect({address!r}) was called from "
                  "failed_connect for the same address; giving up")
            return
        self._failing.add(address)
        try:
            _call(handler.failed_connect, "failed_connect", reason)
        finally:
            self._failing.discard(address)

    def _datagram(self, address: Any, data: bytes) -> None:
        receiver = self._udp_listeners.get(address)
        if receiver is not None:
            receiver._receive(data)

    def _bind_address(self, registry: dict, address: Any) -> Any:
        """Return the address to register at: free, or a fresh one."""
        if address is None:
            address = (TEST_ADDRESS, next(self._counter))
            while address in registry:
                address = (TEST_ADDRESS, next(self._counter))
            return address
        _check_address(address)
        if address in registry:
            raise OSError(errno.EADDRINUSE,
                          f"address already in use: {address!r}")
        return address

    @staticmethod
    def _unbind(registry: dict, owner: Any) -> None:
        if registry.get(owner.address) is owner:
            del registry[owner.address]


network = Network()  # the default network, used by the functions below


def _default_network() -> Network:
    return network


connect = network.connect
listener = network.listener
udp = network.udp
udp_listener = network.udp_listener
call_later = network.call_later
connectable = network.connectable
peer = network.peer
