"""Blocking helpers, for scripts that want to make a request and wait.

NGI is event driven: handlers react to input on the implementation's loop
thread.  A script often just wants to send something and wait for the
answer.  These helpers run the event-driven part on the loop thread and
block the calling thread on a `threading.Condition` until it is done:

- `request` runs a handler over one connection and waits until the
  connection closes;
- `connect` waits for a connection and returns it;
- `open` gives a connection a pair of file-like objects.

Every wait takes an optional ``timeout`` in seconds and raises
`ngi.interfaces.Timeout` when it passes; a timeout while still connecting
raises `ConnectionTimeout`, which is both a ``Timeout`` and a
``ConnectionFailed``.  The ``connect`` arguments are connectors such as
``ngi.net.connect`` (the default) or ``ngi.testing.connect``.

Never call these from a handler: the loop thread would wait for itself.
With the synchronous ``ngi.testing`` implementation everything has
happened by the time the helper waits, so they work there too.
"""
from __future__ import annotations

import io
import threading
import time
from typing import Any, Callable, Iterable, Iterator

from ngi._rules import check_handler
from ngi.interfaces import ConnectionClosed, ConnectionFailed, Timeout

__all__ = ["ConnectionTimeout", "request", "connect", "open",
           "OutputFile", "InputFile"]


class ConnectionTimeout(Timeout, ConnectionFailed):
    """The connection was not established in the time allowed."""


def _default_connect(connect: Callable | None) -> Callable:
    if connect is None:
        import ngi.net  # here, so that importing ngi.blocking stays cheap
        connect = ngi.net.connect
    return connect


def _wait_for(condition: threading.Condition, predicate: Callable[[], Any],
              timeout: float | None) -> bool:
    """``condition.wait_for`` that treats a negative timeout as zero."""
    if timeout is not None and timeout < 0:
        timeout = 0
    return condition.wait_for(predicate, timeout)


def _failed(reason: Any) -> ConnectionFailed:
    error = ConnectionFailed(reason)
    if isinstance(reason, BaseException):
        error.__cause__ = reason
    return error


# request -------------------------------------------------------------------

def request(connect: Callable | None, address: Any, connection_handler: Any,
            timeout: float | None = None) -> Any:
    """Connect, let ``connection_handler`` talk, wait for the close.

    ``connection_handler`` is an ``IClientConnectHandler`` (its
    ``connected`` gets the connection), a callable taking the connection
    (a class, for instance), or an ``IConnectionHandler`` (set as the
    connection's handler).  If it sets no handler, input is discarded so
    that the close is still noticed.

    Returns the reason of a close from the peer, or ``None`` when the
    handler closed the connection itself.  An exception raised by the
    handler (in ``connected``, ``handle_input``, ``handle_close``,
    ``handle_exception``) closes the connection and is raised here; so is
    a ``writelines`` error when the handler has no ``handle_exception``.
    A failed connect raises ``ConnectionFailed(reason)``.  On timeout the
    connection is closed and ``Timeout`` raised (``ConnectionTimeout`` if
    it was not connected yet).
    """
    return _Request(connection_handler).run(_default_connect(connect),
                                            address, timeout)


def _starter(handler: Any) -> Callable[[Any], Any]:
    """What to call with the new connection, for each kind of handler."""
    # A class is callable and may also have (unbound) handler methods:
    # calling it is what is meant.
    if not isinstance(handler, type):
        if callable(getattr(handler, "connected", None)):
            return handler.connected
    if callable(handler):
        return handler
    if callable(getattr(handler, "handle_input", None)):
        return lambda connection: connection.set_handler(handler)
    raise TypeError("request() expects an IClientConnectHandler, a callable "
                    f"or an IConnectionHandler, got {handler!r}")


