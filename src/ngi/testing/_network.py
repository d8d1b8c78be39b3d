"""The simulated network: `Network`, and what it makes besides connections.

A `Network` carries what connections write (split as its ``chunk_size``
says, held while it is ``deferred``), completes connects, delivers
datagrams and keeps a virtual clock for its timers.
"""
from __future__ import annotations

import collections
import errno
import heapq
import itertools
import random
from typing import Any, Callable

from ngi import _rules, _tls
from ngi.interfaces import ConnectionFailed
from ngi.testing import _secure
from ngi.testing._connection import (
    TEST_ADDRESS, Connection, Event, ServerConnection, link)
from ngi.testing._printing import PrintingHandler, UDPPrintingHandler
from ngi.testing._reporting import call, logger, report


def _check_address(address: Any) -> None:
    try:
        hash(address)
    except TypeError:
        raise TypeError("ngi.testing addresses must be hashable, got "
                        f"{type(address).__name__}") from None


def _connected(handler: Any, connection: Connection) -> None:
    try:
        handler.connected(connection)
    except Exception as exc:
        report("connected", exc)
        connection.close()


class Listener:
    """Accepts connections for ``server``; made by `listener`.

    With TLS, a connection reaches ``server`` (and `connections`) once its
    handshake is done; one whose handshake fails is logged and dropped,
    and `close` drops those still in their handshake.
    """

    def __init__(self, network: Network, address: Any,
                 server: Callable[[Any], Any],
                 tls: _secure.Options | None = None) -> None:
        self.address = address
        self._network = network
        self._server = server
        self._tls = tls
        self._accepting = True
        self._connections: list[Connection] = []
        self._handshaking: list[Connection] = []
        self._close_handler: Callable[[Listener], Any] | None = None

    def __repr__(self) -> str:
        return f"<ngi.testing.Listener {self.address!r}>"

    def connect(self, connection: Connection | None = None,
                handler: Any = None,
                client_address: Any = None) -> Connection | None:
        """Connect to this listener directly, as zc.ngi's did.

        With no arguments, return the client end, which prints what the
        server sends.  A given ``connection`` becomes the server side
        instead (its peer is the client end); ``handler.connected`` gets
        the client end; ``client_address`` is the server side's
        ``peer_address``.  With a connection or a handler, return None.
        This connect is never deferred, delayed or refused.
        """
        if connection is not None and not isinstance(connection, Connection):
            raise TypeError("listener.connect() expects an ngi.testing "
                            "Connection, to be the server side, got "
                            f"{connection!r}; pass a connect handler as "
                            "handler=")
        if connection is not None and (not connection
                                       or connection._listener is not None):
            raise ValueError("listener.connect() expects an open connection "
                             f"that no listener has, got {connection!r}")
        if handler is not None:
            handler = _rules.connect_handler(handler, self.address,
                                             "listener.connect()", logger)
        if not self._accepting:
            if handler is None:
                raise ConnectionFailed("the listener is closed")
            call(handler.failed_connect, "failed_connect",
                 "the listener is closed")
            return None
        client = self._accept(client_address, connection)
        if handler is not None:
            _connected(handler, client)
        elif connection is None:
            client.set_handler(PrintingHandler())
            return client
        return None

    connector = connect

    def _accept(self, client_address: Any = None,
                server: Connection | None = None) -> Connection:
        """Make a connection (or take ``server`` as its server side), let
        the server callable set its handler, return the client end (whose
        handler is not set yet, unless ``server`` was given)."""
        if server is None:
            server = ServerConnection._bare(self._network, self)
            client = Connection._bare(self._network)
            link(client, server)
            if self.address is not None:
                client.peer_address = self.address
        else:  # zc.ngi's listener.connect(connection): now a server side
            server.control = server._listener = self  # type: ignore[attr-defined]
            client = server.peer
        if client_address is not None:
            server.peer_address = client_address
        if self._tls is None:
            self._serve(server)
        else:
            self._handshaking.append(server)
            self._tls.layer().attach(server, self._secured,
                                     _secure.log_failed_handshake)
        return client

    def _secured(self, server: Connection) -> None:
        self._handshaking.remove(server)
        self._serve(server)

    def _serve(self, server: Connection) -> None:
        self._connections.append(server)
        try:
            self._server(server)
        except Exception as exc:
            report("the server callable", exc)
            server.close()
        else:
            if server and server.handler is None:
                logger.warning(_rules.NO_HANDLER, self._server, server)

    def connections(self) -> list[Connection]:
        """The open server connections, as a list (a snapshot)."""
        return list(self._connections)

    def close(self, handler: Callable[[Listener], Any] | None = None) -> None:
        """Stop accepting; close the connections now, or, with ``handler``,
        call ``handler(self)`` once the last one has closed (telling each
        handler that has ``handle_drain``, once)."""
        draining = self._accepting and handler is not None
        if self._accepting:
            self._accepting = False
            self._network._unbind(self._network._listeners, self)
        for connection in list(self._handshaking):  # never served: dropped
            connection._close_now(tell_peer=True, reason="stopped")
        if handler is None:
            for connection in list(self._connections):
                connection._stop("stopped")
        elif self._connections:
            self._close_handler = handler
            if draining:
                for connection in list(self._connections):
                    connection._drain()  # handle_drain: time to finish
        else:
            call(handler, "the listener close handler", self)

    def _closed(self, connection: Connection) -> None:
        if connection in self._handshaking:
            self._handshaking.remove(connection)
            return
        self._connections.remove(connection)
        if not self._connections and self._close_handler is not None:
            handler, self._close_handler = self._close_handler, None
            call(handler, "the listener close handler", self)


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
        call(self._handler, "the UDP handler", TEST_ADDRESS,
             data[:self._buffer_size])


