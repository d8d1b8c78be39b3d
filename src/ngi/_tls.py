"""The TLS rules both implementations share: arguments, defaults, reasons.

``ngi.net`` (its core) and ``ngi.testing`` run the same ``ssl`` objects,
one over sockets and one over memory; what they accept, what they time
out, and what they tell a handler are decided here once.  Called off the
hot path only.

Choices (asyncio's where it has one):

* ``listener(..., ssl=context)`` needs an ``ssl.SSLContext`` (a server
  needs its certificate); ``connect(..., ssl=True)`` means
  ``ssl.create_default_context()``: certificates and the host name are
  verified.
* ``server_hostname`` defaults to the host of a (host, port) address; a
  Unix path has none, so it must be given.  ``''`` sends no SNI and checks
  no name (the context must then have ``check_hostname`` off).  Given
  without ``ssl`` it is a mistake, and refused.
* A handshake that has not completed ``handshake_timeout`` seconds (60)
  after the TCP connection was made is dropped; after ``close()`` has sent
  everything and our ``close_notify``, the peer's ``close_notify`` (or its
  EOF) is awaited ``shutdown_timeout`` seconds (30) at most.
* A peer that ends the TCP stream without ``close_notify`` may have been
  cut off by an attacker: the handler's ``handle_close`` gets `truncated()`,
  an ``ssl.SSLEOFError`` that says so, not ``'closed'``.
"""
from __future__ import annotations

import ssl
from typing import Any

from ngi import _rules

__all__ = [
    "HANDSHAKE_TIMEOUT", "SHUTDOWN_TIMEOUT", "server_context",
    "client_context", "timeouts", "start_tls_args", "truncated",
    "handshake_timed_out", "log_failed_handshake", "openssl_error",
]

HANDSHAKE_TIMEOUT = 60.0  # seconds; asyncio's ssl_handshake_timeout
SHUTDOWN_TIMEOUT = 30.0   # seconds; asyncio's ssl_shutdown_timeout

TRUNCATED = ("the peer closed the connection without a TLS close_notify: "
             "what it sent may have been cut short")


def server_context(context: Any, where: str = "listener()") -> ssl.SSLContext | None:
    """The server side's context, or None for plaintext."""
    if context is None:
        return None
    if not isinstance(context, ssl.SSLContext):
        raise TypeError(f"{where} expects ssl to be an ssl.SSLContext holding "
                        f"the server's certificate, or None; got {context!r}")
    return context


def client_context(context: Any, server_hostname: Any, address: Any,
                   where: str = "connect()") -> tuple[ssl.SSLContext | None, str | None]:
    """(context, server_hostname) for a client, or (None, None) for plaintext.

    ``context`` is an ``ssl.SSLContext``, True (the default context) or
    None; the host name defaults to the address's host.
    """
    if context is None or context is False:
        if server_hostname is not None:
            raise ValueError(f"{where}: server_hostname is only meaningful "
                             "with ssl")
        return None, None
    if context is True:
        context = ssl.create_default_context()
    elif not isinstance(context, ssl.SSLContext):
        raise TypeError(f"{where} expects ssl to be an ssl.SSLContext, True "
                        f"(the default context) or None; got {context!r}")
    return context, _hostname(server_hostname, address, where)


def _hostname(server_hostname: Any, address: Any, where: str) -> str | None:
    if server_hostname is None:
        if isinstance(address, tuple) and address and isinstance(address[0], str):
            return address[0]
        raise ValueError(f"{where} needs server_hostname for TLS to "
                         f"{address!r}: an address without a host name (a "
                         "Unix path) has none to check")
    if not isinstance(server_hostname, str):
        raise TypeError(f"{where} expects server_hostname to be a str, got "
                        f"{type(server_hostname).__name__}")
    return server_hostname or None


def timeouts(handshake_timeout: Any, shutdown_timeout: Any,
             where: str) -> tuple[float, float]:
    """The two bounds as positive floats (seconds)."""
    result = []
    for name, value in (("handshake_timeout", handshake_timeout),
                        ("shutdown_timeout", shutdown_timeout)):
        seconds = _rules.seconds(f"{where} {name}", value)
        if seconds <= 0:
            raise ValueError(f"{where} {name} must be positive, got {value!r}")
        result.append(seconds)
    return result[0], result[1]


def start_tls_args(context: Any, server_side: Any,
                   server_hostname: Any) -> tuple[ssl.SSLContext, bool, str | None]:
    """Check ``start_tls(context, server_side, server_hostname)``."""
    if not isinstance(context, ssl.SSLContext):
        raise TypeError("start_tls() expects an ssl.SSLContext, got "
                        f"{context!r}")
    if not isinstance(server_side, bool):
        raise TypeError("start_tls() expects server_side to be a bool, got "
                        f"{type(server_side).__name__}")
    if server_side:
        if server_hostname is not None:
            raise ValueError("start_tls(): server_hostname is for the "
                             "client side")
        return context, True, None
    if server_hostname is not None and not isinstance(server_hostname, str):
        raise TypeError("start_tls() expects server_hostname to be a str, got "
                        f"{type(server_hostname).__name__}")
    if server_hostname is None and context.check_hostname:
        raise ValueError("start_tls() needs server_hostname on the client "
                         "side (or a context with check_hostname off)")
    return context, False, server_hostname or None


def truncated() -> ssl.SSLEOFError:
    """The close reason of a peer that ended TCP without close_notify."""
    return ssl.SSLEOFError(ssl.SSL_ERROR_EOF, TRUNCATED)


def openssl_error(kind: int, text: str, reason: str | None) -> ssl.SSLError:
    """The exception the ssl module would raise for an OpenSSL failure met
    by the core's direct calls: `kind` is SSL_get_error()'s, `text` the
    error's ERR_error_string, `reason` its reason string (or None).

    An input that ended without close_notify is an ``ssl.SSLEOFError``
    (OpenSSL 3 reports it as a reason, 1.1.1 as SSL_ERROR_SYSCALL); any
    other failure an ``ssl.SSLError`` whose ``reason`` is OpenSSL's, in
    the ssl module's spelling (``DECRYPTION_FAILED_OR_BAD_RECORD_MAC``).
    """
    if kind == ssl.SSL_ERROR_SYSCALL or (reason and "unexpected eof" in reason):
        return ssl.SSLEOFError(ssl.SSL_ERROR_EOF,
                               "EOF occurred in violation of protocol")
    if not reason:
        return ssl.SSLError(kind, f"TLS failure (SSL_get_error {kind})")
    mnemonic = reason.upper().replace(" ", "_")
    fields = text.split(":")  # error:CODE:LIBRARY:FUNCTION:REASON
    library = "SSL" if "SSL routines" in text else fields[2] if len(fields) > 2 else ""
    error = ssl.SSLError(kind, f"[{library}: {mnemonic}] {reason} ({text})")
    error.library, error.reason = library, mnemonic
    return error


def handshake_timed_out(seconds: float) -> TimeoutError:
    """The failure of a handshake that took longer than its bound."""
    return TimeoutError(f"the TLS handshake did not complete within "
                        f"{seconds:g} seconds")


def log_failed_handshake(logger: Any, peer: Any, reason: Any) -> None:
    """A server-side handshake failed: the server callable never ran."""
    logger.info("TLS handshake with %r failed: %s", peer, reason)
