"""Python echo servers for the benchmarks, one per process.

    python servers.py KIND        KIND: ngi, asyncio or uvloop

Each listens for TCP and UDP on free 127.0.0.1 ports, prints
``ready TCP_PORT UDP_PORT`` and echoes until killed.  Every server is written
the way a user of its library would write a plain echo server; the only
tuning is a listen backlog of 4096 (ngi and the C server use SOMAXCONN,
4096 here; asyncio's default of 100 would make 10,000 connects crawl).
"""
import ctypes
import os
import resource
import signal
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


def ngi_server():
    """ngi.net with the application-run loop (Inline).

    UDP replies go out through the listener's own socket (``listener.udp``),
    as the other servers' replies do.
    """
    import ngi.net

    class Echo:
        __slots__ = ()

        def handle_input(self, connection, data):
            connection.write(data)

        def handle_close(self, connection, reason):
            pass

    echo = Echo()
    impl = ngi.net.Inline()
    tcp = impl.listener(("127.0.0.1", 0), lambda connection: connection.set_handler(echo))
    listeners = []
    udp = impl.udp_listener(("127.0.0.1", 0),
                            lambda address, data: listeners[0].udp(address, data),
                            buffer_size=65536)
    listeners.append(udp)
    print("ready", tcp.address[1], udp.address[1], flush=True)
    impl.loop()


def asyncio_server(use_uvloop=False):
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


if __name__ == "__main__":
    die_with_parent()
    raise_descriptor_limit()
    kind = sys.argv[1] if len(sys.argv) == 2 else None
    if kind == "ngi":
        ngi_server()
    elif kind in ("asyncio", "uvloop"):
        asyncio_server(use_uvloop=kind == "uvloop")
    else:
        sys.exit("usage: servers.py ngi|asyncio|uvloop")
