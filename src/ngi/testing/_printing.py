"""The handlers that print what arrives, for doctests and capsys."""
from __future__ import annotations

from typing import Any


class PrintingHandler:
    """Print what arrives, so a doctest or capsys can check it.

    Data is shown as its ``repr`` in 50-character pieces: ``->`` and a
    space before the first, ``.>`` and a space before the rest.
    """

    width = 50

    def __init__(self, connection: Any = None) -> None:
        # zc.ngi's PrintingHandler(connection) installs itself.
        if connection is not None:
            connection.set_handler(self)

    def handle_input(self, connection: Any, data: bytes) -> None:
        text = repr(data)
        prefix = "->"
        for start in range(0, len(text), self.width):
            print(prefix, text[start:start + self.width])
            prefix = ".>"

    def handle_close(self, connection: Any, reason: Any) -> None:
        if reason == "closed":
            print("-> CLOSE")
        else:
            print("-> CLOSE", reason)

    def handle_exception(self, connection: Any, exception: Exception) -> None:
        print("-> EXCEPTION", type(exception).__name__, exception)


class TextPrintingHandler(PrintingHandler):
    """Print arriving data as text, for line-oriented protocols.

    A newline is added when the data does not end with one, so that the
    output of each ``handle_input`` reads as whole lines in a doctest.
    """

    encoding = "utf-8"

    def handle_input(self, connection: Any, data: bytes) -> None:
        text = data.decode(self.encoding, errors="replace")
        print(text, end="" if text.endswith("\n") else "\n")


class UDPPrintingHandler:
    """Print each datagram a UDP listener at ``address`` gets: what
    ``udp_listener(address)`` without a handler uses, as zc.ngi's did."""

    def __init__(self, address: Any) -> None:
        self.address = address

    def __call__(self, sender: Any, data: bytes) -> None:
        print(f"udp from {sender!r} to {self.address!r}:\n  {data!r}")
