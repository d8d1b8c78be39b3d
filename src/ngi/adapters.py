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
  yourself.
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
``handle_close`` gets a `LineTooLong` or `MessageTooLarge` as the reason.
Nothing is buffered beyond the limit, whatever a length prefix claims.
Flow control (``write_buffer_size``, ``set_write_limits``,
``pause_reading``/``resume_reading``/``reading``, and the handler's
``handle_pause_writing``/``handle_resume_writing``) passes through.
"""
from __future__ import annotations

import struct
from typing import Any, Callable, Iterable, Iterator

import ngi.generator
from ngi._rules import check_writelines, non_negative_int

__all__ = ["Base", "Lines", "Sized", "LineTooLong", "MessageTooLarge"]

_NULL = b"\xff\xff\xff\xff"
_MAX_SIZE = 0xFFFFFFFE  # 0xFFFFFFFF is the null marker
_pack_size = struct.Struct(">I").pack


class LineTooLong(ValueError):
    """A line exceeded the adapter's ``max_line``."""


class MessageTooLarge(ValueError):
    """A record exceeded the adapter's ``max_size``."""


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

    def _refuse(self, reason: ValueError) -> None:
        """Input broke a limit: close, and tell the handler why."""
        self.connection.close()
        handle_close = getattr(self._handler, "handle_close", None)
        if handle_close is not None:
            handle_close(self, reason)

    @classmethod
    def handler(cls, func: Callable[..., Any] | None = None) -> Any:
        """Decorate a generator handler that talks through this adapter."""
        return ngi.generator.handler(func, connection_adapter=cls)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.connection!r}>"


class Lines(Base):
    """Input records end with ``b'\\n'``; the handler gets them without it."""

    def __init__(self, connection: Any, max_line: int = 1 << 20) -> None:
        super().__init__(connection)
        self.max_line = non_negative_int("max_line", max_line)
        self._pieces: list[bytes] = []  # the incomplete line, in pieces
        self._buffered = 0              # total length of _pieces

    def handle_input(self, connection: Any, data: bytes) -> None:
        # Only the new chunk is searched; earlier pieces of a partial line
        # are joined once, when its end arrives.
        lines = data.split(b"\n")
        rest = lines.pop()
        if lines and self._pieces:
            if self._buffered + len(lines[0]) > self.max_line:
                return self._too_long()
            self._pieces.append(lines[0])
            lines[0] = b"".join(self._pieces)
            self._pieces = []
            self._buffered = 0
        for line in lines:
            if not self.connection:
                return  # the application closed it; it wants no more
            if len(line) > self.max_line:
                return self._too_long()
            # Looked up per line: a handler may switch handlers.
            self._handler.handle_input(self, line)
        if rest and self.connection:
            if self._buffered + len(rest) > self.max_line:
                return self._too_long()
            self._keep(rest)

    def _too_long(self) -> None:
        self._pieces = []
        self._buffered = 0
        self._refuse(LineTooLong(
            f"a line longer than max_line={self.max_line} bytes"))

    def _keep(self, piece: bytes) -> None:
        self._pieces.append(piece)
        self._buffered += len(piece)


class Sized(Base):
    """Records are preceded by a 4-byte big-endian length, both ways."""

    def __init__(self, connection: Any, max_size: int = 16 << 20) -> None:
        super().__init__(connection)
        self.max_size = non_negative_int("max_size", max_size)
        self._pieces: list[bytes] = []  # the incomplete header or body
        self._got = 0                   # total length of _pieces
        self._want = 4                  # length of the header or body
        self._in_header = True

    def handle_input(self, connection: Any, data: bytes) -> None:
        # Each input byte is copied at most twice (slice, then join), so
        # any split of the input costs time linear in its size.
        pos = 0
        end = len(data)
        while True:
            need = self._want - self._got
            if end - pos < need:
                if pos < end:
                    self._pieces.append(data[pos:] if pos else data)
                    self._got += end - pos
                return
            chunk = data[pos:pos + need]
            pos += need
            if self._pieces:
                self._pieces.append(chunk)
                chunk = b"".join(self._pieces)
                self._pieces = []
                self._got = 0
            if self._in_header:
                if chunk == _NULL:
                    continue
                size = int.from_bytes(chunk, "big")
                if size > self.max_size:
                    self._pieces = []
                    self._got = 0
                    return self._refuse(MessageTooLarge(
                        f"a {size}-byte record is over max_size="
                        f"{self.max_size} bytes"))
                self._want = size
                self._in_header = False
            else:
                self._want = 4
                self._in_header = True
                if not self.connection:
                    return  # the application closed it; it wants no more
                self._handler.handle_input(self, chunk)

    def write(self, data: Any) -> None:
        """Send ``data`` as one record, or the null marker for ``None``."""
        if data is None:
            self.connection.write(_NULL)
        else:
            # One write, so that the prefix and the body stay together
            # when other threads write too.
            self.connection.write(_prefix(data) + data)

    def writelines(self, data: Iterable[Any]) -> None:
        """Send each item as a record; items are still pulled lazily."""
        check_writelines(data, f"{type(self).__name__}.writelines()")
        self.connection.writelines(_framed(data))


def _prefix(data: Any) -> bytes:
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
    return _pack_size(size)


def _framed(items: Iterable[Any]) -> Iterator[bytes]:
    # A generator, so writelines stays lazy.  A bad item raises here, inside
    # the iterator, and the implementation reports it via handle_exception.
    for item in items:
        if item is None:
            yield _NULL
        else:
            yield _prefix(item)
            yield item
