"""Echo servers for the benchmarks, one per process: ``servers.py KIND PORT``.

Each prints ``ready`` once it listens, then serves until killed.
"""
import sys


def ngi_server(port):
    import ngi.net

    class Echo:
        __slots__ = ()

        def handle_input(self, connection, data):
            connection.write(data)

        def handle_close(self, connection, reason):
            pass

    echo = Echo()
    impl = ngi.net.Inline()
    impl.listener(("127.0.0.1", port), lambda c: c.set_handler(echo))
    print("ready", flush=True)
    impl.loop()


def asyncio_server(port, use_uvloop=False):
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", port)
        print("ready", flush=True)
        await server.serve_forever()

    if use_uvloop:
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "ngi":
        ngi_server(port)
    elif kind == "asyncio":
        asyncio_server(port)
    elif kind == "uvloop":
        asyncio_server(port, use_uvloop=True)
    else:
        sys.exit(f"unknown server {kind!r}")
