"""The NGI interfaces, as runtime-checkable ``typing.Protocol`` classes.

This module is the contract: each method's docstring states the rule that
every implementation (``ngi.testing`` and ``ngi.net``) follows, and that the
conformance suite (`ngi.testing.conformance`) checks.

Application objects implement the *application* interfaces (handlers,
servers); ``ngi`` implementations provide the *implementation* interfaces
(connections, listeners, timers, implementations).

A connection handler must have ``handle_input``; its other methods are
optional, each looked up on its own when it is due, so a handler has only
those it needs.  They are separate protocols (`ICloseHandler`,
`IExceptionHandler`, `IFlowControlHandler`) that a type checker and a
reader can use, while ``isinstance(obj, IConnectionHandler)`` asks only for
``handle_input``::

    class Echo(IConnectionHandler, ICloseHandler):
        def handle_input(self, connection, data): connection.write(data)
        def handle_close(self, connection, reason): pass

Rules for all handler calls: a handler's methods are never called from two
threads at once, and with ``ngi.net`` they always run on the loop's thread.
If ``handle_input`` or ``handle_exception`` raises, the implementation logs
the exception (under ``ngi.net`` or ``ngi.testing``), closes the connection
and calls ``handle_close`` if the handler has one; with an application-run
loop (``ngi.net.Inline``) the exception also comes out of ``loop()``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol, runtime_checkable

__all__ = [
    "ConnectionFailed", "Timeout", "ConnectionClosed",
    "IConnectionHandler", "ICloseHandler", "IExceptionHandler",
    "IFlowControlHandler", "IDrainHandler", "IHandshakeHandler",
    "IClientConnectHandler", "IServer", "IUDPHandler",
    "IConnection", "IServerConnection", "IListener", "IUDPListener",
    "ITimer", "IImplementation", "IThreadedImplementation",
]


class ConnectionFailed(ConnectionError):
    """A connection could not be established.

    A ``ConnectionError`` (so an ``OSError``), as a refused socket connect
    is: ``except OSError`` catches both.
    """


class Timeout(TimeoutError):
    """A blocking operation did not finish in the time allowed.

    A ``TimeoutError``, as a socket's timeout is.
    """


class ConnectionClosed(ValueError):
    """An operation was attempted on a closed connection.

    A ``ValueError``, as writing to a closed file is.
    """


# Application interfaces ---------------------------------------------------

@runtime_checkable
class IConnectionHandler(Protocol):
    """Receives a connection's input; what `IConnection.set_handler` takes.

    Only ``handle_input`` is required; see `ICloseHandler`,
    `IExceptionHandler` and `IFlowControlHandler` for the optional methods.
    """

    def handle_input(self, connection: IConnection, data: bytes) -> None:
        """Handle ``data``, the next bytes from the peer.

        Input is a stream: no promise is made about record boundaries (one
        call may carry part of what the peer wrote in one call, or several
        of its writes together), and ``data`` is never empty.  Not called
        while reading is paused, nor after the connection closed.
        """


@runtime_checkable
class ICloseHandler(Protocol):
    """The optional ``handle_close`` method of a connection handler."""

    def handle_close(self, connection: IConnection, reason: Any) -> None:
        """The connection was closed from outside; called at most once.

        Never after the application's own `IConnection.close` or
        `IConnection.abort`.  ``reason`` is str-convertible: ``'closed'``
        when the peer closed (or shut down its sending side), ``'stopped'``
        when the listener was closed without a handler, an exception for a
        network error (the ``OSError``) or a broken limit (an adapter's
        ``LineTooLong``), or after a handler's own failure the exception or
        a description of it.  From then on the connection is false and
        writing raises `ConnectionClosed`.
        """


@runtime_checkable
class IExceptionHandler(Protocol):
    """The optional ``handle_exception`` method of a connection handler."""

    def handle_exception(self, connection: IConnection,
                         exception: Exception) -> None:
        """An item passed to ``writelines`` was not bytes-like, or the
        iterator raised ``exception``.

        If this returns normally, the connection stays open and the failed
        iterator is dropped.  If it raises, or the handler has no
        ``handle_exception``, the connection is closed and ``handle_close``
        is called.
        """


@runtime_checkable
class IFlowControlHandler(Protocol):
    """The optional flow-control methods of a connection handler (each may
    be present on its own), called as the connection's write buffer crosses
    the marks set with `IConnection.set_write_limits`.  Neither is called
    after the connection closed."""

    def handle_pause_writing(self, connection: IConnection) -> None:
        """The write buffer went above the high-water mark: write less.

        Called once per crossing, by the write (or ``writelines`` pull) that
        took it there, as asyncio's ``pause_writing`` is.
        """

    def handle_resume_writing(self, connection: IConnection) -> None:
        """After a pause, the write buffer drained to the low-water mark:
        writing may go on.  Called once per crossing."""


@runtime_checkable
class IHandshakeHandler(Protocol):
    """The optional ``handle_handshake`` method of a connection handler."""

    def handle_handshake(self, connection: IConnection) -> None:
        """The TLS handshake begun by `IConnection.start_tls` has completed:
        ``connection.ssl_object`` is set, and what was written since the
        call is on its way, encrypted.  (A failed one is ``handle_close``
        with the ``ssl`` error.)  Called once, on the loop thread."""


@runtime_checkable
class IDrainHandler(Protocol):
    """The optional ``handle_drain`` method of a connection handler."""

    def handle_drain(self, connection: IConnection) -> None:
        """The listener that accepted the connection is draining (its
        `IListener.close` was called with a handler, as ``ngi serve`` does
        on SIGTERM): finish and close soon.

        Called once, on the loop thread, for each open connection whose
        handler has it; an idle connection (a keep-alive client between
        requests) can close at once.  If it raises, the connection is
        closed as for ``handle_input``.
        """


@runtime_checkable
class IClientConnectHandler(Protocol):
    """Receives the result of `IImplementation.connect`: exactly one of
    its methods is called, once, on the loop thread.

    ``failed_connect`` is optional, as it was in zc.ngi: without it a
    failed connect is logged at WARNING (``ngi.net.client``, or
    ``ngi.testing``) with the address and the reason.
    """

    def connected(self, connection: IConnection) -> None:
        """The connection was established; set its handler here.

        If it raises, the exception is logged (``ngi.net.client``, or
        printed and logged by ``ngi.testing``) and the connection is
        closed; no ``handle_close`` follows.
        """

    def failed_connect(self, reason: Any) -> None:
        """The connection could not be established; ``reason`` is
        str-convertible (with ``ngi.net``, the ``OSError``)."""


@runtime_checkable
class IServer(Protocol):
    """A callable taking each connection a listener accepts.

    It calls ``connection.set_handler``.  An exception from it is logged and
    closes only that connection; the listener keeps accepting.  One that
    returns without setting a handler (or closing the connection) is
    logged at WARNING: nothing would ever be read from that connection.
    """

    def __call__(self, connection: IServerConnection) -> None: ...


@runtime_checkable
class IUDPHandler(Protocol):
    """A callable taking the sender's address and one datagram.

    An exception from it is logged and the listener keeps receiving.
    """

    def __call__(self, address: Any, data: bytes) -> None: ...


# Implementation interfaces ------------------------------------------------

@runtime_checkable
class IConnection(Protocol):
    """One end of a connection with separate input and output channels.

    ``write``, ``writelines``, ``close``, ``abort`` and the flow-control
    methods may be called from any thread.  Once the connection is closed
    (by the application, the peer, the network or the listener), it is
    false, and ``write`` and ``writelines`` raise `ConnectionClosed`, also
    right after the application's own ``close()`` while earlier data is
    still being sent.
    """

    @property
    def peer_address(self) -> Any:
        """The peer's address: for sockets, what ``getpeername()`` returns
        (kept after the close)."""

    def __bool__(self) -> bool:
        """True while the connection is open."""

    def set_handler(self, handler: IConnectionHandler) -> None:
        """Send this connection's events to ``handler`` from now on.

        Input, or a close, that arrived before a handler was set is
        delivered, in order, right after (``ngi.net`` reads nothing until a
        handler is set).  May be called again, from a handler's call, to
        switch handlers: later input goes to the new one.  ``TypeError``
        unless ``handler`` has a callable ``handle_input``.
        """

    def write(self, data: bytes) -> None:
        """Queue bytes-like ``data`` for sending; thread-safe, non-blocking.

        ``bytes``, ``bytearray`` or ``memoryview``; anything else (a
        ``str`` too) raises ``TypeError``.  What is sent is ``data`` as it
        was at the call.  Bytes written from one thread go out in the order
        written, and one call's bytes are never interleaved with another
        thread's.  An empty write sends nothing.  ``write`` never refuses:
        if the peer reads slower, the buffer grows (see
        ``write_buffer_size``).
        """

    def writelines(self, data: Iterable[bytes]) -> None:
        """Send each bytes-like item of the iterable ``data``, in order
        with the writes around it; thread-safe.

        Items are pulled lazily, as the output drains (about a high-water
        mark at a time), so a generator can stream a large body in bounded
        memory.  Passing one buffer (``bytes``, ``bytearray``,
        ``memoryview``) or a ``str`` raises ``TypeError`` in the call; an
        item that is not bytes-like, or an exception from the iterator, is
        reported later through `IExceptionHandler.handle_exception`.
        """

    def close(self) -> None:
        """Close after sending what was written; thread-safe, idempotent.

        Everything already passed to ``write`` and ``writelines`` is still
        sent before the connection closes.  No ``handle_close``, and no
        flow-control call, follows.
        """

    def abort(self) -> None:
        """Close now, dropping what is queued and not yet sent.

        For a peer that stopped reading.  No ``handle_close`` follows; the
        peer sees the connection close.  Idempotent.
        """

    @property
    def write_buffer_size(self) -> int:
        """Bytes written and not yet sent (handed to the kernel; with
        ``ngi.testing``, to the peer's handler)."""

    def set_write_limits(self, high: int | None = None,
                         low: int | None = None) -> None:
        """Set the write buffer's high- and low-water marks.

        asyncio's rules: by default 64 KiB and 16 KiB; ``high`` alone sets
        ``low`` to ``high // 4``, ``low`` alone sets ``high`` to
        ``4 * low``.  A mark that is not an int >= 0, or ``low`` above
        ``high``, raises ``ValueError``.  The new marks apply at once (see
        `IFlowControlHandler`).
        """

    def get_write_limits(self) -> tuple[int, int]:
        """``(high, low)``: the marks in force."""

    def pause_reading(self) -> None:
        """Hold input until `resume_reading`; idempotent, thread-safe.

        No ``handle_input`` is called meanwhile: what arrives waits (for
        ``ngi.net``, in the kernel, which slows the peer down).
        """

    def resume_reading(self) -> None:
        """Deliver the input held since `pause_reading`, and input from
        now on; idempotent."""

    @property
    def reading(self) -> bool:
        """True while the connection is open and reading is not paused."""

    @property
    def ssl_object(self) -> Any:
        """The ``ssl.SSLObject`` of a TLS connection (its version, cipher,
        peer certificate, ALPN protocol), None for plaintext.

        It belongs to the loop thread: use it in handler calls.  Read from
        another thread it can be caught mid-update (``version()`` is None
        while the loop handles post-handshake messages such as TLS 1.3
        session tickets); ``ssl.SSLObject`` is not thread-safe."""

    def start_tls(self, context: Any, server_side: bool = False,
                  server_hostname: str | None = None) -> None:
        """Upgrade this open plaintext connection to TLS, in place.

        What was written before leaves first, in plaintext; what is
        written after is sent encrypted once the handshake is done.  Input
        delivered before stays delivered; what arrives after is TLS.
        Success calls the handler's optional ``handle_handshake`` (see
        `IHandshakeHandler`); failure is ``handle_close`` with the ``ssl``
        error.  ``ValueError`` on a TLS connection, ``ConnectionClosed``
        on a closed one.  Also takes ``handshake_timeout`` and
        ``shutdown_timeout`` keywords (see `IImplementation.listener`).
        """


@runtime_checkable
class IServerConnection(IConnection, Protocol):
    """A connection accepted by a listener."""

    @property
    def control(self) -> IListener:
        """The `IListener` that accepted it."""


@runtime_checkable
class IListener(Protocol):
    """A listening endpoint: its address, its connections, and closing."""

    @property
    def address(self) -> Any:
        """The bound address (a requested port 0 is resolved)."""

    def connections(self) -> Iterable[IServerConnection]:
        """The open connections accepted by this listener."""

    def close(self, handler: Callable[[IListener], Any] | None = None) -> None:
        """Stop accepting, and close the connections or wait for them.

        Without ``handler``, close the listener and all its connections
        now: their handlers get ``handle_close(connection, 'stopped')``.
        With one, leave the open connections alone (their handlers'
        optional ``handle_drain`` is called, see `IDrainHandler`) and call
        ``handler(listener)`` once the last one has closed (at once if none
        is open); a later
        ``close()`` without a handler stops those still open.  A Unix
        socket's file is removed.  Thread-safe.
        """


@runtime_checkable
class IUDPListener(Protocol):
    """A UDP endpoint receiving datagrams."""

    @property
    def address(self) -> Any:
        """The bound address."""

    def close(self) -> None:
        """Stop receiving."""


@runtime_checkable
class ITimer(Protocol):
    """A call scheduled with `IImplementation.call_later`."""

    def cancel(self) -> None:
        """Do not make the call; harmless (and idempotent) once it ran or
        was cancelled.  Thread-safe with ``ngi.net``."""


@runtime_checkable
class IImplementation(Protocol):
    """What an NGI implementation provides.

    Thread-safe.  An invalid address raises ``TypeError`` or
    ``ValueError`` in the call, for each method alike.
    """

    def connect(self, address: Any, handler: IClientConnectHandler) -> None:
        """Connect to ``address``; later, on the loop thread,
        ``handler.connected(connection)`` or
        ``handler.failed_connect(reason)``.

        TLS keywords: ``ssl`` (an ``ssl.SSLContext``, or True for
        ``ssl.create_default_context()``), ``server_hostname`` (by default
        the address's host; required for an address without one),
        ``handshake_timeout`` (60 s) and ``shutdown_timeout`` (30 s).
        ``connected`` then comes after the handshake, and a failed
        handshake or certificate check is ``failed_connect`` with the
        ``ssl`` error.
        """

    def listener(self, address: Any, server: IServer) -> IListener:
        """Listen on ``address``, calling ``server`` for each connection.

        Binding happens in the call: a busy or forbidden address raises
        ``OSError`` here, and nothing is left open.  With ``ssl`` (a server
        ``ssl.SSLContext``), ``server`` is called once a connection's TLS
        handshake has completed; one that fails is logged at INFO and
        never reaches it.  ``handshake_timeout`` (60 s) bounds the
        handshake; after ``close()`` has sent everything and our
        ``close_notify``, the peer's is awaited ``shutdown_timeout`` (30 s)
        at most.  A peer that ends the stream without ``close_notify``
        closes with an ``ssl.SSLEOFError`` as the reason.
        """

    def udp(self, address: Any, data: bytes) -> None:
        """Send one bytes-like datagram (``TypeError`` for anything else)."""

    def udp_listener(self, address: Any, handler: IUDPHandler,
                     buffer_size: int = 4096) -> IUDPListener:
        """Receive datagrams, each truncated to ``buffer_size`` bytes, and
        pass them to ``handler(address, data)``."""

    def call_later(self, seconds: float, func: Callable[..., Any],
                   *args: Any) -> ITimer:
        """Call ``func(*args)`` on the loop thread after ``seconds`` (a
        negative delay means now).

        Timers run in deadline order; one that raises is logged and the
        others still run.  Returns an `ITimer` to cancel the call.
        """


@runtime_checkable
class IThreadedImplementation(IImplementation, Protocol):
    """An implementation whose loop other threads hand work to, and wait
    for: ``ngi.net``'s ``Implementation`` and ``Inline`` (and the
    ``ngi.net`` module).  ``ngi.testing`` runs in the caller's thread and
    has no such methods."""

    def call_from_thread(self, func: Callable[[], Any]) -> None:
        """Call ``func()`` on the loop thread, soon; thread-safe."""

    def wait(self, timeout: float | None = None) -> None:
        """Return once the loop is idle (nothing registered, no pending
        call or timer); raise `Timeout` if it is still busy after
        ``timeout`` seconds.  ``Inline`` runs the loop in the caller to get
        there."""
