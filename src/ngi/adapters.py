"""Connection adapters: give a byte stream a record structure.

An adapter wraps a connection and is itself a connection.  The application
sets its handler on the adapter; the adapter sets itself as the handler of
the wrapped connection, collects raw input into records and passes each
record to the application's ``handle_input`` with the *adapter* as the
connection, so that replies are framed too.

- `Base` passes everything through unchanged; it is the place to start a
  new adapter.
- `Lines`: input records end with ``b'\\n'``; the handler gets each line
  without it.  Output is passed through unchanged: write the ``b'\\n'``
  yourself.  `Delimited` is the same for any delimiter (``b'\\r\\n'``,
  ``b'\\r\\n\\r\\n'``).
- `Sized`: every record, in both directions, is preceded by its length as
  4 bytes, big-endian.  Writing ``None`` sends the null marker
  ``b'\\xff\\xff\\xff\\xff'`` (a keep-alive), which receivers skip.

Each adapter's ``handler`` class method is a decorator for generator
handlers (see `ngi.generator`) that talk through that adapter::

    @ngi.adapters.Lines.handler
    def echo(connection):
        while True:
            line = yield
            connection.write(line + b'\\n')

Records still incomplete when the connection closes are dropped.  Once the
application has closed the connection, records left over from input that
was already received are not delivered.

Input is bounded: a line longer than ``max_line`` or a record announced
longer than ``max_size`` closes the connection, and the handler's
``handle_close`` gets a `LineTooLong` or `MessageTooLarge` as the reason,
just before the close, so that it may write a last reply.
Nothing is buffered beyond the limit, whatever a length prefix claims.
Records are cut by the core's framer (``ngi._core.Framer``), the same
for ``ngi.net`` and ``ngi.testing``; a record that arrives whole costs
one ``bytes``, and only an incomplete one is kept.  On an ``ngi.net``
connection the core cuts records straight from its receive buffer and
calls the handler itself (``Connection.give``), without this module's
`_Framed.handle_input`, which does the same for every other connection.
Flow control (``write_buffer_size``, ``set_write_limits``,
``pause_reading``/``resume_reading``/``reading``, and the handler's
``handle_pause_writing``/``handle_resume_writing``) passes through.
"""
from __future__ import annotations

import struct
from typing import Any, Callable, Iterable, Iterator

import ngi.generator
from ngi import _core
from ngi._rules import check_writelines, non_negative_int

__all__ = ["Base", "Delimited", "Lines", "Sized", "LineTooLong",
           "MessageTooLarge"]

_NULL = b"\xff\xff\xff\xff"
_MAX_SIZE = 0xFFFFFFFE  # 0xFFFFFFFF is the null marker
_pack_size = struct.Struct(">I").pack


class MessageTooLarge(ValueError):
    """A record exceeded the adapter's ``max_size``."""


class LineTooLong(MessageTooLarge):
    """A line exceeded the adapter's ``max_line``."""


class ProtocolError(ValueError):
    """Input that is not the protocol the adapter frames (`RESP`)."""


