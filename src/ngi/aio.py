"""ngi.aio: NGI handlers on an asyncio event loop, and asyncio work from ngi.

Two things live here:

* `Implementation`, an NGI implementation over an asyncio loop (asyncio's
  own, or uvloop's): the same handlers that run on ``ngi.net`` and
  ``ngi.testing`` run inside an asyncio program, on asyncio's transports
  and asyncio's TLS.  It is thin: a connection is an ``asyncio.Protocol``
  that hands ``data_received`` straight to the handler's ``handle_input``,
  and a write on the loop thread is the transport's ``write``.
* `Bridge`, for a handler on ``ngi.net`` that needs an asyncio library for
  a moment: it runs a coroutine on an asyncio loop in another thread and
  delivers the outcome back on the ngi loop thread.

Choices where asyncio and ngi differ (see also ``docs/asyncio.md``):

* Flow control is the transport's: the marks are the transport's write
  buffer limits, and ``handle_pause_writing``/``handle_resume_writing``
  follow its ``pause_writing``/``resume_writing``.  ``write_buffer_size``
  adds what ngi.aio holds itself (what ``writelines`` pulled and writes
  queued behind it or sent from other threads and not yet on the loop).
  A lowered mark pauses at once; a raised one resumes when the transport
  next drains, as in asyncio.  A ``writelines`` pull that crosses the
  high mark only stops the pulling: the handler is told when its own
  writes cross it, or wait behind a paused iterator.
* A close is asyncio's: everything written is sent, then the socket is
  closed (no lingering as in ``ngi.net``).
* Handler exceptions are logged under ``ngi.aio``; listeners, connects and
  UDP under ``ngi.aio.server``, ``ngi.aio.client`` and ``ngi.aio.udp``.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import inspect
import logging
import socket
import sys
import threading
import time
from asyncio import sslproto
from asyncio.events import _get_running_loop
from typing import Any, Callable

from ngi import _rules, _tls, _unixpath
from ngi._core import AioStream
from ngi.interfaces import ConnectionClosed
from ngi.net import _bound_socket, _listening_socket, _parse

__all__ = ["Implementation", "Bridge", "Call"]

logger = logging.getLogger("ngi.aio")
_server_log = logging.getLogger("ngi.aio.server")
_client_log = logging.getLogger("ngi.aio.client")
_udp_log = logging.getLogger("ngi.aio.udp")
_bridge_log = logging.getLogger("ngi.aio.bridge")

OPEN, FLUSHING, CLOSED = 0, 1, 2  # a connection's transport, as ngi sees it
_NOTHING = object()  # no close is held back
_UPGRADE = object()  # in a write queue: start_tls begins here

# uvloop and Python 3.11+ bound the TLS shutdown; 3.10's asyncio cannot.
_SHUTDOWN_KEYWORD = "ssl_shutdown_timeout"


def _takes_shutdown_timeout(loop: Any) -> bool:
    try:
        return _SHUTDOWN_KEYWORD in inspect.signature(loop.start_tls).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return True


# asyncio's TLS before Python 3.11 (uvloop has its own, the newer design).
_OLD_TLS = sys.version_info < (3, 11)


def _old_tls(transport: Any) -> bool:
    return _OLD_TLS and isinstance(transport, sslproto._SSLProtocolTransport)


def _raw_eof(transport: Any) -> bool:
    """Did a TLS transport's TCP stream end without close_notify, given
    that the protocol's ``eof_received`` was called?

    CPython's TLS (3.11+) calls ``eof_received`` both for the peer's
    close_notify and, from its shutdown, for a bare end of the stream; only
    its private ``_eof_received`` tells them apart.  Before 3.11 it calls
    it for a bare end only (a close_notify is a ``connection_lost(None)``).
    uvloop's calls it for a close_notify only.
    """
    if _old_tls(transport):
        return True
    protocol = getattr(transport, "_ssl_protocol", None)
    return getattr(protocol, "_eof_received", False) is True


class _Connection(AioStream, asyncio.Protocol):
    """An NGI connection that is also its transport's asyncio protocol
    (its ``data_received`` and ``write`` are `AioStream`'s, in C).

    ``_state`` is the transport's (OPEN; FLUSHING: sending the rest after
    the application's close or the peer's EOF; CLOSED), ``_open`` whether
    the application may still use it (false at once after ``close()``
    from any thread, and after ``handle_close``).  Input goes through
    ``_on_input``: the handler's ``handle_input``, or `_hold` while there
    is no handler or reading is paused, so that the hot path checks
    nothing.  ``_queue`` is None while writes can go straight to the
    transport; else it holds, in order, bytes and ``writelines``
    iterators (and the `_UPGRADE` mark of a ``start_tls``) that must go
    first.
    """

    __slots__ = (
        "_impl", "_handler", "_state", "_queued", "_transit", "_lock",
        "_flush_soon", "_closing", "_t_paused", "_h_paused", "_app_paused",
        "_held", "_held_close", "_releasing", "_high", "_low", "_tls",
        "_upgrading", "_eof", "_quiet", "_peer", "control", "_upgrade_args",
        "_pulling", "__weakref__")

    def __init__(self, impl: Implementation, control: Any = None) -> None:
        self._impl = impl
        self._loop = impl._loop
        self._transport = None
        self._handler: Any = None
        self._on_input = self._hold
        self._state = OPEN
        self._open = True
        self._queue = None
        self._queued = 0  # bytes in _queue
        self._transit = 0  # bytes written from other threads, not yet here
        self._lock = threading.Lock()  # for _transit only
        self._flush_soon = False
        self._closing = False  # close the transport once _queue is empty
        self._t_paused = False  # the transport asked us to pause
        self._h_paused = False  # we told the handler to pause
        self._pulling = False  # writing what a writelines iterator gave
        self._app_paused = False
        self._held: list[bytes] = []
        self._held_close: Any = _NOTHING
        self._releasing = False
        self._high, self._low = _rules.DEFAULT_HIGH, _rules.DEFAULT_LOW
        self._tls = False  # TLS now, or being set up
        self._upgrading = False  # a handshake is under way
        self._eof = False
        self._quiet = False  # the application closed: tell the handler nothing
        self._peer: Any = None
        self.control = control
        self._upgrade_args: Any = None

    def __repr__(self) -> str:
        state = ("open" if self._open else
                 ("closed", "flushing", "closed")[self._state])
        return f"<ngi.aio connection {self._peer!r} {state}>"

    def __bool__(self) -> bool:
        return self._open

    @property
    def peer_address(self) -> Any:
        """The peer's address, as getpeername() gave it; kept after close."""
        return self._peer

    # -- asyncio's side: the transport calls these ----------------------------

    def connection_made(self, transport: Any) -> None:
        """The TCP connection is up; a listener's is served from here."""
        self._transport = transport
        self._peer = transport.get_extra_info("peername")
        transport.pause_reading()  # nothing is read before a handler is set
        transport.set_write_buffer_limits(self._high, self._low)
        if self.control is not None:
            self.control._accepted(self)

    def eof_received(self) -> bool:
        """The peer ended its side: ``handle_close(conn, 'closed')`` now;
        what was written is still sent (over TLS, by asyncio's shutdown)."""
        self._eof = not (self._tls and _raw_eof(self._transport))
        if self._state == OPEN:
            self._state = FLUSHING
            tell, self._open = self._open, False
            if not self._tls:
                self._close_when_flushed()
            if tell:
                self._deliver_close("closed" if self._eof else _tls.truncated())
        return not self._tls  # plaintext: we close it, once flushed

    def connection_lost(self, exc: Exception | None) -> None:
        if self._state == CLOSED:
            return
        self._state = CLOSED
        tell, self._open = self._open, False
        self._drop_queue()
        if self.control is not None:
            self.control._forget(self)
        if tell:
            reason: Any = exc
            if exc is None:
                truncated = (self._tls and not self._eof
                             and not _old_tls(self._transport))
                reason = _tls.truncated() if truncated else "closed"
            self._deliver_close(reason)

    def pause_writing(self) -> None:
        """Above the high mark.  A writelines pull that crossed it only
        stops pulling (the iterator is paced here); the handler hears of
        it when its own writes cross it, or pile up behind."""
        self._t_paused = True
        if not self._h_paused and self._open and not self._pulling:
            self._h_paused = True
            self._call_handler("handle_pause_writing")

    def resume_writing(self) -> None:
        self._t_paused = False
        if self._queue is not None:
            self._flush()
        if self._h_paused and not self._t_paused and self._open:
            self._h_paused = False
            self._call_handler("handle_resume_writing")

    # -- the handler ----------------------------------------------------------

    def set_handler(self, handler: Any) -> None:
        """Send this connection's events to ``handler`` from now on; what
        arrived before (input, a close) follows right after, in order."""
        _rules.check_handler(handler, "set_handler()", "handle_input")
        self._here(self._set_handler, handler)

    def _set_handler(self, handler: Any) -> None:
        self._handler = handler
        if self._on_input != self._hold:
            self._on_input = handler.handle_input
        self._update_reading()

    def _update_reading(self) -> None:
        """Let input flow to the handler, or hold it, as the handler and
        ``pause_reading`` say; on the loop thread."""
        flowing = self._handler is not None and not self._app_paused
        if flowing and (self._held or self._held_close is not _NOTHING):
            if not self._releasing:
                self._releasing = True
                self._loop.call_soon(self._release)
        elif flowing:
            self._on_input = self._handler.handle_input
        else:
            self._on_input = self._hold
        if self._upgrading or self._state != OPEN or self._transport is None:
            return
        if flowing:
            self._transport.resume_reading()
        else:
            self._transport.pause_reading()

    def _hold(self, connection: Any, data: bytes) -> None:
        """Input that arrived while nobody may read it: kept, in order."""
        self._held.append(data)

    def _release(self) -> None:
        """Deliver held input, then a held close, while reading is on."""
        self._releasing = False
        while self._held:
            if self._handler is None or self._app_paused or self._quiet:
                return
            data = self._held.pop(0)
            try:
                self._handler.handle_input(self, data)
            except Exception as e:
                self._failed("handle_input", e)
                return
        reason, self._held_close = self._held_close, _NOTHING
        if reason is not _NOTHING:
            if not self._quiet:
                self._tell_closed(reason)
        elif self._handler is not None and not self._app_paused:
            self._on_input = self._handler.handle_input

    def _deliver_close(self, reason: Any) -> None:
        """The peer or the network closed: tell the handler after any
        input it has not had yet."""
        if self._handler is None or self._held or self._on_input == self._hold:
            self._held_close = reason
            self._update_reading()
            return
        self._tell_closed(reason)

    def _tell_closed(self, reason: Any) -> None:
        on_close = getattr(self._handler, "handle_close", None)
        if on_close is not None:
            try:
                on_close(self, reason)
            except Exception as e:
                logger.error("handle_close failed", exc_info=e)

    def _call_handler(self, name: str) -> None:
        method = getattr(self._handler, name, None)
        if method is not None:
            try:
                method(self)
            except Exception as e:
                self._failed(name, e)

    def _failed(self, what: str, exc: Exception) -> None:
        """A handler call raised: log it, close, and tell ``handle_close``."""
        logger.error("%s failed", what, exc_info=exc)
        self._lose(exc)

    # -- writing --------------------------------------------------------------

    def _write_from_thread(self, data: bytes) -> None:
        """`write` from a thread other than the loop's."""
        with self._lock:
            self._transit += len(data)
        self._loop.call_soon_threadsafe(self._written_from_thread, data)

    def _written_from_thread(self, data: bytes) -> None:
        with self._lock:
            self._transit -= len(data)
        if self._state == CLOSED:
            return
        if self._queue is None:
            self._transport.write(data)
        else:
            self._enqueue(data)

    def writelines(self, data: Any) -> None:
        """Send each bytes-like item of the iterable ``data``, in order with
        the writes around it; items are pulled on the loop, only while the
        transport is below its high-water mark.  Thread-safe."""
        _rules.check_writelines(data)
        if not self._open:
            raise ConnectionClosed("writelines() on a closed connection")
        self._here(self._enqueue, iter(data))

    def _enqueue(self, item: Any) -> None:
        """Queue ``item`` behind what waits; flushing happens soon."""
        if self._state == CLOSED:
            return
        if self._queue is None:
            self._queue = collections.deque()
        self._queue.append(item)
        if type(item) is bytes:
            self._queued += len(item)
            if self._t_paused and not self._h_paused and self._open:
                self.pause_writing()  # waiting behind a paused writelines
        if not self._flush_soon:
            self._flush_soon = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Hand queued items to the transport until it is above its high
        mark, about a mark's worth of pulled items per pass."""
        self._flush_soon = False
        queue = self._queue
        budget = max(self._high, 1)
        while queue and not self._t_paused and not self._upgrading:
            if self._state == CLOSED:
                return
            item = queue[0]
            if type(item) is bytes:
                queue.popleft()
                self._queued -= len(item)
                self._transport.write(item)
            elif item is _UPGRADE:
                queue.popleft()
                self._begin_upgrade()
            else:
                budget = self._pull(item, budget)
                if budget <= 0:
                    break
        if self._state == CLOSED or self._queue is not queue:
            return
        if queue or self._upgrading:
            if budget <= 0 and not self._flush_soon:
                self._flush_soon = True
                self._loop.call_soon(self._flush)
            return
        self._queue = None
        if self._closing:
            self._closing = False
            self._transport.close()

    def _pull(self, iterator: Any, budget: int) -> int:
        """Pull from the iterator at the queue's head into the transport;
        returns the budget left (0 or less: this pass is over)."""
        self._pulling = True
        try:
            return self._pull_some(iterator, budget)
        finally:
            self._pulling = False

    def _pull_some(self, iterator: Any, budget: int) -> int:
        while budget > 0 and not self._t_paused:
            try:
                item = next(iterator)
                if type(item) is not bytes:
                    item = _rules.as_bytes(item, "writelines()", "items")
            except StopIteration:
                self._queue.popleft()  # type: ignore[union-attr]
                return budget
            except Exception as e:
                self._queue.popleft()  # type: ignore[union-attr]
                self._writelines_failed(e)
                return budget
            if item:
                budget -= len(item)
                self._transport.write(item)
            if self._state == CLOSED:
                return 0
        return budget

    def _writelines_failed(self, error: Exception) -> None:
        on_exception = getattr(self._handler, "handle_exception", None)
        if on_exception is None:
            self._failed("writelines", error)
            return
        try:
            on_exception(self, error)
        except Exception as e:
            self._failed("handle_exception", e)

    def _drop_queue(self) -> None:
        self._queue = None
        self._queued = 0
        self._closing = False

    @property
    def write_buffer_size(self) -> int:
        """Plaintext written and not yet sent: the transport's buffer, plus
        what waits here (queued, or written from another thread)."""
        if self._state == CLOSED:
            return 0
        size = self._queued + self._transit
        if self._transport is not None:
            size += self._transport.get_write_buffer_size()
        return size

    def set_write_limits(self, high: Any = None, low: Any = None) -> None:
        """Set the marks (asyncio's rules); they are the transport's."""
        self._high, self._low = _rules.write_limits(high, low)
        self._here(self._apply_limits)

    def _apply_limits(self) -> None:
        if self._state != CLOSED and self._transport is not None:
            self._transport.set_write_buffer_limits(self._high, self._low)

    def get_write_limits(self) -> tuple[int, int]:
        """(high, low): the marks in force."""
        return self._high, self._low

    # -- reading --------------------------------------------------------------

    def pause_reading(self) -> None:
        """Hold input until `resume_reading`; idempotent, thread-safe."""
        self._app_paused = True
        self._here(self._update_reading)

    def resume_reading(self) -> None:
        """Deliver what was held, and input from now on; idempotent."""
        self._app_paused = False
        self._here(self._update_reading)

    @property
    def reading(self) -> bool:
        """True while open and not paused."""
        return self._open and not self._app_paused

    # -- closing --------------------------------------------------------------

    def close(self) -> None:
        """Close once everything written is sent; no handle_close follows.
        Thread-safe and idempotent."""
        if not self._open:
            return
        self._open = False
        self._quiet = True
        self._here(self._close_here)

    def _close_here(self) -> None:
        if self._state == OPEN:
            self._state = FLUSHING
            self._close_when_flushed()

    def _close_when_flushed(self) -> None:
        if self._queue is None:
            self._transport.close()
        else:
            self._closing = True

    def abort(self) -> None:
        """Close now, dropping what is not yet sent; no handle_close follows."""
        self._open = False
        self._quiet = True
        self._here(self._lose, None)

    def _lose(self, reason: Any) -> None:
        """Close now, dropping the queue; ``reason``, unless None, goes to
        the handler if the connection was open for it."""
        if self._state == CLOSED:
            return
        tell = reason is not None and self._open
        self._state = CLOSED
        self._open = False
        self._quiet = True
        self._drop_queue()
        self._held.clear()
        if self._transport is not None:
            self._transport.abort()
        if self.control is not None:
            self.control._forget(self)
        if tell:
            self._tell_closed(reason)

    # -- TLS ------------------------------------------------------------------

    @property
    def ssl_object(self) -> Any:
        """The ``ssl.SSLObject`` of a TLS connection, else None."""
        if not self._tls or self._upgrading or self._transport is None:
            return None
        return self._transport.get_extra_info("ssl_object")

    def start_tls(self, context: Any, server_side: bool = False,
                  server_hostname: str | None = None, *,
                  handshake_timeout: float = _tls.HANDSHAKE_TIMEOUT,
                  shutdown_timeout: float = _tls.SHUTDOWN_TIMEOUT) -> None:
        """Upgrade to TLS in place (asyncio's ``loop.start_tls``): what was
        written before goes first, in plaintext; what is written after
        waits for the handshake.  Then ``handle_handshake``, or
        ``handle_close`` with the ssl error."""
        context, server_side, hostname = _tls.start_tls_args(
            context, server_side, server_hostname)
        hs, sd = _tls.timeouts(handshake_timeout, shutdown_timeout,
                               "start_tls()")
        if not self._open:
            raise ConnectionClosed("start_tls() on a closed connection")
        if self._tls:
            raise ValueError("start_tls() on a connection that is TLS already")
        self._tls = True
        self._here(self._start_tls, (context, server_side, hostname, hs, sd))

    def _start_tls(self, args: tuple) -> None:
        if self._state == CLOSED:
            return
        self._upgrade_args = args
        self._transport.pause_reading()  # what comes next is the handshake
        self._enqueue(_UPGRADE)

    def _begin_upgrade(self) -> None:
        """Everything written before start_tls is with the transport."""
        self._upgrading = True
        self._on_input = self._hold  # TLS input waits for handle_handshake
        self._impl._task(self._upgrade(*self._upgrade_args))

    async def _upgrade(self, context: Any, server_side: bool,
                       hostname: str | None, hs: float, sd: float) -> None:
        try:
            await self._handshake(context, server_side, hostname, hs, sd)
        except Exception as e:
            self._lose(e)
            return
        if self._queue is not None:
            self._flush()
        if self._open:
            self._call_handler("handle_handshake")
        self._update_reading()

    async def _handshake(self, context: Any, server_side: bool,
                         hostname: str | None, hs: float, sd: float) -> None:
        """Run the TLS handshake over the current transport (asyncio's
        ``start_tls``); raises the ssl error, or TimeoutError after ``hs``."""
        self._tls = self._upgrading = True
        loop = self._loop
        options: dict[str, Any] = {
            "server_side": server_side,
            "ssl_handshake_timeout": hs * 2 + 1}  # ours, below, comes first
        if not server_side:
            options["server_hostname"] = hostname
        if self._impl._shutdown_keyword:
            options[_SHUTDOWN_KEYWORD] = sd
        transport: Any
        try:
            transport = await asyncio.wait_for(
                loop.start_tls(self._transport, self, context, **options), hs)
        except asyncio.TimeoutError:
            raise _tls.handshake_timed_out(hs) from None
        finally:
            self._upgrading = False
        if self._state == CLOSED:
            transport.abort()
            raise ConnectionClosed("closed during the TLS handshake")
        self._transport = transport
        transport.set_write_buffer_limits(self._high, self._low)

    # -- threads --------------------------------------------------------------

    def _here(self, func: Callable[..., Any], *args: Any) -> None:
        """Run ``func(*args)`` on the loop thread: now if this is it."""
        if _get_running_loop() is self._loop:
            func(*args)
        else:
            self._loop.call_soon_threadsafe(func, *args)