class _Request:
    """The connect handler of one `request`, and its outcome."""

    def __init__(self, handler: Any) -> None:
        self.start = _starter(handler)
        self.condition = threading.Condition()
        self.connection: Any = None  # the implementation's connection
        self.done = False
        self.reason = None
        self.error: BaseException | None = None
        self.abandoned = False   # the caller gave up waiting

    def run(self, connect: Callable, address: Any,
            timeout: float | None) -> Any:
        connect(address, self)
        with self.condition:
            finished = _wait_for(self.condition, lambda: self.done, timeout)
            if not finished:
                self.abandoned = True
                connection = self.connection
        if not finished:
            if connection is None:
                raise ConnectionTimeout(
                    f"could not connect to {address!r} in {timeout} seconds")
            connection.close()
            raise Timeout(f"the connection to {address!r} was still open "
                          f"after {timeout} seconds")
        if self.error is not None:
            error, self.error = self.error, None  # no reference cycle
            raise error
        return self.reason

    # IClientConnectHandler, called by the implementation.

    def connected(self, connection: Any) -> None:
        with self.condition:
            abandoned = self.abandoned
            self.connection = connection
        if abandoned:
            connection.close()
            return
        watched = _Watched(connection, self)
        try:
            self.start(watched)
        except Exception as e:
            self.fail(e)
            return
        if watched.handler is None and connection:
            watched.set_handler(_Discard())

    def failed_connect(self, reason: Any) -> None:
        self.finish(error=_failed(reason))

    def fail(self, error: BaseException) -> None:
        """The handler raised: close the connection, tell the caller."""
        self.connection.close()
        self.finish(error=error)

    def finish(self, reason: Any = None,
               error: BaseException | None = None) -> None:
        with self.condition:
            if not self.done:
                self.done = True
                self.reason = reason
                self.error = error
                self.condition.notify_all()


class _Discard:
    """The handler of a request whose handler set none: input is ignored."""

    def handle_input(self, connection: Any, data: bytes) -> None:
        pass


class _Watched:
    """The connection as the request's handler sees it.

    It sits between the implementation and the handler, so that `request`
    sees every way the conversation can end: a close from the handler, a
    close from the peer, and exceptions from the handler's methods.
    """

    def __init__(self, connection: Any, owner: _Request) -> None:
        self.connection = connection
        self.owner = owner
        self.handler: Any = None

    def __getattr__(self, name: str) -> Any:
        # peer_address, control and anything else a connection offers.
        return getattr(self.connection, name)

    def __bool__(self) -> bool:
        return bool(self.connection)

    def __repr__(self) -> str:
        return f"<ngi.blocking request connection {self.connection!r}>"

    # IConnection, called by the handler.

    def set_handler(self, handler: Any) -> None:
        check_handler(handler, "set_handler()", "handle_input")
        self.handler = handler
        self.connection.set_handler(self)

    def write(self, data: Any) -> None:
        self.connection.write(data)

    def writelines(self, data: Iterable[Any]) -> None:
        self.connection.writelines(data)

    def close(self) -> None:
        self.connection.close()
        self.owner.finish()

    # IConnectionHandler, called by the implementation.

    def handle_input(self, connection: Any, data: bytes) -> None:
        try:
            self.handler.handle_input(self, data)
        except Exception as e:
            self.owner.fail(e)

    def handle_close(self, connection: Any, reason: Any) -> None:
        handle_close = getattr(self.handler, "handle_close", None)
        if handle_close is not None:
            try:
                handle_close(self, reason)
            except Exception as e:
                self.owner.finish(error=e)
                return
        self.owner.finish(reason)

    def handle_exception(self, connection: Any, exception: Exception) -> None:
        handle_exception = getattr(self.handler, "handle_exception", None)
        if handle_exception is None:
            self.owner.fail(exception)
            return
        try:
            handle_exception(self, exception)
        except Exception as e:
            self.owner.fail(e)


# connect -------------------------------------------------------------------

def connect(address: Any, connect: Callable | None = None,
            timeout: float | None = None) -> Any:
    """Connect to ``address`` and return the open connection.

    The connection has no handler yet (``ngi.net`` reads nothing until one
    is set).  Raises ``ConnectionFailed(reason)``, or `ConnectionTimeout`;
    a connection that arrives after the timeout is closed at once.
    """
    return _Connector().run(_default_connect(connect), address, timeout)


