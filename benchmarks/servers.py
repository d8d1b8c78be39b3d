"""Python echo servers for the benchmarks, one per process.

    python servers.py KIND                    KIND: ngi, ngi-aio, asyncio or uvloop
    python servers.py KIND --tls CERT KEY     the same over TLS
    python servers.py KIND --protocol PROTOCOL

``ngi-aio`` is ngi's echo handler (the same as ``ngi``'s, and the same
adapters for the framed protocols) on ``ngi.aio`` over uvloop: what an
NGI handler costs inside an asyncio program, against uvloop's own
``Protocol``.

Each listens for TCP and UDP on free 127.0.0.1 ports, prints
``ready TCP_PORT UDP_PORT`` and echoes until killed.  Every server is written
the way a user of its library would write a plain echo server; the only
tuning is a listen backlog of 4096 (ngi and the C server use SOMAXCONN,
4096 here; asyncio's default of 100 would make 10,000 connects crawl).

``--protocol`` (TCP only; the line is ``ready TCP_PORT 0``) serves records
instead of a byte stream, each written as a user of its library would:

* ``lines``: every line (ending in ``b"\n"``) is answered with itself, its
  ``b"\n"`` included, by one write.  ngi: ``ngi.adapters.Lines``; asyncio,
  uvloop: a ``Protocol`` splitting a ``bytearray`` buffer with ``split``;
  ``asyncio-streams`` (KIND, only for lines and sized): ``readline()``.
* ``sized``: every record (a 4-byte big-endian length, then that many bytes)
  is answered with itself, prefix included, by one write.  ngi:
  ``ngi.adapters.Sized`` and its ``write``; asyncio, uvloop: a ``Protocol``
  reading the length with ``int.from_bytes``; ``asyncio-streams``:
  ``readexactly()``.
* ``multiwrite``: each piece of input is answered with the same bytes in
  three writes, as a server answering with a header, a body and a trailer
  would: its first 16 bytes, the rest but 2, its last 2 (a piece shorter
  than 18 bytes in one write).
* ``echo`` (the default): the plain echo server above.

With ``--tls``, the TCP listener speaks TLS with the certificate chain CERT
and private key KEY (PEM files), through the context a user would make,
``ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)``; there is no UDP
then, and the line is ``ready TCP_PORT 0``.  The echo handlers are the
plaintext ones: a TLS connection works like a plaintext one.
"""
import ctypes
import os
import resource
import signal
import ssl
import sys

BACKLOG = 4096


def raise_descriptor_limit():
    """Allow as many connections as the hard limit does (10,000 idle ones)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def die_with_parent():
    """When the runner (NGI_BENCH_PARENT) dies, even by SIGKILL, die too."""
    parent = os.environ.get("NGI_BENCH_PARENT")
    if parent:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != int(parent):
            os._exit(1)  # it is gone already


def tls_context(files):
    """The server's context for --tls CERT KEY, or None for plaintext."""
    if files is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*files)
    return context


def ngi_server(tls=None):
    """ngi.net with the application-run loop (Inline)."""
    import ngi.net

    impl = ngi.net.Inline()
    ngi_listen(impl, tls)
    impl.loop()


def ngi_aio_server(tls=None, protocol="echo"):
    """The same ngi handlers on ngi.aio, over uvloop."""
    import asyncio

    import uvloop

    import ngi.aio

    async def main():
        impl = ngi.aio.Implementation()  # the running loop: uvloop's
        if protocol == "echo":
            ngi_listen(impl, tls)
        else:
            ngi_framed_listen(impl, protocol)
        await asyncio.Event().wait()  # until killed

    uvloop.run(main())


def ngi_listen(impl, tls=None):
    """Listen with ngi's echo handler on ``impl``; print the ready line.

    UDP replies go out through the listener's own socket (``listener.udp``),
    as the other servers' replies do.  Over TLS, ``listener(..., ssl=)``
    calls the server callable once the handshake is done.
    """
    class Echo:
        __slots__ = ()

        def handle_input(self, connection, data):
            connection.write(data)

        def handle_close(self, connection, reason):
            pass

    echo = Echo()
    if tls is not None:
        try:
            tcp = impl.listener(("127.0.0.1", 0),
                                lambda connection: connection.set_handler(echo), ssl=tls)
        except TypeError as e:
            if "ssl" not in str(e):
                raise
            sys.exit(f"servers.py: this ngi has no TLS listener yet ({e})")
        print("ready", tcp.address[1], 0, flush=True)
        return
    tcp = impl.listener(("127.0.0.1", 0), lambda connection: connection.set_handler(echo))
    listeners = []
    udp = impl.udp_listener(("127.0.0.1", 0),
                            lambda address, data: listeners[0].udp(address, data),
                            buffer_size=65536)
    listeners.append(udp)
    print("ready", tcp.address[1], udp.address[1], flush=True)


def ngi_framed_server(protocol):
    """ngi.net (Inline) with its adapters, or three writes per input."""
    import ngi.net

    impl = ngi.net.Inline()
    ngi_framed_listen(impl, protocol)
    impl.loop()