class _Listener:
    """A listening socket served by ``loop.create_server``: NGI's IListener."""

    def __init__(self, impl: Implementation, sock: socket.socket, server: Any,
                 address: Any, unix_path: str | None, context: Any,
                 hs: float, sd: float) -> None:
        self._impl = impl
        self._server_callable = server
        self.address = address
        self._unix_path = unix_path
        self._context = context
        self._timeouts = hs, sd
        self._conns: set[_Connection] = set()  # served
        self._pending: set[_Connection] = set()  # in their handshake
        self._aio_server: Any = None
        self._closed = False
        self._drained: Any = None
        self._sock: socket.socket | None = sock
        impl._task(self._start(sock))

    def __repr__(self) -> str:
        return f"<ngi.aio listener {self.address!r}>"

    async def _start(self, sock: socket.socket) -> None:
        if self._closed:
            sock.close()
            return
        self._aio_server = await self._impl._loop.create_server(
            lambda: _Connection(self._impl, self), sock=sock,
            backlog=socket.SOMAXCONN)
        self._sock = None
        if self._closed:
            self._aio_server.close()

    def _accepted(self, conn: _Connection) -> None:
        if self._closed:
            conn._lose(None)
        elif self._context is None:
            self._serve(conn)
        else:
            self._pending.add(conn)
            self._impl._task(self._handshake(conn))

    async def _handshake(self, conn: _Connection) -> None:
        try:
            await conn._handshake(self._context, True, None, *self._timeouts)
        except Exception as e:
            self._pending.discard(conn)
            _tls.log_failed_handshake(_server_log, conn.peer_address, e)
            conn._lose(None)
            return
        self._pending.discard(conn)
        if self._closed and self._drained is None:
            conn._lose(None)
        else:
            self._serve(conn)

    def _serve(self, conn: _Connection) -> None:
        """Hand a connection to the server callable; one that raises
        closes only its connection."""
        self._conns.add(conn)
        try:
            self._server_callable(conn)
        except Exception as e:
            conn._lose(None)
            _server_log.error("server %r failed", self._server_callable,
                              exc_info=e)
            return
        if conn._handler is None and conn._open:
            _server_log.warning(_rules.NO_HANDLER, self._server_callable, conn)
        conn._update_reading()

    def _forget(self, conn: _Connection) -> None:
        self._conns.discard(conn)
        self._pending.discard(conn)
        if not self._conns and self._drained is not None:
            handler, self._drained = self._drained, None
            self._call_drained(handler)

    def _call_drained(self, handler: Any) -> None:
        try:
            handler(self)
        except Exception as e:
            _server_log.error("listener close handler %r failed", handler,
                              exc_info=e)

    def connections(self) -> list[_Connection]:
        """The open connections this listener accepted and served."""
        return [c for c in list(self._conns) if c]

    def close(self, handler: Callable[[Any], Any] | None = None) -> None:
        """Without ``handler``, close the listener and its connections
        (``handle_close(conn, 'stopped')``); with one, stop accepting and
        call ``handler(listener)`` once the last connection has closed.
        Thread-safe."""
        first = not self._closed
        self._closed = True
        if first:
            _unixpath.release(self._unix_path)
        self._impl._here(self._close_here, first, handler)

    def _close_here(self, first: bool, handler: Any) -> None:
        if first:
            if self._aio_server is not None:
                self._aio_server.close()
            for conn in list(self._pending):
                conn._lose(None)
        if handler is None or not first:
            if handler is None:
                for conn in list(self._conns):
                    conn._lose("stopped")
            return
        if not self._conns:
            self._call_drained(handler)
            return
        self._drained = handler
        for conn in list(self._conns):
            if conn._open and conn._handler is not None:
                on_drain = getattr(conn._handler, "handle_drain", None)
                if on_drain is not None:
                    try:
                        on_drain(conn)
                    except Exception as e:
                        conn._failed("handle_drain", e)


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: Any, buffer_size: int) -> None:
        self.handler = handler
        self.buffer_size = buffer_size

    def datagram_received(self, data: bytes, address: Any) -> None:
        if len(data) > self.buffer_size:
            data = data[:self.buffer_size]
        try:
            self.handler(address, data)
        except Exception as e:
            _udp_log.error("udp handler %r failed", self.handler, exc_info=e)

    def error_received(self, exc: Exception) -> None:
        _udp_log.debug("udp error: %s", exc)


