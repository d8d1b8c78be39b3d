"""A word-count server, and a client for scripts built on ngi.blocking.

The server answers each line with the number of words in it::

    ngi serve examples.wordcount:server --bind 127.0.0.1:8000
    python -m examples.wordcount 127.0.0.1:8000 < some.txt
"""
import sys

import ngi.adapters
import ngi.blocking


@ngi.adapters.Lines.handler
def server(connection):
    """A generator handler: the Lines adapter hands it one line at a time."""
    while True:
        line = yield
        connection.write(b"%d\n" % len(line.split()))


def count_words(address, lines, connect=None, timeout=10):
    """Send ``lines`` (bytes, without newlines); return the server's counts.

    ``connect`` defaults to ``ngi.net.connect``; pass ``ngi.testing.connect``
    to talk to an in-memory listener.
    """
    output, input = ngi.blocking.open(address, connect, timeout=timeout)
    try:
        for line in lines:
            output.write(line + b"\n")
        return [int(input.readline(timeout=timeout)) for _ in lines]
    finally:
        output.close()


def main(argv=None):
    from ngi.cli import parse_bind
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m examples.wordcount HOST:PORT < text",
              file=sys.stderr)
        return 2
    lines = sys.stdin.buffer.read().splitlines()
    for line, count in zip(lines, count_words(parse_bind(argv[0]), lines)):
        print(count, line.decode(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
