"""A small key-value server speaking the Redis protocol (RESP 2).

    ngi serve examples.kv:server --bind 127.0.0.1:6380
    redis-cli -p 6380 set greeting hello
    redis-benchmark -p 6380 -t ping,set,get -P 16 -q

Commands: ``PING [message]``, ``GET key``, ``SET key value``, ``QUIT``;
``CONFIG GET`` and ``COMMAND`` answer an empty list, which is all
redis-benchmark and redis-cli ask of them.  Both request forms are read:
arrays of bulk strings (what clients send) and inline commands (``PING``
typed into telnet).  The replies to pipelined requests leave together,
in one system call (the core's write coalescing).

``FETCH key`` asks an upstream Redis-protocol server (``Server(upstream=
(host, port))``, say a redis-server) for the key, through an asyncio
client (`fetch`, on ``asyncio.open_connection``) run by an
``ngi.aio.Bridge``, and keeps the value: a cache in front of a database.
While the answer is on its way, later commands wait (up to
``MAX_WAITING`` of them; then reading pauses), so that pipelined replies
keep their order; if the client goes away meanwhile, the asyncio call is
cancelled.

The data lives in the server object, one per process: with ``serve
--workers N`` every worker has its own store.
"""

import asyncio

from ngi.adapters import RESP, ProtocolError

MAX_BULK = 512 * 1024 * 1024  # Redis's own limit


BYE = object()    # what QUIT returns: the client answers +OK and closes
FETCH = object()  # what FETCH returns: the client asks the upstream


def bulk(value):
    if value is None:
        return b"$-1\r\n"
    return b"$%d\r\n%s\r\n" % (len(value), value)


class Store:
    """The commands, over a dict."""

    def __init__(self):
        self.data = {}

    def execute(self, arguments):
        """The reply to one command, as RESP bytes (or `BYE` for QUIT)."""
        name = arguments[0]
        # Clients send names in capitals: most commands need no upper().
        method = self.COMMANDS.get(name) or self.COMMANDS.get(name.upper())
        if method is None:
            return b"-ERR unknown command '%s'\r\n" % name[:100]
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

    def quit(self):
        return BYE

    def fetch(self, *arguments):
        return FETCH  # the client asks the upstream

    COMMANDS = {b"PING": ping, b"GET": get, b"SET": set, b"QUIT": quit, b"FETCH": fetch,
                b"CONFIG": empty_list, b"COMMAND": empty_list}


FETCH_TIMEOUT = 5.0  # seconds for the upstream to connect, and to answer
MAX_WAITING = 10_000  # commands held behind a FETCH before reading pauses


async def fetch(upstream, key, timeout=FETCH_TIMEOUT):
    """``GET key`` from the Redis-protocol server at ``upstream`` (host,
    port), with asyncio streams: the value, or None if it has none."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(*upstream), timeout)
    try:
        writer.write(b"*2\r\n$3\r\nGET\r\n" + bulk(key))
        await writer.drain()
        header = await asyncio.wait_for(reader.readline(), timeout)
        if header.startswith(b"$-1"):
            return None
        if (not header.startswith(b"$") or not header.endswith(b"\r\n")
                or not header[1:-2].isdigit()):
            raise ProtocolError(f"upstream answered {header[:100]!r}")
        size = int(header[1:-2])
        body = await asyncio.wait_for(reader.readexactly(size + 2), timeout)
        return body[:-2]
    finally:
        writer.close()


class Client:
    """The ngi handler of one client connection: the core cuts the
    commands out of the input (`ngi.adapters.RESP`)."""

    def __init__(self, store, connection, server=None):
        self.store = store
        self.server = server
        self.waiting = None  # while a FETCH is out: the commands after it
        RESP(connection, max_size=MAX_BULK).set_handler(self)

    def handle_input(self, connection, arguments):
        if self.waiting is not None:
            self.waiting.append(arguments)
            if len(self.waiting) == MAX_WAITING:
                connection.pause_reading()  # until the FETCH is answered
            return
        self.answer(connection, arguments)

    def answer(self, connection, arguments):
        reply = self.store.execute(arguments)
        if reply is BYE:
            connection.write(b"+OK\r\n")
            connection.close()
        elif reply is FETCH:
            self.fetch(connection, arguments)
        else:
            connection.write(reply)

    def fetch(self, connection, arguments):
        if len(arguments) != 2:
            connection.write(b"-ERR wrong number of arguments for 'fetch' "
                             b"command\r\n")
        elif self.server is None or self.server.upstream is None:
            connection.write(b"-ERR no upstream configured\r\n")
        else:
            key = arguments[1]
            self.waiting = []  # later commands wait for this one
            self.server.bridge.call(
                fetch(self.server.upstream, key),
                lambda future: self.fetched(connection, key, future),
                connection)

    def fetched(self, connection, key, future):
        """On the ngi loop thread: the upstream's answer to ``FETCH key``;
        then the commands that waited for it, in order."""
        try:
            value = future.result()
        except Exception as e:
            reply = b"-ERR upstream: %s\r\n" % (
                str(e) or type(e).__name__).encode()[:200]
        else:
            if value is not None:
                self.store.data[key] = value
            reply = bulk(value)
        connection.write(reply)
        waiting, self.waiting = self.waiting, None
        for i, arguments in enumerate(waiting):
            if not connection:
                return
            self.answer(connection, arguments)
            if self.waiting is not None:  # another FETCH: the rest wait again
                self.waiting.extend(waiting[i + 1:])
                break
        if len(waiting) >= MAX_WAITING and self.waiting is None and connection:
            connection.resume_reading()

    def handle_close(self, connection, reason):
        if isinstance(reason, ProtocolError):  # the last words, then the close
            connection.write(b"-ERR Protocol error: %s\r\n" % str(reason).encode())


class Server:
    """The ``IServer``: every connection shares one `Store`.

    ``upstream``, a (host, port), is where ``FETCH`` looks keys up; the
    asyncio loop that does it starts with the first ``FETCH`` (``bridge``:
    an ``ngi.aio.Bridge`` of your own, else one made then).
    """

    def __init__(self, upstream=None, bridge=None):
        self.store = Store()
        self.upstream = upstream
        self._bridge = bridge

    @property
    def bridge(self):
        if self._bridge is None:
            import ngi.aio
            self._bridge = ngi.aio.Bridge()
        return self._bridge

    def __call__(self, connection):
        Client(self.store, connection, self)


server = Server()