class _UDPListener:
    """A bound datagram socket: NGI's IUDPListener."""

    def __init__(self, impl: Implementation, sock: socket.socket,
                 handler: Any, buffer_size: int, address: Any) -> None:
        self._impl = impl
        self.address = address
        self._unix_path = address if sock.family == socket.AF_UNIX else None
        self._transport: Any = None
        self._closed = False
        impl._task(self._start(sock, handler, buffer_size))

    def __repr__(self) -> str:
        return f"<ngi.aio udp listener {self.address!r}>"

    async def _start(self, sock: socket.socket, handler: Any,
                     buffer_size: int) -> None:
        if self._closed:
            sock.close()
            return
        self._transport, _ = await self._impl._loop.create_datagram_endpoint(
            lambda: _UDPProtocol(handler, buffer_size), sock=sock)
        if self._closed:
            self._transport.close()

    def udp(self, address: Any, data: Any) -> None:
        """Send a datagram from this listener's own address (a reply)."""
        data = _rules.as_bytes(data, "udp()")
        self._impl._here(self._send, address, data)

    def _send(self, address: Any, data: bytes) -> None:
        if self._transport is not None and not self._closed:
            self._transport.sendto(data, address)

    def close(self) -> None:
        """Stop receiving; a Unix socket's file is removed.  Thread-safe."""
        if self._closed:
            return
        self._closed = True
        _unixpath.release(self._unix_path)
        self._impl._here(self._close_here)

    def _close_here(self) -> None:
        if self._transport is not None:
            self._transport.close()


