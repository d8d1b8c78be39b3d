"""A minimal HTTP/1.1 server: keep-alive, pipelining, Content-Length bodies.

    ngi serve examples.httpserver:server --bind 127.0.0.1:8080
    wrk -c 50 -d 5 http://127.0.0.1:8080/

``GET /`` answers ``Hello, World!``; ``GET`` or ``POST /echo`` answers with
the request body.  Anything else is a 404.  When the server drains
(``ngi serve`` on SIGTERM), an idle keep-alive connection closes at once,
and one in the middle of a request closes after its response.  Not supported (each gets an
error response and a close): chunked request bodies, heads over 64 KiB,
bodies over 1 MiB.

The protocol lives in `Requests`, which knows nothing about connections,
so `examples.httpserver_asyncio` runs the very same code on asyncio and
uvloop for the benchmark.
"""

from ngi.adapters import Delimited, MessageTooLarge

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024

REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found",
           413: b"Content Too Large", 431: b"Request Header Fields Too Large",
           501: b"Not Implemented"}


class Requests:
    """The protocol of one connection, a request at a time, knowing
    nothing about connections.

    ``head(record)`` takes a request head (the bytes before its blank
    line) and ``body(record)`` the body it announced; each returns
    ``(response, close)`` (``head`` returns ``None`` for the response while
    a body is due, and `due` says how long).  ``feed(data)`` does the
    framing itself, for servers without a framer (the asyncio one):
    ``(responses, close)`` for whatever bytes arrived, a request cut
    anywhere (even inside its body) waiting for the rest.
    """

    def __init__(self):
        self.buffer = b""    # feed(): bytes not yet a whole request
        self.waiting = None  # a parsed head whose body is due
        self.due = 0         # that body's length
        self.closing = False
        self.draining = False

    def drain(self):
        """The server is stopping: answer what is under way with
        ``Connection: close``.  True if nothing is under way (the
        connection can close now)."""
        self.draining = True
        return not self.buffer and self.waiting is None

    def head(self, head):
        try:
            method, target, version, headers = request = parse_head(head)
            length = int(headers.get(b"content-length", b"0"))
            if length < 0:
                raise ValueError(length)
        except ValueError:
            return self.refuse(400)
        if b"transfer-encoding" in headers:
            return self.refuse(501)
        if length > MAX_BODY:
            return self.refuse(413)
        if length:
            self.waiting, self.due = request, length
            return None, False
        return self.answer(request, b"")

    def body(self, body):
        request, self.waiting, self.due = self.waiting, None, 0
        return self.answer(request, body)

    def answer(self, request, body):
        method, target, version, headers = request
        connection = headers.get(b"connection", b"").lower()
        if version == b"HTTP/1.1":
            keep_alive = connection != b"close" and not self.draining
            header = b"" if keep_alive else b"Connection: close\r\n"
        else:  # HTTP/1.0 closes unless asked not to
            keep_alive = connection == b"keep-alive" and not self.draining
            header = b"Connection: keep-alive\r\n" if keep_alive else b""
        status, body = respond(method, target, body)
        self.closing = not keep_alive
        return response(status, body, header, method == b"HEAD"), self.closing

    def refuse(self, status):
        """A request we cannot serve: its error, and the connection closes."""
        self.closing = True
        return error(status), True

    def feed(self, data):
        if self.closing:
            return b"", True
        buffer = self.buffer + data if self.buffer else data
        responses = []
        start = 0
        while start < len(buffer) and not self.closing:
            if self.waiting is not None:
                if len(buffer) - start < self.due:
                    break  # the body is still on its way
                end = start + self.due
                reply, _ = self.body(buffer[start:end])
                start = end
            else:
                end = buffer.find(b"\r\n\r\n", start)
                if end < 0:
                    if len(buffer) - start > MAX_HEAD:
                        reply, _ = self.refuse(431)
                        responses.append(reply)
                    break
                reply, _ = self.head(buffer[start:end])
                start = end + 4
            if reply is not None:
                responses.append(reply)
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
    """The ngi handler: the core cuts request heads (and, once told their
    length, bodies) out of the input; `Requests` answers them."""

    def __init__(self, connection):
        self.requests = Requests()
        Delimited(connection, b"\r\n\r\n", max_size=MAX_HEAD).set_handler(self)

    def handle_input(self, connection, record):
        requests = self.requests
        if requests.waiting is None:
            reply, close = requests.head(record)
            if reply is None:
                connection.expect(requests.due)  # the body comes whole
                return
        else:
            reply, close = requests.body(record)
        connection.write(reply)
        if close:
            connection.close()

    def handle_close(self, connection, reason):
        if isinstance(reason, MessageTooLarge):  # a head over MAX_HEAD
            connection.write(self.requests.refuse(431)[0])

    def handle_drain(self, connection):
        if self.requests.drain() and not connection.buffered:
            connection.close()  # idle between requests: nothing to finish


server = HTTPConnection
