"""A minimal HTTP/1.1 server: keep-alive, pipelining, Content-Length bodies.

    ngi serve examples.httpserver:server --bind 127.0.0.1:8080
    wrk -c 50 -d 5 http://127.0.0.1:8080/

``GET /`` answers ``Hello, World!``; ``GET`` or ``POST /echo`` answers with
the request body.  Anything else is a 404.  Not supported (each gets an
error response and a close): chunked request bodies, heads over 64 KiB,
bodies over 1 MiB.

The protocol lives in `Requests`, which knows nothing about connections,
so `examples.httpserver_asyncio` runs the very same code on asyncio and
uvloop for the benchmark.
"""

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024

REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found",
           413: b"Content Too Large", 431: b"Request Header Fields Too Large",
           501: b"Not Implemented"}


class Requests:
    """Turns the bytes of one connection into the bytes of the responses.

    ``feed(data)`` returns ``(responses, close)``: what to send back, in
    request order, and whether to close the connection after sending it.
    A request cut anywhere (even inside its body) waits for the rest.
    """

    def __init__(self):
        self.buffer = b""
        self.closing = False

    def feed(self, data):
        if self.closing:
            return b"", True
        buffer = self.buffer + data if self.buffer else data
        responses = []
        start = 0
        while start < len(buffer):
            end = buffer.find(b"\r\n\r\n", start)
            if end < 0:
                if len(buffer) - start > MAX_HEAD:
                    responses.append(error(431))
                    self.closing = True
                break
            try:
                method, target, version, headers = parse_head(buffer[start:end])
                length = int(headers.get(b"content-length", b"0"))
                if length < 0:
                    raise ValueError(length)
            except ValueError:
                responses.append(error(400))
                self.closing = True
                break
            if b"transfer-encoding" in headers:
                responses.append(error(501))
                self.closing = True
                break
            if length > MAX_BODY:
                responses.append(error(413))
                self.closing = True
                break
            body_start = end + 4
            if len(buffer) - body_start < length:
                break  # the body is still on its way
            body = buffer[body_start:body_start + length]
            start = body_start + length
            connection = headers.get(b"connection", b"").lower()
            if version == b"HTTP/1.1":
                keep_alive = connection != b"close"
                header = b"" if keep_alive else b"Connection: close\r\n"
            else:  # HTTP/1.0 closes unless asked not to
                keep_alive = connection == b"keep-alive"
                header = b"Connection: keep-alive\r\n" if keep_alive else b""
            status, body = respond(method, target, body)
            responses.append(response(status, body, header, method == b"HEAD"))
            if not keep_alive:
                self.closing = True
                break
        self.buffer = b"" if self.closing else buffer[start:]
        return b"".join(responses), self.closing


def parse_head(head):
    """Split a request head into method, target, version and headers
    (names lower-cased).  ValueError if it is malformed."""
    lines = head.split(b"\r\n")
    method, target, version = lines[0].split(b" ")
    if not version.startswith(b"HTTP/1."):
        raise ValueError(version)
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise ValueError(line)
        headers[name.lower()] = value.strip()
    return method, target, version, headers


def respond(method, target, body):
    """The application: (status, response body) for a request."""
    if target == b"/" and method in (b"GET", b"HEAD"):
        return 200, b"Hello, World!"
    if target == b"/echo" and method in (b"GET", b"POST"):
        return 200, body
    return 404, b"Not Found"


def response(status, body, connection_header=b"", head_only=False):
    return b"".join([
        b"HTTP/1.1 %d %s\r\n" % (status, REASONS[status]),
        b"Content-Type: text/plain\r\nContent-Length: %d\r\n" % len(body),
        connection_header,
        b"\r\n",
        b"" if head_only else body,
    ])


def error(status):
    """A response to a request we cannot serve; the connection closes."""
    return response(status, REASONS[status], b"Connection: close\r\n")


class HTTPConnection:
    """The ngi handler: feeds input to `Requests`, writes what comes out."""

    def __init__(self, connection):
        self.requests = Requests()
        connection.set_handler(self)

    def handle_input(self, connection, data):
        responses, close = self.requests.feed(data)
        if responses:
            connection.write(responses)
        if close:
            connection.close()

    def handle_close(self, connection, reason):
        pass


server = HTTPConnection
