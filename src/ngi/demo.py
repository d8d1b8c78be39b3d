"""A word-count server and its client, run in memory by ``ngi demo``.

The same handler classes would serve real sockets through ``ngi.net``; the
demo uses ``ngi.testing`` so that it runs anywhere, instantly, and shows
what crosses the (simulated) wire.
"""
from __future__ import annotations

import ngi.testing


class WordCount:
    """Server handler: for each line received, reply with its word count."""

    def __init__(self, connection):
        self.pending = b""
        connection.set_handler(self)

    def handle_input(self, connection, data):
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            connection.write(b"%d\n" % len(line.split()))

    def handle_close(self, connection, reason):
        pass


class Client:
    """Client handler: send lines, print each answer, close when done."""

    def __init__(self, lines, show):
        self.lines = lines
        self.show = show
        self.answers = []

    def connected(self, connection):
        connection.set_handler(self)
        for line in self.lines:
            self.show(f"client -> {line!r}")
            connection.write(line + b"\n")

    def failed_connect(self, reason):
        self.show(f"client: connect failed: {reason}")

    def handle_input(self, connection, data):
        for answer in data.split():
            self.answers.append(int(answer))
            self.show(f"client <- {answer.decode()} words")
        if len(self.answers) == len(self.lines):
            connection.close()

    def handle_close(self, connection, reason):
        self.show(f"client: server closed ({reason})")


def run_demo(show=print):
    """Run the exchange; return the counts the client received."""
    lines = [b"hello world", b"the quick brown fox jumps", b"", b"ngi"]
    address = ("demo", 1)
    listener = ngi.testing.listener(address, WordCount)
    client = Client(lines, show)
    try:
        ngi.testing.connect(address, client)
    finally:
        listener.close()
    show(f"done: {client.answers}")
    return client.answers