class _Connector:
    """The connect handler of one blocking `connect`."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.connection: Any = None
        self.error: ConnectionFailed | None = None
        self.abandoned = False

    def run(self, connect: Callable, address: Any,
            timeout: float | None) -> Any:
        connect(address, self)
        with self.condition:
            if not _wait_for(self.condition, self._ready, timeout):
                self.abandoned = True
                raise ConnectionTimeout(
                    f"could not connect to {address!r} in {timeout} seconds")
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.connection

    def _ready(self) -> bool:
        return self.connection is not None or self.error is not None

    def connected(self, connection: Any) -> None:
        with self.condition:
            if not self.abandoned:
                self.connection = connection
                self.condition.notify_all()
                return
        connection.close()

    def failed_connect(self, reason: Any) -> None:
        with self.condition:
            self.error = _failed(reason)
            self.condition.notify_all()


# open ----------------------------------------------------------------------

def open(connection_or_address: Any, connector: Callable | None = None,
         timeout: float | None = None) -> tuple[OutputFile, InputFile]:
    """Return ``(output, input)`` file-like objects for a connection.

    Pass an open connection, or an address to `connect` to (with
    ``connector`` and ``timeout``).  The input file becomes the
    connection's handler.  NGI has no half-close: closing either file
    closes the connection; the input file then reads what had arrived
    and after it EOF.
    """
    if connector is None and callable(
            getattr(connection_or_address, "set_handler", None)):
        connection = connection_or_address
    else:
        connection = connect(connection_or_address, connector, timeout)
    stream = _Stream(connection)
    output, input = OutputFile(stream), InputFile(stream)
    connection.set_handler(stream)
    return output, input


class _Stream:
    """The connection's handler behind an `open` file pair: the state both
    files share, guarded by one condition."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.condition = threading.Condition()
        self.buffer = bytearray()
        self.eof = False         # no more input will arrive
        self.reason = None       # why the peer closed, if it did
        self.error: BaseException | None = None

    def handle_input(self, connection: Any, data: bytes) -> None:
        with self.condition:
            self.buffer += data
            self.condition.notify_all()

    def handle_close(self, connection: Any, reason: Any) -> None:
        with self.condition:
            self.eof = True
            self.reason = reason
            self.condition.notify_all()

    def handle_exception(self, connection: Any, exception: Exception) -> None:
        # Returning keeps the connection open, like a failed write on a
        # file: the error is raised by the next read (or flush/writelines).
        with self.condition:
            self.error = exception
            self.condition.notify_all()

    def close(self) -> None:
        with self.condition:
            self.eof = True
            self.condition.notify_all()
        self.connection.close()

    def raise_error(self) -> None:
        """Raise a reported error, once (call with the condition held)."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def wait(self, ready: Callable[[], Any], deadline: float | None) -> None:
        """Wait until ``ready()``; a reported error is raised instead."""
        def woken():
            return self.error is not None or ready()
        remaining = None if deadline is None else deadline - time.monotonic()
        if not _wait_for(self.condition, woken, remaining):
            raise Timeout("timed out waiting for the connection")
        self.raise_error()


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


class _File:
    """What both files share: closing, and refusing the other direction."""

    def __init__(self, stream: _Stream) -> None:
        self._stream = stream
        self.closed = False

    def close(self) -> None:
        """Close the file, and with it the connection."""
        if not self.closed:
            self.closed = True
            self._stream.close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _unsupported(self, *args: Any, **kw: Any) -> Any:
        raise io.UnsupportedOperation(
            f"not supported by the {type(self).__name__}")


class OutputFile(_File):
    """Writes to the connection.  Writes do not block: the data is handed
    to the implementation, which sends it in the background."""

    read = readline = readlines = __iter__ = __next__ = _File._unsupported

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        """Send bytes-like ``data``; return its length in bytes."""
        self._check_open()
        self._stream.connection.write(data)
        return memoryview(data).nbytes

    def writelines(self, lines: Iterable[Any], timeout: float | None = None,
                   nonblocking: bool = False) -> None:
        """Send each item of ``lines``; they are pulled lazily.

        Unless ``nonblocking``, wait until the implementation has taken the
        last item (so the iterable is no longer in use).  An error from the
        iterable is raised here; a close before it was used up raises
        ``ConnectionClosed``.
        """
        self._check_open()
        if nonblocking:
            self._stream.connection.writelines(lines)
            return
        stream = self._stream
        consumed: list[bool] = []
        stream.connection.writelines(_tracked(lines, stream, consumed))
        with stream.condition:
            stream.wait(lambda: consumed or stream.eof, _deadline(timeout))
            if not consumed:
                raise ConnectionClosed(
                    "the connection closed before writelines finished")

    def flush(self) -> None:
        """Raise an error reported for earlier output, if any; the data
        itself is already with the implementation."""
        with self._stream.condition:
            self._stream.raise_error()


def _tracked(lines: Iterable[Any], stream: _Stream,
             consumed: list[bool]) -> Iterator[Any]:
    """Yield from ``lines``, then tell the waiting writer they are used up."""
    yield from lines
    with stream.condition:
        consumed.append(True)
        stream.condition.notify_all()


class InputFile(_File):
    """Reads what the connection received.

    Reads block until they can be satisfied or the connection closed
    (after which they return what is left, then ``b''``).  Each takes a
    ``timeout``; on `Timeout` no data is consumed.  An error reported
    through ``handle_exception`` is raised by the next read.  ``reason``
    is the peer's close reason, once it closed.
    """

    write = writelines = flush = _File._unsupported

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    @property
    def reason(self) -> Any:
        return self._stream.reason

    def _take(self, want: Callable[[bytearray, bool], int | None],
              timeout: float | None) -> bytes:
        """Wait until ``want(buffer, eof)`` names how many bytes to take."""
        self._check_open()
        stream = self._stream
        deadline = _deadline(timeout)
        with stream.condition:
            count = None

            def ready():
                nonlocal count
                count = want(stream.buffer, stream.eof)
                return count is not None

            stream.wait(ready, deadline)
            data = bytes(stream.buffer[:count])
            del stream.buffer[:count]
            return data

    def read(self, size: int | None = None,
             timeout: float | None = None) -> bytes:
        """Read ``size`` bytes (fewer only at EOF); without ``size``, read
        everything until the connection closes."""
        if size is None or size < 0:
            return self._take(lambda buf, eof: len(buf) if eof else None,
                              timeout)

        def want(buf, eof):
            if len(buf) >= size:
                return size
            return len(buf) if eof else None
        return self._take(want, timeout)

    def readline(self, size: int | None = None,
                 timeout: float | None = None) -> bytes:
        """Read one line, with its ``b'\\n'``; at most ``size`` bytes."""
        limit = None if size is None or size < 0 else size

        def want(buf, eof):
            end = buf.find(b"\n", 0, limit)
            if end >= 0:
                return end + 1
            if limit is not None and len(buf) >= limit:
                return limit
            return len(buf) if eof else None
        return self._take(want, timeout)

    def readlines(self, sizehint: int | None = None,
                  timeout: float | None = None) -> list[bytes]:
        """Read lines until EOF; with ``sizehint``, stop after the line
        that brings the total to at least ``sizehint`` bytes."""
        hint = sizehint if sizehint is not None and sizehint > 0 else None

        def want(buf, eof):
            if hint is not None and len(buf) >= hint:
                end = buf.find(b"\n", hint - 1)
                if end >= 0:
                    return end + 1
            return len(buf) if eof else None
        return _split_lines(self._take(want, timeout))

    def __iter__(self) -> InputFile:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def _split_lines(data: bytes) -> list[bytes]:
    """Split after each ``b'\\n'`` (not at ``b'\\r'``, unlike splitlines)."""
    lines = data.split(b"\n")
    last = lines.pop()
    result = [line + b"\n" for line in lines]
    if last:
        result.append(last)
    return result
