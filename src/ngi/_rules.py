"""The rules of the NGI contract that every implementation applies alike.

Argument checks and defaults live here once, so that ``ngi.testing`` and
``ngi.net`` (its Python layer and its Cython core) cannot drift apart: a
test that passes in memory fails the same way on real sockets.  These are
called off the hot path only (the core's ``write`` of ``bytes`` never gets
here).  Every error names the call or argument and what was expected.
"""
from __future__ import annotations

import logging
import math
import numbers
from typing import Any

__all__ = [
    "DEFAULT_HIGH", "DEFAULT_LOW", "non_negative_int", "positive_int",
    "write_limits", "as_bytes", "check_writelines", "check_handler",
    "connect_handler", "seconds", "NO_HANDLER",
]

# What both implementations log, at WARNING, when a server callable returns
# without setting a handler: nothing is ever read, and the client hangs.
NO_HANDLER = ("server callable %r returned without setting a handler on %r: "
              "nothing will be read from it")

DEFAULT_HIGH = 64 * 1024  # write-buffer marks: asyncio's defaults
DEFAULT_LOW = 16 * 1024

# Bytes-like objects are iterable (of ints), and so is str: passed to
# writelines they would fail item by item, later and far from the mistake.
_SINGLE_BUFFERS = (bytes, bytearray, memoryview, str)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def non_negative_int(name: str, value: Any) -> int:
    """``value`` if it is an int >= 0 (not a bool), else ValueError."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


def positive_int(name: str, value: Any) -> int:
    """``value`` if it is an int >= 1 (not a bool), else ValueError."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def write_limits(high: Any = None, low: Any = None) -> tuple[int, int]:
    """The (high, low) marks ``set_write_limits(high, low)`` puts in force.

    asyncio's rules: both default to 64 KiB / 16 KiB; ``high`` alone sets
    ``low`` to ``high // 4``; ``low`` alone sets ``high`` to ``4 * low``;
    ``low`` may not exceed ``high``.
    """
    if high is not None:
        non_negative_int("high", high)
    if low is not None:
        non_negative_int("low", low)
    if high is None:
        high = DEFAULT_HIGH if low is None else 4 * low
    if low is None:
        low = high // 4
    if low > high:
        raise ValueError(f"low ({low}) must not be above high ({high})")
    return high, low


def as_bytes(data: Any, where: str, noun: str = "data") -> bytes:
    """A ``bytes`` snapshot of bytes-like ``data`` (later changes to a
    bytearray or memoryview do not leak into what is sent), else TypeError
    naming ``where`` and the type given."""
    if type(data) is bytes:
        return data
    if not isinstance(data, str):
        try:
            return memoryview(data).tobytes()
        except TypeError:
            pass
    raise TypeError(f"{where} expects bytes-like {noun}, got "
                    f"{type(data).__name__}")


def check_writelines(data: Any, where: str = "writelines()") -> None:
    """Refuse a single buffer where an iterable of buffers is expected."""
    if isinstance(data, _SINGLE_BUFFERS):
        raise TypeError(f"{where} expects an iterable of bytes-like objects, "
                        f"got {type(data).__name__}; use write() for a "
                        "single chunk")


def check_handler(handler: Any, where: str, *methods: str) -> None:
    """TypeError unless ``handler`` has each of ``methods``, callable."""
    for name in methods:
        if not callable(getattr(handler, name, None)):
            raise TypeError(f"{where} expects a handler with a {name}() "
                            f"method, got {handler!r}")


def connect_handler(handler: Any, address: Any, where: str,
                    logger: logging.Logger) -> Any:
    """The connect handler to use for ``connect(address, handler)``.

    ``handler`` must have ``connected``.  ``failed_connect`` is optional,
    as it was in zc.ngi: without one, a failed connect is logged at WARNING
    with the address and the reason, on ``logger``.
    """
    check_handler(handler, where, "connected")
    if callable(getattr(handler, "failed_connect", None)):
        return handler
    return _LoggedFailure(handler, address, logger)


class _LoggedFailure:
    """A connect handler without ``failed_connect``, given one that logs."""

    def __init__(self, handler: Any, address: Any,
                 logger: logging.Logger) -> None:
        self.handler = handler
        self.connected = handler.connected
        self.address = address
        self.logger = logger

    def __repr__(self) -> str:
        return repr(self.handler)

    def failed_connect(self, reason: Any) -> None:
        self.logger.warning("connect to %r failed: %s (%r has no "
                            "failed_connect)", self.address, reason,
                            self.handler)


def seconds(where: str, value: Any, negative_ok: bool = False) -> float:
    """A number of seconds as a float: a real number, not NaN, and not
    negative unless ``negative_ok`` (a negative delay then means now)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{where} expects a number of seconds, got "
                        f"{type(value).__name__}")
    value = float(value)
    if math.isnan(value) or (value < 0 and not negative_ok):
        raise ValueError(f"{where} expects a non-negative number of seconds, "
                         f"got {value!r}")
    return max(value, 0.0)
