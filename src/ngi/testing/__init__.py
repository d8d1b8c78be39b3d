"""The testing implementation: NGI in memory, with no sockets and no threads.

Application code written against the NGI interfaces can be tested by passing
it this module instead of `ngi.net`.  Everything happens synchronously, in
the calling thread: a ``write`` on one end of a connection calls the other
end's ``handle_input`` before it returns (unless that handler is busy, see
below), so a test can make a call and check the outcome on the next line.

- `Connection` (and `TextConnection`) make a connected pair: test your
  handler on one end, and by default the other end prints what it gets.
- `listener`, `connect`, `udp` and `udp_listener` work like a real
  implementation's, with addresses that are just hashable keys.
- `connectable`, `peer`, `Connection.test_input` and
  `Connection.test_close` script the other side of a conversation.

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
- ``writelines`` consumes its iterable at once, in the call.

Choices made where the API is silent: close reasons are ``'closed'`` (the
peer closed), ``'stopped'`` (the listener closed) and ``'<method> raised
<Name>: <message>'`` (a handler failed); the client end of a connection made
through a listener has the listener's address as ``peer_address``, every
other end has ``'<test>'``.
"""
from __future__ import annotations

import collections
import errno
import itertools
import logging
import traceback
from typing import Any, Callable, Iterable

from ngi.interfaces import ConnectionClosed, ConnectionFailed

__all__ = [
    "Connection", "TextConnection", "ServerConnection",
    "PrintingHandler", "TextPrintingHandler",
    "Listener", "UDPListener", "Peer",
    "connect", "listener", "udp", "udp_listener", "connectable", "peer",
]

logger = logging.getLogger(__name__)
# Errors are printed already; without this, Python's last-resort handler
# would print them a second time, to stderr, when logging is not set up.
logger.addHandler(logging.NullHandler())

TEST_ADDRESS = "<test>"  # the address every unnamed end appears to have


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


# Printing handlers ---------------------------------------------------------

class PrintingHandler:
    """Print what arrives, so a doctest or capsys can check it.

    Data is shown as its ``repr`` in 50-character pieces: ``-> `` before
    the first and ``.> `` before the rest.
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
    under test writes shows up in the test's output.
    """

    printing_handler = PrintingHandler

    def __init__(self, peer_handler: Any = None) -> None:
        self._setup()
        other = Connection._bare()
        _link(self, other)
        other.set_handler(peer_handler if peer_handler is not None
                          else self.printing_handler())

    @classmethod
    def _bare(cls, *args: Any) -> Connection:
        """A connection without a peer, for the implementation to link."""
        connection = cls.__new__(cls)
        connection._setup(*args)
        return connection

    def _setup(self) -> None:
        self.peer: Connection = self
        self.peer_address: Any = TEST_ADDRESS
        self._handler: Any = None
        self._open = True
        self._events: collections.deque = collections.deque()
        self._running = False

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
        """Pass ``data`` to the peer's handler (or its queue)."""
        data = _as_bytes(data, "write()")
        self._check_open()
        if data:
            self.peer._receive("input", data)

    def writelines(self, data: Iterable[Any]) -> None:
        """Write each item now; a bad item or a failing iterator goes to
        ``handle_exception``, because in a real implementation it surfaces
        only later, while the output drains."""
        if isinstance(data, (str, bytes, bytearray, memoryview)):
            raise TypeError("writelines() expects an iterable of bytes-like "
                            f"objects, got {type(data).__name__}; use "
                            "write() for a single chunk")
        self._check_open()
        items = iter(data)
        try:
            for item in items:
                item = _as_bytes(item, "writelines()", "items")
                if not self._open:  # a handler closed us meanwhile
                    break
                if item:
                    self.peer._receive("input", item)
        except Exception as exc:
            close = getattr(items, "close", None)
            if close is not None:
                close()
            self._receive("exception", exc)

    def close(self) -> None:
        """Close this end; the peer hears of it, this end's handler not."""
        if not self._open:
            return
        self._shut()
        self._events.clear()  # never to be delivered: free it now
        self.peer._receive("close", "closed")

    # -- scripting the peer -------------------------------------------------

    def test_input(self, data: Any) -> None:
        """Deliver ``data`` to this end's handler as if the peer sent it."""
        data = _as_bytes(data, "test_input()")
        if data:
            self._receive("input", data)

    def test_close(self, reason: Any = "closed") -> None:
        """Close this end as if from outside, with ``reason``."""
        self._receive("close", reason)

    # -- delivery -----------------------------------------------------------

    def _check_open(self) -> None:
        if not self._open:
            raise ConnectionClosed("the connection is closed")

    def _shut(self) -> None:
        """Mark this end closed (subclasses also tell their listener)."""
        self._open = False

    def _stop(self, reason: Any) -> None:
        """Close now, from the implementation's side: both handlers hear."""
        if not self._open:
            return
        self._shut()
        self._events.clear()
        self.peer._receive("close", "closed")
        self._receive("closed", reason)

    def _receive(self, kind: str, arg: Any) -> None:
        self._events.append((kind, arg))
        self._deliver()

    def _deliver(self) -> None:
        """Hand queued events to the handler, one call at a time."""
        if self._handler is None or self._running:
            return
        self._running = True
        try:
            while self._events:
                self._dispatch(*self._events.popleft())
        finally:
            self._running = False

    def _dispatch(self, kind: str, arg: Any) -> None:
        if kind == "input":
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
                self._notify_close(arg)
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
            self.close()
            self._notify_close(f"{what} raised {type(exc).__name__}: {exc}")

    def _notify_close(self, reason: Any) -> None:
        handle_close = getattr(self._handler, "handle_close", None)
        if handle_close is None:
            return
        try:
            handle_close(self, reason)
        except Exception as exc:
            _report("handle_close", exc)


