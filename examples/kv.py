"""A small key-value server speaking the Redis protocol (RESP 2).

    ngi serve examples.kv:server --bind 127.0.0.1:6380
    redis-cli -p 6380 set greeting hello
    redis-benchmark -p 6380 -t ping,set,get -P 16 -q

Commands: ``PING [message]``, ``GET key``, ``SET key value``, ``QUIT``;
``CONFIG GET`` and ``COMMAND`` answer an empty list, which is all
redis-benchmark and redis-cli ask of them.  Both request forms are read:
arrays of bulk strings (what clients send) and inline commands (``PING``
typed into telnet).  Pipelined requests are answered with one write.

The data lives in the server object, one per process: with ``serve
--workers N`` every worker has its own store.
"""

MAX_INLINE = 64 * 1024
MAX_BULK = 512 * 1024 * 1024  # Redis's own limit


class ProtocolError(ValueError):
    pass


def parse_command(buffer, start):
    """Parse one command at ``buffer[start:]``.

    Returns ``(arguments, next_start)``, or ``None`` if the command is not
    all there yet.  Raises ProtocolError for what is not RESP.
    """
    if buffer[start:start + 1] != b"*":
        end = buffer.find(b"\n", start)
        if end < 0:
            if len(buffer) - start > MAX_INLINE:
                raise ProtocolError("too big inline request")
            return None
        return buffer[start:end].split(), end + 1
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return None
    count = _number(buffer[start + 1:end])
    arguments = []
    pos = end + 2
    for _ in range(count):
        end = buffer.find(b"\r\n", pos)
        if end < 0:
            return None
        if buffer[pos:pos + 1] != b"$":
            raise ProtocolError(f"expected '$', got {buffer[pos:pos + 1]!r}")
        size = _number(buffer[pos + 1:end])
        if size > MAX_BULK:
            raise ProtocolError("invalid bulk length")
        pos = end + 2
        if len(buffer) < pos + size + 2:
            return None
        arguments.append(buffer[pos:pos + size])
        pos += size + 2
    return arguments, pos


def _number(text):
    if not text.isdigit():
        raise ProtocolError(f"invalid length {text!r}")
    return int(text)


def bulk(value):
    if value is None:
        return b"$-1\r\n"
    return b"$%d\r\n%s\r\n" % (len(value), value)


class Store:
    """The commands, over a dict."""

    def __init__(self):
        self.data = {}

    def execute(self, arguments):
        """The reply to one command, as RESP bytes."""
        name = arguments[0].upper()
        method = self.COMMANDS.get(name)
        if method is None:
            return b"-ERR unknown command '%s'\r\n" % arguments[0][:100]
        try:
            return method(self, *arguments[1:])
        except TypeError:
            return (b"-ERR wrong number of arguments for '%s' command\r\n"
                    % name.lower())

    def ping(self, message=None):
        return b"+PONG\r\n" if message is None else bulk(message)

    def get(self, key):
        return bulk(self.data.get(key))

    def set(self, key, value):
        self.data[key] = value
        return b"+OK\r\n"

    def empty_list(self, *arguments):
        return b"*0\r\n"

    COMMANDS = {b"PING": ping, b"GET": get, b"SET": set,
                b"CONFIG": empty_list, b"COMMAND": empty_list}


class Client:
    """The ngi handler of one client connection."""

    def __init__(self, store, connection):
        self.store = store
        self.buffer = b""
        connection.set_handler(self)

    def handle_input(self, connection, data):
        buffer = self.buffer + data if self.buffer else data
        replies = []
        start = 0
        close = False
        try:
            while start < len(buffer):
                parsed = parse_command(buffer, start)
                if parsed is None:
                    break
                arguments, start = parsed
                if not arguments:
                    continue  # an empty inline line
                if arguments[0].upper() == b"QUIT":
                    replies.append(b"+OK\r\n")
                    close = True
                    break
                replies.append(self.store.execute(arguments))
        except ProtocolError as e:
            replies.append(b"-ERR Protocol error: %s\r\n" % str(e).encode())
            close = True
        self.buffer = buffer[start:]
        if replies:
            connection.write(b"".join(replies))
        if close:
            connection.close()

    def handle_close(self, connection, reason):
        pass


class Server:
    """The ``IServer``: every connection shares one `Store`."""

    def __init__(self):
        self.store = Store()

    def __call__(self, connection):
        Client(self.store, connection)


server = Server()
