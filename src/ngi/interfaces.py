"""The NGI interfaces, as runtime-checkable ``typing.Protocol`` classes.

Application objects implement the *application* interfaces (handlers,
servers); ``ngi`` implementations provide the *implementation* interfaces
(connections, listeners, implementations).  Optional methods are documented
on the protocols but left out of the structural check, so that
``isinstance(obj, IConnectionHandler)`` asks only for what is required.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol, runtime_checkable

__all__ = [
    "ConnectionFailed", "Timeout", "ConnectionClosed",
    "IConnectionHandler", "IClientConnectHandler", "IServer", "IUDPHandler",
    "IConnection", "IServerConnection", "IImplementation", "IListener",
    "IUDPListener",
]


class ConnectionFailed(Exception):
    """A connection could not be established."""


class Timeout(Exception):
    """A blocking operation did not finish in the time allowed."""


class ConnectionClosed(ValueError):
    """An operation was attempted on a closed connection."""


# Application interfaces ---------------------------------------------------

@runtime_checkable
class IConnectionHandler(Protocol):
    """Receives input-data events from a connection.

    Never called from two threads at once.  Optional methods:
    ``handle_close(connection, reason)`` (the connection was closed from
    outside; ``reason`` is str-convertible) and
    ``handle_exception(connection, exception)`` (an error from data passed
    to ``writelines``).
    """

    def handle_input(self, connection: IConnection, data: bytes) -> None:
        """Handle ``data``; no promise is made about record boundaries."""


@runtime_checkable
class IClientConnectHandler(Protocol):
    """Receives the result of ``IImplementation.connect``."""

    def connected(self, connection: IConnection) -> None:
        """The connection was established."""

    def failed_connect(self, reason: Any) -> None:
        """The connection could not be established; ``reason`` is str-able."""


@runtime_checkable
class IServer(Protocol):
    """A callable taking a new server connection; it calls ``set_handler``."""

    def __call__(self, connection: IServerConnection) -> None: ...


@runtime_checkable
class IUDPHandler(Protocol):
    """A callable taking the sender's address and the datagram."""

    def __call__(self, address: Any, data: bytes) -> None: ...


# Implementation interfaces ------------------------------------------------

@runtime_checkable
class IConnection(Protocol):
    """One end of a connection with separate input and output channels."""

    peer_address: Any

    def __bool__(self) -> bool:
        """True while the connection is open."""

    def set_handler(self, handler: IConnectionHandler) -> None:
        """Set the handler; input that arrived before is delivered after."""

    def write(self, data: bytes) -> None:
        """Queue bytes-like ``data`` for sending; thread-safe, non-blocking."""

    def writelines(self, data: Iterable[bytes]) -> None:
        """Send each item of ``data``, pulled lazily as the output drains."""

    def close(self) -> None:
        """Close after sending what was written; no ``handle_close`` follows."""


@runtime_checkable
class IServerConnection(IConnection, Protocol):
    """A connection accepted by a listener."""

    control: IListener


@runtime_checkable
class IListener(Protocol):
    """A listening endpoint: its address, its connections, and closing."""

    address: Any

    def connections(self) -> Iterable[IServerConnection]:
        """The open connections accepted by this listener."""

    def close(self, handler: Callable[[IListener], Any] | None = None) -> None:
        """Close now, or stop accepting and call ``handler`` when drained."""


@runtime_checkable
class IUDPListener(Protocol):
    """A UDP endpoint receiving datagrams."""

    def close(self) -> None:
        """Stop receiving."""


@runtime_checkable
class IImplementation(Protocol):
    """What an NGI implementation provides."""

    def connect(self, address: Any, handler: IClientConnectHandler) -> None:
        """Connect; later ``handler.connected`` or ``handler.failed_connect``."""

    def listener(self, address: Any, server: IServer) -> IListener:
        """Listen for connections, calling ``server`` for each one."""

    def udp(self, address: Any, data: bytes) -> None:
        """Send one datagram."""

    def udp_listener(self, address: Any, handler: IUDPHandler,
                     buffer_size: int = 4096) -> IUDPListener:
        """Receive datagrams, truncated to ``buffer_size``."""
