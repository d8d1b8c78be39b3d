"""Send one message, wait for the reply: the simplest blocking client.

`message` connects, writes the data and collects the reply.  The reply is
complete when the server closes the connection, or, with ``expected``, as
soon as ``expected(reply_so_far)`` is true (the client then closes).

How it ends:

- the reply is returned when ``expected`` was satisfied, or, without
  ``expected``, when the peer closed normally (reason ``'closed'``);
- `UnexpectedResponse(reply, reason)` when the peer closed before
  ``expected`` was satisfied (whatever the reason), or, without
  ``expected``, closed abnormally (a reset, a network error): the reply
  may be cut short, so it is not passed off as complete;
- `CouldNotConnect(reason)` when the connection could not be made;
- `ngi.interfaces.Timeout` when ``timeout`` passes first
  (`ngi.blocking.ConnectionTimeout` while still connecting); the
  connection is then closed.

An exception raised by ``expected`` closes the connection and is raised in
the caller.  The waiting is done by `ngi.blocking.request`.
"""
from __future__ import annotations

from typing import Any, Callable

from ngi import blocking
from ngi._rules import as_bytes
from ngi.interfaces import ConnectionFailed, Timeout

__all__ = ["message", "CouldNotConnect", "UnexpectedResponse"]


class CouldNotConnect(ConnectionFailed):
    """The server could not be reached; ``reason`` says why."""

    @property
    def reason(self) -> Any:
        return self.args[0]


class UnexpectedResponse(Exception):
    """The connection closed before a complete reply arrived.

    ``data`` is what arrived, ``reason`` the close reason.
    """

    def __init__(self, data: bytes, reason: Any) -> None:
        super().__init__(data, reason)
        self.data = data
        self.reason = reason


def message(connect: Callable | None, address: Any, data: bytes,
            expected: Callable[[bytes], Any] | None = None,
            timeout: float | None = None) -> bytes:
    """Send ``data`` to ``address`` and return the reply (see the module).

    ``connect`` is a connector such as ``ngi.net.connect`` (the default,
    when ``None``) or ``ngi.testing.connect``.
    """
    data = as_bytes(data, "message()")  # refused here, before connecting
    exchange = _Exchange(data, expected)
    try:
        reason = blocking.request(connect, address, exchange, timeout)
    except ConnectionFailed as e:
        if isinstance(e, Timeout):
            raise
        raise CouldNotConnect(e.args[0] if e.args else None) from e.__cause__
    reply = bytes(exchange.reply)
    if exchange.satisfied or (expected is None and reason == "closed"):
        return reply
    raise UnexpectedResponse(reply, reason)


class _Exchange:
    """Writes the message once connected, gathers the reply."""

    def __init__(self, data: bytes,
                 expected: Callable[[bytes], Any] | None) -> None:
        self.data = data
        self.expected = expected
        self.reply = bytearray()
        self.satisfied = False

    def connected(self, connection: Any) -> None:
        connection.set_handler(self)
        connection.write(self.data)

    def handle_input(self, connection: Any, data: bytes) -> None:
        if self.satisfied:
            return
        self.reply += data
        if self.expected is not None and self.expected(bytes(self.reply)):
            self.satisfied = True
            connection.close()