class TextConnection(Connection):
    """A `Connection` whose peer prints the data as text."""

    printing_handler = TextPrintingHandler


class ServerConnection(Connection):
    """The server end of a connection made through a `Listener`."""

    def _setup(self, listener: Listener) -> None:  # type: ignore[override]
        super()._setup()
        self.control = listener

    def _shut(self) -> None:
        super()._shut()
        self.control._closed(self)


def _link(a: Connection, b: Connection) -> None:
    a.peer, b.peer = b, a


# Listeners -----------------------------------------------------------------

class Listener:
    """Accepts connections for ``server``; made by `listener`."""

    def __init__(self, network: _Network, address: Any,
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
        with one, ``handler.connected`` gets the client end.
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
        server = ServerConnection._bare(self)
        client = Connection._bare()
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

    def __init__(self, network: _Network, address: Any,
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

    def __init__(self, network: _Network, address: Any,
                 server: Callable[[Any], Any]) -> None:
        self.address = address
        self.listener = Listener(network, address, server)
        self._network = network

    def __call__(self, address: Any, handler: Any) -> None:
        if address == self.address:
            _connected(handler, self.listener._accept())
        else:
            self._network.connect(address, handler)


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

class _Network:
    """The registry of listeners that connects and datagrams look up.

    The module-level functions are bound to one instance; keeping the state
    here lets separate networks (with their own rules) exist side by side.
    """

    def __init__(self) -> None:
        self._listeners: dict[Any, Listener] = {}
        self._udp_listeners: dict[Any, UDPListener] = {}
        self._connectable: dict[Any, collections.deque] = {}
        self._failing: set[Any] = set()  # addresses in failed_connect
        self._counter = itertools.count(1)

    def connect(self, address: Any, handler: Any) -> None:
        """Connect ``handler`` to what ``address`` leads to, if anything."""
        _check_address(address)
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
        if address in self._failing:
            # failed_connect is retrying; calling it again would recurse
            # forever.  A real network would fail later, from the loop.
            print(f"ngi.testing: connect({address!r}) was called from "
                  "failed_connect for the same address; giving up")
            return
        self._failing.add(address)
        try:
            _call(handler.failed_connect, "failed_connect", "no such server")
        finally:
            self._failing.discard(address)

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
        receiver = self._udp_listeners.get(address)
        if receiver is not None:
            receiver._receive(data)

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


_network = _Network()
connect = _network.connect
listener = _network.listener
udp = _network.udp
udp_listener = _network.udp_listener
connectable = _network.connectable
peer = _network.peer