class Peer:
    """A connector that reaches ``server`` at ``address``: each call makes a
    new connection; other addresses are connected as by `connect`."""

    def __init__(self, network: Network, address: Any,
                 server: Callable[[Any], Any]) -> None:
        self.address = address
        self.listener = Listener(network, address, server)
        self._network = network

    def __call__(self, address: Any, handler: Any,
                 client_address: Any = None) -> None:
        if address == self.address:
            handler = _rules.connect_handler(handler, address, "connect()",
                                             logger)
            self._network._dial(address, handler, self.listener._accept,
                                client_address)
        else:
            self._network.connect(address, handler, client_address)


class Timer:
    """A pending `Network.call_later`; ``cancel()`` stops it."""

    def __init__(self, when: float, func: Callable[..., Any],
                 args: tuple[Any, ...]) -> None:
        self.when = when  # the network time it is due at
        self.cancelled = False
        self._pending: tuple[Callable[..., Any], tuple[Any, ...]] | None = (
            func, args)

    def __repr__(self) -> str:
        state = " cancelled" if self.cancelled else ""
        return f"<ngi.testing.Timer at {self.when}{state}>"

    def cancel(self) -> None:
        """Do not run it; a timer that ran already is left alone."""
        self.cancelled = True

    def _run(self) -> None:
        pending, self._pending = self._pending, None  # run once; free it
        if pending is not None:
            func, args = pending
            call(func, "a timer callback", *args)


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
        # (function, args): deferred deliveries
        self._transit: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._now = 0.0
        self._timers: list[tuple[float, int, Timer]] = []  # a heap
        self._timer_sequence = itertools.count()
        self._listeners: dict[Any, Listener] = {}
        self._udp_listeners: dict[Any, UDPListener] = {}
        self._connectable: dict[Any, collections.deque[Connection]] = {}
        self._refused: set[Any] = set()
        self._connect_delays: dict[Any, float] = {}
        self._failing: set[Any] = set()  # addresses in failed_connect
        self._counter = itertools.count(1)

    def __repr__(self) -> str:
        return (f"<ngi.testing.Network chunk_size={self.chunk_size!r} "
                f"seed={self.seed} deferred={self.deferred}>")

    # -- IImplementation ----------------------------------------------------

    def connect(self, address: Any, handler: Any,
                client_address: Any = None, *, ssl: Any = None,
                server_hostname: str | None = None,
                handshake_timeout: float = _tls.HANDSHAKE_TIMEOUT,
                shutdown_timeout: float = _tls.SHUTDOWN_TIMEOUT) -> None:
        """Connect ``handler`` to what ``address`` leads to, if anything;
        ``client_address`` is the server side's ``peer_address``.

        With ``ssl`` (an ``ssl.SSLContext``, or True for the default one),
        ``connected`` comes after the TLS handshake, and a failed handshake
        or certificate check is ``failed_connect`` with the ``ssl`` error.
        """
        _check_address(address)
        tls = _secure.client_options(ssl, server_hostname, address,
                                     handshake_timeout, shutdown_timeout)
        handler = _rules.connect_handler(handler, address, "connect()", logger)
        self._dial(address, handler, None, client_address, tls)

    connector = connect  # zc.ngi's name

    def listener(self, address: Any, server: Any = None, *, ssl: Any = None,
                 handshake_timeout: float = _tls.HANDSHAKE_TIMEOUT,
                 shutdown_timeout: float = _tls.SHUTDOWN_TIMEOUT) -> Listener:
        """Listen at ``address`` (None: a fresh one).  ``listener(server)``
        is anonymous, as in zc.ngi: its ``address`` is None and only its
        own `Listener.connect` reaches it.

        With ``ssl``, an ``ssl.SSLContext`` holding the server's
        certificate, ``server`` gets each connection once its TLS
        handshake is done.
        """
        tls = _secure.server_options(ssl, handshake_timeout, shutdown_timeout)
        if server is None and callable(address):
            return Listener(self, None, address, tls)
        if not callable(server):
            raise TypeError("listener() expects a server callable, got "
                            f"{server!r}")
        address = self._bind_address(self._listeners, address)
        listener = self._listeners[address] = Listener(self, address, server,
                                                       tls)
        return listener

    def udp(self, address: Any, data: Any) -> None:
        """Send a datagram; as with UDP, it is lost if nobody listens."""
        data = _rules.as_bytes(data, "udp()")
        _check_address(address)
        self._later(self._datagram, address, data)

    def udp_listener(self, address: Any,
                     handler: Callable[[Any, bytes], Any] | None = None,
                     buffer_size: int = 4096) -> UDPListener:
        """Call ``handler('<test>', data)`` for each datagram to ``address``;
        without a handler, print each one (as zc.ngi did)."""
        if handler is not None and not callable(handler):
            raise TypeError("udp_listener() expects a callable handler, got "
                            f"{handler!r}")
        _rules.positive_int("buffer_size", buffer_size)
        address = self._bind_address(self._udp_listeners, address)
        if handler is None:
            handler = UDPPrintingHandler(address)
        receiver = UDPListener(self, address, handler, buffer_size)
        self._udp_listeners[address] = receiver
        return receiver

    def call_later(self, seconds: float, func: Callable[..., Any],
                   *args: Any) -> Timer:
        """Run ``func(*args)`` once `advance` has moved the clock
        ``seconds`` on; return a `Timer` to cancel it."""
        seconds = _rules.seconds("call_later()", seconds, negative_ok=True)
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
        end = self._now + _rules.seconds("advance()", seconds)
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
        self._connect_delays[address] = _rules.seconds("delay_connect()",
                                                       seconds)

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

    def _send(self, to: Connection, kind: Event, arg: Any,
              sender: Connection | None) -> None:
        self._later(to._arrive, kind, arg, sender)

    def _pieces(self, data: bytes) -> list[bytes]:
        """Split one write as the network's ``chunk_size`` says."""
        size = self.chunk_size
        if size is None:
            return [data]
        if isinstance(size, int):  # not 'random'
            return [data[i:i + size] for i in range(0, len(data), size)]
        pieces = []
        start = 0
        while start < len(data):
            end = start + self._random.randint(1, len(data) - start)
            pieces.append(data[start:end])
            start = end
        return pieces

    def _dial(self, address: Any, handler: Any,
              accept: Callable[[Any], Connection] | None,
              client_address: Any = None,
              tls: _secure.Options | None = None) -> None:
        """Complete a connect now, on the next pump, or after its delay."""
        delay = self._connect_delays.get(address)
        if delay is not None:
            self.call_later(delay, self._complete_connect, address, handler,
                            accept, client_address, tls)
        else:
            self._later(self._complete_connect, address, handler, accept,
                        client_address, tls)

    def _complete_connect(self, address: Any, handler: Any,
                          accept: Callable[[Any], Connection] | None,
                          client_address: Any,
                          tls: _secure.Options | None = None) -> None:
        if address in self._refused:
            self._fail_connect(address, handler, ConnectionRefusedError(
                errno.ECONNREFUSED, f"connection refused: {address!r}"))
            return
        if accept is not None:
            connection = accept(client_address)
        elif self._connectable.get(address):
            queued = self._connectable[address]
            connection = queued.popleft()
            if not queued:
                del self._connectable[address]
            if client_address is not None:
                connection.peer.peer_address = client_address
        elif address in self._listeners:
            connection = self._listeners[address]._accept(client_address)
        else:
            self._fail_connect(address, handler, "no such server")
            return
        if tls is None:
            _connected(handler, connection)
            return

        def failed(connection: Connection, error: Any) -> None:
            connection._close_now(tell_peer=True, reason=error)
            self._fail_connect(address, handler, error)

        tls.layer().attach(connection, lambda c: _connected(handler, c),
                           failed)

    def _fail_connect(self, address: Any, handler: Any, reason: Any) -> None:
        if address in self._failing:
            # failed_connect is retrying; calling it again would recurse
            # forever.  A real network would fail later, from the loop.
            print(f"ngi.testing: connect({address!r}) was called from "
                  "failed_connect for the same address; giving up")
            return
        self._failing.add(address)
        try:
            call(handler.failed_connect, "failed_connect", reason)
        finally:
            self._failing.discard(address)

    def _datagram(self, address: Any, data: bytes) -> None:
        receiver = self._udp_listeners.get(address)
        if receiver is not None:
            receiver._receive(data)

    def _bind_address(self, registry: dict[Any, Any], address: Any) -> Any:
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
    def _unbind(registry: dict[Any, Any],
                owner: Listener | UDPListener) -> None:
        address = owner.address
        if registry.get(address) is owner:
            del registry[address]