class Base:
    """An adapter that passes input and output through unchanged.

    Subclasses override `handle_input` (to frame input) and `write` /
    `writelines` (to frame output).
    """

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self._handler: Any = None

    # -- the connection side: what the application calls -----------------

    def set_handler(self, handler: Any) -> None:
        """Send records to ``handler``; may be called again to switch."""
        self._handler = handler
        # Re-registering on every call lets the implementation notice that
        # the optional handle_close / handle_exception may have changed.
        self.connection.set_handler(self)

    def write(self, data: Any) -> None:
        self.connection.write(data)  # which refuses what is not bytes-like

    def writelines(self, data: Iterable[Any]) -> None:
        check_writelines(data, f"{type(self).__name__}.writelines()")
        self.connection.writelines(data)

    def close(self) -> None:
        self.connection.close()

    def abort(self) -> None:
        """Close now, dropping unsent output (where the connection can)."""
        self.connection.abort()

    # Flow control passes through to the wrapped connection.

    @property
    def write_buffer_size(self) -> int:
        return self.connection.write_buffer_size

    def set_write_limits(self, high: int | None = None,
                         low: int | None = None) -> None:
        self.connection.set_write_limits(high, low)

    def get_write_limits(self) -> tuple[int, int]:
        return self.connection.get_write_limits()

    def pause_reading(self) -> None:
        self.connection.pause_reading()

    def resume_reading(self) -> None:
        self.connection.resume_reading()

    @property
    def reading(self) -> bool:
        return self.connection.reading

    def __bool__(self) -> bool:
        return bool(self.connection)

    @property
    def peer_address(self) -> Any:
        return self.connection.peer_address

    @property
    def ssl_object(self) -> Any:
        return self.connection.ssl_object

    def start_tls(self, context: Any, server_side: bool = False,
                  server_hostname: str | None = None, **timeouts: Any) -> None:
        self.connection.start_tls(context, server_side, server_hostname,
                                  **timeouts)

    @property
    def control(self) -> Any:
        """The listener of a server connection (AttributeError otherwise)."""
        return self.connection.control

    # -- the handler side: what the implementation calls -----------------

    def handle_input(self, connection: Any, data: bytes) -> None:
        self._handler.handle_input(self, data)

    # handle_close and handle_exception exist only when the application's
    # handler has them, so the implementation's rules for missing optional
    # methods apply unchanged through the adapter.

    @property
    def handle_close(self) -> Callable[[Any, Any], None]:
        handle_close = self._handler.handle_close  # AttributeError if absent
        return lambda connection, reason: handle_close(self, reason)

    @property
    def handle_exception(self) -> Callable[[Any, Exception], None]:
        handle_exception = self._handler.handle_exception
        return lambda connection, exception: handle_exception(self, exception)

    @property
    def handle_pause_writing(self) -> Callable[[Any], None]:
        handle_pause_writing = self._handler.handle_pause_writing
        return lambda connection: handle_pause_writing(self)

    @property
    def handle_resume_writing(self) -> Callable[[Any], None]:
        handle_resume_writing = self._handler.handle_resume_writing
        return lambda connection: handle_resume_writing(self)

    @property
    def handle_drain(self) -> Callable[[Any], None]:
        handle_drain = self._handler.handle_drain
        return lambda connection: handle_drain(self)

    def _refuse(self, reason: ValueError) -> None:
        """Input broke a limit: tell the handler why, then close.  The
        handler is told first so that it may write a last reply (an HTTP
        431, a RESP error), which the close then sends."""
        handle_close = getattr(self._handler, "handle_close", None)
        try:
            if handle_close is not None:
                handle_close(self, reason)
        finally:
            self.connection.close()

    @classmethod
    def handler(cls, func: Callable[..., Any] | None = None) -> Any:
        """Decorate a generator handler that talks through this adapter."""
        return ngi.generator.handler(func, connection_adapter=cls)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.connection!r}>"


