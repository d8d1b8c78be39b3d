"""The HTTP server of `examples.httpserver` on asyncio (or uvloop): the same
`Requests` code under an ``asyncio.Protocol``, for the benchmark.

    python -m examples.httpserver_asyncio PORT [--uvloop]

Prints ``ready`` once it listens.
"""
import asyncio
import sys

from examples.httpserver import Requests


class HTTPProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.requests = Requests()

    def data_received(self, data):
        responses, close = self.requests.feed(data)
        if responses:
            self.transport.write(responses)
        if close:
            self.transport.close()


async def serve(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HTTPProtocol, "127.0.0.1", port)
    print("ready", flush=True)
    await server.serve_forever()


def main(argv):
    port = int(argv[0])
    if "--uvloop" in argv:
        import uvloop
        uvloop.run(serve(port))
    else:
        asyncio.run(serve(port))


if __name__ == "__main__":
    main(sys.argv[1:])