def ngi_framed_listen(impl, protocol):
    """Listen on ``impl`` with ngi's adapters, or three writes per input."""
    import ngi.adapters

    class LineEcho:
        __slots__ = ()

        def handle_input(self, connection, line):
            connection.write(line + b"\n")  # the line comes without it

        def handle_close(self, connection, reason):
            pass

    class SizedEcho:
        __slots__ = ()

        def handle_input(self, connection, message):
            connection.write(message)  # the adapter writes the length first

        def handle_close(self, connection, reason):
            pass

    class ThreeWrites:
        __slots__ = ()

        def handle_input(self, connection, data):
            if len(data) < 18:
                connection.write(data)
                return
            connection.write(data[:16])    # "header"
            connection.write(data[16:-2])  # "body"
            connection.write(data[-2:])    # "trailer"

        def handle_close(self, connection, reason):
            pass

    if protocol == "lines":
        handler = LineEcho()

        def server(connection):
            ngi.adapters.Lines(connection).set_handler(handler)
    elif protocol == "sized":
        handler = SizedEcho()

        def server(connection):
            ngi.adapters.Sized(connection).set_handler(handler)
    else:
        handler = ThreeWrites()

        def server(connection):
            connection.set_handler(handler)

    tcp = impl.listener(("127.0.0.1", 0), server)
    print("ready", tcp.address[1], 0, flush=True)


def asyncio_framed_server(protocol, use_uvloop=False):
    """asyncio (or uvloop) Protocols that split records out of a bytearray."""
    import asyncio

    class LineEcho(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.buffer = bytearray()

        def data_received(self, data):
            self.buffer += data
            lines = self.buffer.split(b"\n")
            self.buffer = lines.pop()  # the incomplete last line, maybe empty
            for line in lines:
                self.line_received(line)

        def line_received(self, line):
            self.transport.write(line + b"\n")

    class SizedEcho(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.buffer = bytearray()

        def data_received(self, data):
            self.buffer += data
            while len(self.buffer) >= 4:
                size = int.from_bytes(self.buffer[:4], "big")
                if len(self.buffer) < 4 + size:
                    break
                message = self.buffer[4:4 + size]
                del self.buffer[:4 + size]
                self.message_received(message)

        def message_received(self, message):
            self.transport.write(len(message).to_bytes(4, "big") + message)

    class ThreeWrites(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            if len(data) < 18:
                self.transport.write(data)
                return
            self.transport.write(data[:16])    # "header"
            self.transport.write(data[16:-2])  # "body"
            self.transport.write(data[-2:])    # "trailer"

    protocols = {"lines": LineEcho, "sized": SizedEcho, "multiwrite": ThreeWrites}

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(protocols[protocol], "127.0.0.1", 0,
                                          backlog=BACKLOG)
        print("ready", server.sockets[0].getsockname()[1], 0, flush=True)
        await server.serve_forever()

    if use_uvloop:
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())


def asyncio_streams_server(protocol):
    """asyncio streams: ``start_server``, a coroutine per connection reading
    with ``readline()`` or ``readexactly()``, ``write`` then ``drain()``."""
    import asyncio

    async def lines(reader, writer):
        try:
            while line := await reader.readline():  # b"" at the end
                writer.write(line)                   # with its b"\n"
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def sized(reader, writer):
        try:
            while True:
                header = await reader.readexactly(4)
                message = await reader.readexactly(int.from_bytes(header, "big"))
                writer.write(len(message).to_bytes(4, "big") + message)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the end, or a record cut short by it
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server({"lines": lines, "sized": sized}[protocol],
                                            "127.0.0.1", 0, backlog=BACKLOG)
        print("ready", server.sockets[0].getsockname()[1], 0, flush=True)
        await server.serve_forever()

    asyncio.run(main())


def asyncio_server(use_uvloop=False, tls=None):
    """asyncio (or uvloop) Protocols: the fastest way asyncio offers."""
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    class DatagramEcho(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, address):
            self.transport.sendto(data, address)

    async def main():
        loop = asyncio.get_running_loop()
        if tls is not None:
            server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=BACKLOG,
                                              ssl=tls)
            print("ready", server.sockets[0].getsockname()[1], 0, flush=True)
            await server.serve_forever()
            return
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=BACKLOG)
        udp, _ = await loop.create_datagram_endpoint(
            DatagramEcho, local_addr=("127.0.0.1", 0))
        print("ready", server.sockets[0].getsockname()[1],
              udp.get_extra_info("sockname")[1], flush=True)
        await server.serve_forever()

    if use_uvloop:
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())


KINDS = ("ngi", "ngi-aio", "asyncio", "uvloop", "asyncio-streams")
PROTOCOLS = ("echo", "lines", "sized", "multiwrite")
USAGE = ("usage: servers.py ngi|ngi-aio|asyncio|uvloop [--tls CERT KEY]\n"
         "       servers.py ngi|ngi-aio|asyncio|uvloop --protocol lines|sized|multiwrite\n"
         "       servers.py asyncio-streams --protocol lines|sized")


def parse(args):
    """(kind, protocol, TLS files or None) from the arguments, or exit."""
    kind, rest, protocol, files = (args[0] if args else None), args[1:], "echo", None
    while rest:
        if rest[0] == "--tls" and len(rest) >= 3 and files is None:
            files, rest = rest[1:3], rest[3:]
        elif rest[0] == "--protocol" and len(rest) >= 2 and rest[1] in PROTOCOLS:
            protocol, rest = rest[1], rest[2:]
        else:
            sys.exit(USAGE)
    if (kind not in KINDS or (files and protocol != "echo")
            or (kind == "asyncio-streams" and protocol not in ("lines", "sized"))):
        sys.exit(USAGE)
    return kind, protocol, files


if __name__ == "__main__":
    die_with_parent()
    raise_descriptor_limit()
    kind, protocol, files = parse(sys.argv[1:])
    if kind == "asyncio-streams":
        asyncio_streams_server(protocol)
    elif kind == "ngi-aio":
        ngi_aio_server(tls_context(files), protocol)
    elif protocol != "echo":
        if kind == "ngi":
            ngi_framed_server(protocol)
        else:
            asyncio_framed_server(protocol, use_uvloop=kind == "uvloop")
    elif kind == "ngi":
        ngi_server(tls_context(files))
    else:
        asyncio_server(use_uvloop=kind == "uvloop", tls=tls_context(files))