class _Framed(Base):
    """An adapter whose input is cut into records by a core `Framer`, the
    one both implementations use (see ngi._framing.pxi).

    ngi.net's core recognises it by `_framer`, and then calls
    ``_handler.handle_input(self, record)`` and `_refuse` itself: those
    three names are the core's contract with this class.
    """

    _framer: Any

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete record, kept until the rest arrives."""
        return self._framer.buffered

    def handle_input(self, connection: Any, data: bytes) -> None:
        framer = self._framer
        if type(data) is not bytes:
            data = bytes(data)
        pos = 0
        while True:
            # One record at a time: a handler may call expect() between.
            record, pos = framer.cut(data, pos)
            if record is None:
                break
            if not self.connection:
                return  # the application closed it; it wants no more
            # Looked up per record: a handler may switch handlers.
            self._handler.handle_input(self, record)
        if framer.error is not None and self.connection:
            self._refuse(framer.error)


class Delimited(_Framed):
    """Input records end with ``delimiter`` (1 to 64 bytes, for example
    ``b'\\r\\n'``, or ``b'\\r\\n\\r\\n'`` for an HTTP header block); the
    handler gets each without it.  Output passes through unchanged."""

    def __init__(self, connection: Any, delimiter: bytes,
                 max_size: int = 1 << 20) -> None:
        super().__init__(connection)
        self.delimiter = delimiter
        self.max_size = non_negative_int("max_size", max_size)
        self._framer = _core.Framer.delimited(
            delimiter, max_size, MessageTooLarge,
            f"a record longer than max_size={max_size} bytes with no "
            f"{delimiter!r}")


    def expect(self, size: int) -> None:
        """The next record is the next ``size`` bytes, delimiters and all
        (an HTTP body after its head); records then end with the
        delimiter again.  Call it from ``handle_input``, between records."""
        self._framer.expect(size)


class Lines(Delimited):
    """Input records end with ``b'\\n'``; the handler gets them without it."""

    def __init__(self, connection: Any, max_line: int = 1 << 20) -> None:
        Base.__init__(self, connection)
        self.delimiter = b"\n"
        self.max_line = self.max_size = non_negative_int("max_line", max_line)
        self._framer = _core.Framer.delimited(
            b"\n", max_line, LineTooLong,
            f"a line longer than max_line={max_line} bytes")


class Sized(_Framed):
    """Records are preceded by a 4-byte big-endian length, both ways."""

    def __init__(self, connection: Any, max_size: int = 16 << 20) -> None:
        super().__init__(connection)
        self.max_size = non_negative_int("max_size", max_size)
        self._framer = _core.Framer.sized(max_size, MessageTooLarge)

    def write(self, data: Any) -> None:
        """Send ``data`` as one record, or the null marker for ``None``."""
        if data is None:
            self.connection.write(_NULL)
            return
        # One write, so that the prefix and the body stay together when
        # other threads write too.  A small body is joined to its prefix
        # (cheaper than a second part); a large one is not copied where the
        # connection can send both parts at once (ngi.net's writev).
        if type(data) is bytes and len(data) < _JOIN_BELOW:
            self.connection.write(_pack_size(len(data)) + data)
            return
        prefix, size = _prefix(data)
        writev = getattr(self.connection, "writev", None)
        if writev is not None and size >= _JOIN_BELOW:
            writev((prefix, data))
        else:
            self.connection.write(prefix + data)

    def writelines(self, data: Iterable[Any]) -> None:
        """Send each item as a record; items are still pulled lazily."""
        check_writelines(data, f"{type(self).__name__}.writelines()")
        self.connection.writelines(_framed(data))


class RESP(_Framed):
    """Input records are Redis commands (RESP 2): each is the list of its
    arguments as ``bytes``, sent as an array of bulk strings or typed as an
    inline command; empty ones are skipped.  Output passes through
    unchanged (the replies are the application's to write).  A bulk
    string over ``max_size`` (Redis's 512 MiB by default), or input that
    is not RESP, closes the connection with a `ProtocolError` worded as
    Redis words it."""

    def __init__(self, connection: Any, max_size: int = 512 << 20) -> None:
        super().__init__(connection)
        self.max_size = non_negative_int("max_size", max_size)
        self._framer = _core.Framer.resp(max_size, ProtocolError)


_JOIN_BELOW = 4096  # bytes: a smaller Sized record is joined to its prefix


def _prefix(data: Any) -> tuple[bytes, int]:
    """The length prefix of a record, and its length."""
    if type(data) is bytes:
        size = len(data)
    else:
        try:
            size = memoryview(data).nbytes
        except TypeError:
            raise TypeError(
                "Sized.write expects a bytes-like object or None, "
                f"not {type(data).__name__}") from None
    if size > _MAX_SIZE:
        raise ValueError(
            f"a Sized record holds at most {_MAX_SIZE} bytes, not {size}")
    return _pack_size(size), size


def _framed(items: Iterable[Any]) -> Iterator[bytes]:
    # A generator, so writelines stays lazy.  A bad item raises here, inside
    # the iterator, and the implementation reports it via handle_exception.
    for item in items:
        if item is None:
            yield _NULL
        else:
            yield _prefix(item)[0]
            yield item