class _Timer:
    """A call_later call: cancellable from any thread."""

    __slots__ = ("_impl", "_func", "_args", "_handle", "_cancelled")

    def __init__(self, impl: Implementation, func: Any, args: tuple) -> None:
        self._impl = impl
        self._func = func
        self._args = args
        self._handle: Any = None
        self._cancelled = False

    def _schedule(self, deadline: float) -> None:
        if not self._cancelled:
            loop = self._impl._loop
            self._handle = loop.call_later(
                max(0.0, deadline - time.monotonic()), self._run)

    def _run(self) -> None:
        if self._cancelled:
            return
        self._cancelled = True  # ran: cancel() is harmless from now on
        try:
            self._func(*self._args)
        except Exception as e:
            logger.error("timer %r failed", self._func, exc_info=e)

    def cancel(self) -> None:
        """Do not make the call; harmless once it ran or was cancelled."""
        if self._cancelled:
            return
        self._cancelled = True
        self._impl._here(self._cancel_here)

    def _cancel_here(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


class Implementation:
    """An NGI implementation over an asyncio event loop.

    ``loop`` is the loop to run on; None means the loop running where the
    implementation is first used (then the first use must be on it, in a
    coroutine or a callback).  Handlers run on the loop's thread; every
    method here, and a connection's ``write``, ``writelines``, ``close``
    and flow-control methods, may be called from any thread.  Works the
    same on asyncio's own loop and on uvloop's.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if loop is not None and not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError("ngi.aio.Implementation() expects an asyncio event "
                            f"loop or None, got {loop!r}")
        self._given = loop
        self._tasks: set[asyncio.Task] = set()
        self._udp_sockets: dict[int, socket.socket] = {}
        self._udp_lock = threading.Lock()
        self._shutdown_keyword = (loop is not None
                                  and _takes_shutdown_timeout(loop))

    def __repr__(self) -> str:
        return f"<ngi.aio.Implementation {self._given!r}>"

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        """The loop: the one given, or the running one at first use."""
        loop = self._given
        if loop is None:
            loop = _get_running_loop()
            if loop is None:
                raise RuntimeError(
                    "ngi.aio.Implementation() was given no loop, and is first "
                    "used where no asyncio loop is running: pass loop=, or "
                    "first use it from a coroutine or callback on the loop")
            self._given = loop
            self._shutdown_keyword = _takes_shutdown_timeout(loop)
        return loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop this implementation runs on."""
        return self._loop

    def _here(self, func: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if _get_running_loop() is loop:
            func(*args)
        else:
            loop.call_soon_threadsafe(func, *args)

    def _task(self, coroutine: Any) -> None:
        """Run ``coroutine`` on the loop, keeping it referenced until done."""
        self._here(self._start_task, coroutine)

    def _start_task(self, coroutine: Any) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- IImplementation ------------------------------------------------------

    def connect(self, address: Any, handler: Any, ssl: Any = None,
                server_hostname: Any = None, *,
                handshake_timeout: Any = _tls.HANDSHAKE_TIMEOUT,
                shutdown_timeout: Any = _tls.SHUTDOWN_TIMEOUT) -> None:
        """Connect; later, on the loop, ``handler.connected(conn)`` or
        ``handler.failed_connect(reason)`` (logged at WARNING under
        ``ngi.aio.client`` if it has none).  An invalid address raises
        here.  With ``ssl`` (an ``ssl.SSLContext``, or True for the
        default context), ``connected`` comes after the handshake."""
        family, sockaddr = _parse(address)
        handler = _rules.connect_handler(handler, address, "connect()",
                                         _client_log)
        context, hostname = _tls.client_context(ssl, server_hostname, address)
        hs, sd = _tls.timeouts(handshake_timeout, shutdown_timeout, "connect()")
        self._task(self._connect(family, sockaddr, handler, context, hostname,
                                 hs, sd))

    async def _connect(self, family: int, sockaddr: Any, handler: Any,
                       context: Any, hostname: Any, hs: float,
                       sd: float) -> None:
        loop = self._loop
        conn = _Connection(self)
        try:
            if family == socket.AF_UNIX:
                await loop.create_unix_connection(lambda: conn, sockaddr)
            else:
                await loop.create_connection(lambda: conn, sockaddr[0],
                                             sockaddr[1], family=family)
            if context is not None:
                await conn._handshake(context, False, hostname, hs, sd)
        except Exception as e:
            conn._lose(None)
            try:
                handler.failed_connect(e)
            except Exception as e2:
                _client_log.error("failed_connect failed", exc_info=e2)
            return
        try:
            handler.connected(conn)
        except Exception as e:
            conn._lose(None)
            _client_log.error("connected failed", exc_info=e)
            return
        conn._update_reading()

    def listener(self, address: Any, server: Any, thready: bool = False,
                 reuse_port: bool = False, ssl: Any = None, *,
                 handshake_timeout: Any = _tls.HANDSHAKE_TIMEOUT,
                 shutdown_timeout: Any = _tls.SHUTDOWN_TIMEOUT) -> _Listener:
        """Listen on ``address`` (None: a free localhost port); ``server``
        gets each connection (over TLS, once its handshake is done).

        Binding happens here: a busy address raises OSError in the call.
        ``address`` may be a bound ``socket.socket`` (see
        ``ngi.net.bind``).  ``thready`` is refused: handlers run on the
        loop's thread.
        """
        if not callable(server):
            raise TypeError(f"listener() expects a callable server, got {server!r}")
        if thready:
            raise ValueError("listener(): ngi.aio has no thready mode; "
                             "handlers run on the asyncio loop's thread")
        context = _tls.server_context(ssl)
        hs, sd = _tls.timeouts(handshake_timeout, shutdown_timeout, "listener()")
        self._loop  # no loop to serve on: RuntimeError before binding
        sock, owned = _listening_socket(address, reuse_port)
        try:
            sock.setblocking(False)
            bound = sock.getsockname()
            if sock.family == socket.AF_INET6:
                bound = bound[:2]
        except BaseException:
            if owned:
                sock.close()
            raise
        unix = sock.family == socket.AF_UNIX
        result = _Listener(self, sock, server, bound,
                           bound if unix and owned else None, context, hs, sd)
        _server_log.info("listening on %r", bound)
        return result

    def udp(self, address: Any, data: Any) -> None:
        """Send one datagram to ``address`` (from any thread, at once)."""
        data = _rules.as_bytes(data, "udp()")
        family, sockaddr = _parse(address)
        sock = self._udp_sockets.get(family)
        if sock is None:
            with self._udp_lock:
                sock = self._udp_sockets.get(family)
                if sock is None:
                    sock = socket.socket(family, socket.SOCK_DGRAM)
                    self._udp_sockets[family] = sock
        sock.sendto(data, sockaddr)

    def udp_listener(self, address: Any, handler: Any,
                     buffer_size: int = 4096) -> _UDPListener:
        """Receive datagrams on ``address``: ``handler(address, data)``,
        each truncated to ``buffer_size`` bytes."""
        if not callable(handler):
            raise TypeError(f"udp_listener() expects a callable handler, got {handler!r}")
        _rules.positive_int("buffer_size", buffer_size)
        self._loop
        sock = _bound_socket(address, socket.SOCK_DGRAM)
        bound = sock.getsockname()
        if sock.family == socket.AF_INET6:
            bound = bound[:2]
        result = _UDPListener(self, sock, handler, buffer_size, bound)
        _udp_log.info("udp listening on %r", bound)
        return result

    def call_later(self, seconds: Any, func: Callable[..., Any],
                   *args: Any) -> _Timer:
        """Call ``func(*args)`` on the loop after ``seconds`` (negative:
        now); one that raises is logged under ``ngi.aio``."""
        delay = _rules.seconds("call_later()", seconds, negative_ok=True)
        if not callable(func):
            raise TypeError(f"call_later() expects a callable, got {func!r}")
        timer = _Timer(self, func, args)
        self._here(timer._schedule, time.monotonic() + delay)
        return timer

    def call_from_thread(self, func: Callable[[], Any]) -> None:
        """Call ``func()`` on the loop thread, soon; thread-safe.  One that
        raises is logged under ``ngi.aio``."""
        if not callable(func):
            raise TypeError(f"call_from_thread() expects a callable, got {func!r}")
        self._loop.call_soon_threadsafe(_logged, func)


def _logged(func: Callable[[], Any]) -> None:
    try:
        func()
    except Exception as e:
        logger.error("%r failed", func, exc_info=e)


# The bridge: from an ngi.net handler to asyncio and back ---------------------

WATCH_INTERVAL = 0.05  # seconds between looks at a call's connection


class Call:
    """A coroutine started by `Bridge.call`, on its way.

    ``cancel()`` (from any thread) cancels the coroutine; called on the
    ngi loop thread, it also makes sure ``on_done`` is never called.
    """

    __slots__ = ("_home", "_on_done", "connection", "_future", "_over")

    def __init__(self, home: Any, on_done: Callable[[Any], Any],
                 connection: Any) -> None:
        self._home = home  # the ngi implementation on_done runs on
        self._on_done = on_done
        self.connection = connection
        self._future: concurrent.futures.Future | None = None
        self._over = False  # delivered or cancelled: on_done is not due

    def __repr__(self) -> str:
        state = "over" if self._over else "running"
        return f"<ngi.aio.Call {state}>"

    def cancel(self) -> None:
        """Cancel the coroutine, and drop its outcome; idempotent."""
        self._over = True
        if self._future is not None:
            self._future.cancel()

    @property
    def done(self) -> bool:
        """True once the outcome was delivered, dropped or cancelled."""
        return self._over

    def _finished(self, future: concurrent.futures.Future) -> None:
        """On the asyncio thread (or the cancelling one): send the outcome
        over to the ngi loop thread."""
        if not self._over:
            self._home.call_from_thread(
                lambda: self._deliver(future))

    def _deliver(self, future: concurrent.futures.Future) -> None:
        """On the ngi loop thread: ``on_done(future)``, unless cancelled
        or the connection closed meanwhile."""
        if self._over:
            return
        self._over = True
        connection = self.connection
        if connection is not None and not connection:
            return  # closed: nobody to tell
        try:
            self._on_done(future)
        except Exception as e:
            _bridge_log.error("on_done %r failed", self._on_done, exc_info=e)
            if connection is not None:
                connection.close()


class Bridge:
    """Run coroutines on an asyncio loop in another thread, for handlers
    on an ngi loop, and deliver each outcome on the ngi loop thread.

    ``implementation`` is the ngi implementation whose handlers call (it
    has ``call_from_thread``); None means the ``ngi.net`` implementation
    whose loop thread makes each call (``ngi.net.current()``), so that
    one bridge serves handlers on any ``ngi.net`` loop, ``ngi serve``'s
    included.  ``loop`` is an asyncio loop running in another thread;
    None means one of the bridge's own, run in a daemon thread named
    ``ngi.aio.bridge`` that starts on the first call and ends with
    `close`.
    """

    def __init__(self, implementation: Any = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        if implementation is not None and not callable(
                getattr(implementation, "call_from_thread", None)):
            raise TypeError("Bridge() expects an ngi implementation with "
                            f"call_from_thread(), got {implementation!r}")
        if loop is not None and not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError("Bridge() expects an asyncio event loop or None, "
                            f"got {loop!r}")
        self._implementation = implementation
        self._loop = loop
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ngi.aio.Bridge {self._implementation!r} {self._loop!r}>"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop the coroutines run on (started if it is ours)."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                loop.call_soon(ready.set)
                self._thread = threading.Thread(
                    target=loop.run_forever, name="ngi.aio.bridge", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def call(self, coroutine: Any, on_done: Callable[[Any], Any],
             connection: Any = None) -> Call:
        """Run ``coroutine`` on the asyncio loop; then, on the ngi loop
        thread, call ``on_done(future)`` with a done
        ``concurrent.futures.Future``: ``future.result()`` is the
        coroutine's value or raises its exception (``CancelledError`` if
        the asyncio side cancelled it).

        With ``connection``, the call belongs to it: once the connection is
        closed (by either side, however), the coroutine is cancelled
        within about `WATCH_INTERVAL` seconds, and ``on_done`` is not
        called, even if the outcome was already on its way.  `Call.cancel`
        does the same at any time.  (A connection whose reading is paused
        may not see its peer's close until it reads again: keep reading
        while a call is out, as ``examples/kv.py`` does, if a client that
        leaves should cancel it.)  If ``on_done`` raises, that is logged
        under ``ngi.aio.bridge`` and the connection, if any, is closed.
        Thread-safe; returns the `Call`.
        """
        if not asyncio.iscoroutine(coroutine):
            raise TypeError(f"Bridge.call() expects a coroutine, got {coroutine!r}")
        if not callable(on_done):
            coroutine.close()
            raise TypeError(f"Bridge.call() expects a callable on_done, got {on_done!r}")
        if connection is not None and not hasattr(connection, "__bool__"):
            coroutine.close()
            raise TypeError("Bridge.call() expects an ngi connection or None, "
                            f"got {connection!r}")
        home = self._implementation
        if home is None:
            import ngi.net
            home = ngi.net.current()
            if home is None:
                coroutine.close()
                raise RuntimeError(
                    "Bridge.call() outside an ngi.net loop thread: give the "
                    "Bridge the implementation to deliver on "
                    "(Bridge(implementation=...))")
        call = Call(home, on_done, connection)
        runner = coroutine if connection is None else _watched(coroutine, connection)
        future = asyncio.run_coroutine_threadsafe(runner, self.loop)
        call._future = future
        future.add_done_callback(call._finished)
        return call

    def close(self) -> None:
        """Stop the bridge's own loop (cancelling what runs on it) and end
        its thread; a loop that was given is left alone."""
        with self._lock:
            thread, loop = self._thread, self._loop
            if thread is None or loop is None:
                return
            self._thread = None
            self._loop = None
        loop.call_soon_threadsafe(_stop, loop)
        thread.join(10)
        loop.close()


async def _watched(coroutine: Any, connection: Any) -> Any:
    """Await ``coroutine``, cancelling it if ``connection`` closes first."""
    task = asyncio.ensure_future(coroutine)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=WATCH_INTERVAL)
            if done:
                return task.result()
            if not connection:
                task.cancel()
                await asyncio.wait({task})
                raise asyncio.CancelledError()
    except asyncio.CancelledError:
        task.cancel()
        raise


def _stop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what still runs on the bridge's loop, then stop it."""
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.call_soon(loop.stop)
