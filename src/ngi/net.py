"""ngi.net: the real NGI implementation, over ngi's Cython core.

This layer is deliberately thin.  It turns NGI addresses into sockets
(binding and resolving in the caller, so errors surface in the call), hands
the descriptors to the core, and decides which thread runs the core's loop:

* ``Implementation`` runs its loop in a thread of its own, started on first
  use and ended when nothing is left to do (no socket, call or timer).
* ``Inline`` is run by the application: ``loop(timeout)`` returns when
  nothing is left, and handler exceptions propagate out of it.
* ``listener(..., thready=True)`` gives every accepted connection its own
  ``Implementation`` (and so its own thread).

Everything per event (reads, writes, accepts, datagrams) happens in the
core; nothing here runs on the hot path.
"""
from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import weakref

from ngi import _core, _rules, _tls, _unixpath
from ngi.interfaces import Timeout

__all__ = [
    "Implementation", "Inline", "main", "bind", "connect", "connector",
    "listener", "udp",
    "udp_listener", "wait", "call_from_thread", "call_later", "start_thread",
    "current",
]

logger = logging.getLogger("ngi.net")
# Where a record comes from, for filtering (the core logs under the same).
_server_log = logging.getLogger("ngi.net.server")
_client_log = logging.getLogger("ngi.net.client")
_udp_log = logging.getLogger("ngi.net.udp")

_ADDRESS_HELP = ("expected (host, port), an IPv6 (host, port) with ':' in the "
                 "host, a str path for a Unix socket")


def _parse(address, *, listening=False):
    """Check an NGI address; return (family, socket address).

    Host names are left for ``getaddrinfo``; only the shape is checked here,
    so that a malformed address raises in the call.
    """
    if listening and address is None:
        return socket.AF_INET, ("127.0.0.1", 0)
    if isinstance(address, str):
        if not address:
            raise ValueError(f"invalid address {address!r}: a Unix socket "
                             "path must not be empty")
        return socket.AF_UNIX, address
    if isinstance(address, tuple) and len(address) == 2:
        host, port = address
        if not isinstance(host, str):
            raise TypeError(f"invalid address {address!r}: the host must be "
                            f"a str, got {type(host).__name__}")
        if not isinstance(port, int) or isinstance(port, bool):
            raise TypeError(f"invalid address {address!r}: the port must be "
                            f"an int, got {type(port).__name__}")
        if not 0 <= port <= 65535:
            raise ValueError(f"invalid address {address!r}: the port must be "
                             "in 0..65535")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return family, (host, port)
    allowed = _ADDRESS_HELP + (", or None for a free localhost port"
                               if listening else "")
    raise ValueError(f"invalid address {address!r}: {allowed}")


def _resolve(family, sockaddr, kind):
    """Resolve a host name (numeric hosts return at once)."""
    if family == socket.AF_UNIX:
        return family, sockaddr
    host, port = sockaddr
    infos = socket.getaddrinfo(host or None, port, family, kind,
                               flags=socket.AI_PASSIVE if not host else 0)
    return infos[0][0], infos[0][4]


def _bound_address(sock):
    name = sock.getsockname()
    if sock.family == socket.AF_INET6:
        return name[:2]
    return name


def bind(address, *, reuse_port=False):
    """A bound, listening TCP socket for an NGI address.

    What ``listener`` does with an address, on its own: for programs that
    bind before they fork (several processes accepting on one port) and
    hand each process its socket through ``listener(sock, server)``.
    ``reuse_port`` sets SO_REUSEPORT, so that several sockets can share a
    port.  Raises OSError with the socket closed again.
    """
    return _bound_socket(address, socket.SOCK_STREAM, reuse_port)


def _listening_socket(address, reuse_port=False):
    """A listener's socket: the one given (made to listen if it is not
    yet), or a new one bound to ``address``; and whether it is ours to
    close."""
    if isinstance(address, socket.socket):
        if address.type != socket.SOCK_STREAM:
            raise ValueError(f"listener() expects a stream socket, got {address!r}")
        if not address.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            address.listen(socket.SOMAXCONN)
        return address, False
    return bind(address, reuse_port=reuse_port), True


def _bound_socket(address, kind, reuse_port=False):
    """A non-blocking socket of ``kind`` bound to an NGI address (listening,
    for a stream), or the error with nothing left open."""
    family, sockaddr = _parse(address, listening=True)
    family, sockaddr = _resolve(family, sockaddr, kind)
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_UNIX:
            _unixpath.claim(sockaddr)
        elif kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
        if kind == socket.SOCK_STREAM:
            sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Base:
    """What every threading mode shares: sockets in, core objects out."""

    _bufsize = 262144  # the loop's receive buffer
    _propagate = False  # handler errors leave the loop's run() (Inline)

    def __init__(self, *, _lazy=False):
        self._core_loop: _core.Loop | None = None
        self._loop_lock = threading.Lock()
        self._udp_sockets: dict = {}
        _implementations.add(self)
        if not _lazy:
            self._loop  # an implementation made by the application is ready

    @property
    def _loop(self) -> _core.Loop:
        """The core's loop.  The module's default implementations make it
        on first use, so that importing ngi.net allocates no epoll, eventfd
        or receive buffer; one made by the application makes it at once,
        so that running out of descriptors later cannot fail its use."""
        loop = self._core_loop
        if loop is None:
            with self._loop_lock:
                loop = self._core_loop
                if loop is None:
                    loop = _core.Loop(self._bufsize)
                    loop.propagate = self._propagate
                    self._core_loop = loop
        return loop

    def _after_fork(self):
        """In a forked child: a loop of its own, not the parent's epoll."""
        self._core_loop = None
        self._loop_lock = threading.Lock()
        self._udp_sockets = {}

    def _kick(self):
        """Make sure a thread will run the loop (work was just queued)."""

    def connect(self, address, handler, ssl=None, server_hostname=None, *,
                handshake_timeout=_tls.HANDSHAKE_TIMEOUT,
                shutdown_timeout=_tls.SHUTDOWN_TIMEOUT):
        """Connect; ``handler.connected(conn)`` or ``failed_connect(reason)``.

        Thread-safe.  An invalid address raises here; everything else that
        goes wrong (unknown host, refused, unreachable) is a failed_connect
        (logged at WARNING under ``ngi.net.client`` if the handler has none).
        With ``ssl`` (an ``ssl.SSLContext``, or True for the default
        context), ``connected`` comes after the TLS handshake, and a failed
        handshake or certificate check is a failed_connect with the ``ssl``
        error (see `ngi._tls` for the defaults).
        """
        family, sockaddr = _parse(address)
        handler = _rules.connect_handler(handler, address, "connect()",
                                         _client_log)
        context, hostname = _tls.client_context(ssl, server_hostname, address)
        hs, sd = _tls.timeouts(handshake_timeout, shutdown_timeout, "connect()")
        sock = None
        try:
            family, sockaddr = _resolve(family, sockaddr, socket.SOCK_STREAM)
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            err = sock.connect_ex(sockaddr)
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, os.strerror(err))
        except OSError as e:
            if sock is not None:
                sock.close()
            self._loop.call_soon(handler.failed_connect, e)
        else:
            self._loop.connector(sock.detach(), handler,
                                 nodelay=family != socket.AF_UNIX, ssl=context,
                                 server_hostname=hostname,
                                 handshake_timeout=hs, shutdown_timeout=sd)
        self._kick()

    def listener(self, address, server, thready=False, reuse_port=False,
                 ssl=None, *, handshake_timeout=_tls.HANDSHAKE_TIMEOUT,
                 shutdown_timeout=_tls.SHUTDOWN_TIMEOUT):
        """Listen on ``address`` (None: a free localhost port).

        Binding happens here, so a busy or forbidden address raises OSError
        in the caller, with the socket closed again.  ``address`` may also
        be a bound ``socket.socket`` (see `bind`): the listener takes it
        over, and leaves a Unix socket's file to whoever made it.  With
        ``ssl``, an ``ssl.SSLContext`` holding the server's certificate,
        ``server`` gets each connection once its TLS handshake is done.
        """
        if not callable(server):
            raise TypeError(f"listener() expects a callable server, got {server!r}")
        context = _tls.server_context(ssl)
        hs, sd = _tls.timeouts(handshake_timeout, shutdown_timeout, "listener()")
        sock, owned = _listening_socket(address, reuse_port)
        try:
            sock.setblocking(False)
            bound = _bound_address(sock)
        except BaseException:
            if owned:
                sock.close()
            raise
        unix = sock.family == socket.AF_UNIX
        adopt = (_ThreadyAdopter(server, self, not unix, context, hs, sd)
                 if thready else None)
        result = self._loop.listener(
            sock.detach(), server, address=bound,
            unix_path=bound if unix and owned else None, nodelay=not unix,
            adopt=adopt, ssl=context, handshake_timeout=hs,
            shutdown_timeout=sd)
        _server_log.info("listening on %r", bound)
        self._kick()
        return result

    def udp(self, address, data):
        """Send one datagram to ``address``."""
        data = _rules.as_bytes(data, "udp()")
        family, sockaddr = _parse(address)
        # sendto resolves a host name itself, and a numeric one cheaply.
        self._udp_socket(family).sendto(data, sockaddr)

    def _udp_socket(self, family):
        """One unbound datagram socket per family, kept for every udp() call.

        sendto() on one socket is safe from any thread, and it saves a
        socket() and close() per datagram.
        """
        sock = self._udp_sockets.get(family)
        if sock is None:
            mine = socket.socket(family, socket.SOCK_DGRAM)
            sock = self._udp_sockets.setdefault(family, mine)
            if sock is not mine:  # another thread was first
                mine.close()
        return sock

    def udp_listener(self, address, handler, buffer_size=4096):
        """Receive datagrams on ``address``: ``handler(address, data)``."""
        if not callable(handler):
            raise TypeError(f"udp_listener() expects a callable handler, got {handler!r}")
        _rules.positive_int("buffer_size", buffer_size)
        sock = _bound_socket(address, socket.SOCK_DGRAM)
        bound = _bound_address(sock)
        unix_path = bound if sock.family == socket.AF_UNIX else None
        sender = sock.dup()  # for replies from the listener's own address
        result = self._loop.udp_listener(sock.detach(), handler, buffer_size,
                                         address=bound, unix_path=unix_path,
                                         sender=sender)
        _udp_log.info("udp listening on %r", bound)
        self._kick()
        return result

    def call_from_thread(self, func):
        """Run ``func()`` on the loop thread."""
        self._loop.call_soon(func)
        self._kick()

    def call_later(self, seconds, func, *args):
        """Run ``func(*args)`` on the loop thread after ``seconds``."""
        handle = self._loop.call_later(seconds, func, *args)
        self._kick()
        return handle


class Implementation(_Base):
    """An implementation whose loop runs in a thread of its own.

    The thread starts on first use and ends when the loop is idle; the next
    use starts a new one.
    """

    def __init__(self, daemon=True, name="ngi.net", *, _lazy=False):
        super().__init__(_lazy=_lazy)
        self.daemon = daemon
        self.name = name
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._thread = None

    def __repr__(self):
        return f"<ngi.net.Implementation {self.name!r}>"

    def _after_fork(self):
        super()._after_fork()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._thread = None

    def _kick(self):
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=self.name, daemon=self.daemon)
                self._thread.start()

    start_thread = _kick

    def _run(self):
        me = threading.current_thread()
        while True:
            try:
                self._loop.run()
            except BaseException:  # a bug in ngi: keep the loop alive
                logger.exception("%r: the loop failed", self)
            with self._lock:
                if self._loop.idle():
                    if self._thread is me:
                        self._thread = None
                    self._idle.notify_all()
                    return

    def wait(self, timeout=None):
        """Block until the loop is idle; ``Timeout`` at the deadline."""
        if self._loop.in_loop_thread():
            raise RuntimeError("wait() called from the loop's own thread")
        with self._idle:
            thread = self._thread
            if not self._idle.wait_for(lambda: self._thread is None, timeout):
                raise Timeout(f"{self!r} still busy after {timeout} seconds")
        if thread is not None:
            thread.join(timeout)


class Inline(_Base):
    """An implementation whose loop the application runs with ``loop()``."""

    _propagate = True

    def __repr__(self):
        return "<ngi.net.Inline>"

    def loop(self, timeout=None):
        """Run until idle; ``Timeout`` if busy at the deadline.

        An exception raised by a handler is logged and raised from here.
        """
        if not self._loop.run(timeout):
            raise Timeout(f"the loop was still busy after {timeout} seconds")

    wait = loop


class _ThreadyAdopter:
    """Gives each connection a listener accepts its own implementation."""

    def __init__(self, server, impl, nodelay, ssl, handshake_timeout,
                 shutdown_timeout):
        self.server = server
        self.impl = impl
        self.nodelay = nodelay
        self.ssl = ssl
        self.timeouts = handshake_timeout, shutdown_timeout

    def __call__(self, listener, fd):
        impl = _ConnectionImplementation(
            daemon=getattr(self.impl, "daemon", True),
            name=f"{getattr(self.impl, 'name', 'ngi.net')}-conn")
        # Served on its own loop (over TLS, once the handshake is done).
        conn = impl._loop.connection(
            fd, nodelay=self.nodelay, ssl=self.ssl, server=self.server,
            handshake_timeout=self.timeouts[0],
            shutdown_timeout=self.timeouts[1])
        listener.track(conn)
        impl._kick()


class _ConnectionImplementation(Implementation):
    """The loop of one thready connection: a smaller receive buffer, since
    there is one per connection."""

    _bufsize = 65536


_implementations: weakref.WeakSet[_Base] = weakref.WeakSet()


def current():
    """The implementation whose loop is running in this thread, or None.

    For code that must hand work back to the loop it was called from (as
    `ngi.aio.Bridge` does) without being told which one that is.
    """
    for impl in list(_implementations):
        loop = impl._core_loop
        if loop is not None and loop.in_loop_thread():
            return impl
    return None


def _after_fork_in_child():
    # The epoll and eventfd descriptors came along with the fork and are
    # shared with the parent: events would go to whichever process waits.
    for impl in list(_implementations):
        impl._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)

_default = Implementation(name="ngi.net", _lazy=True)
main = Inline(_lazy=True)

connect = _default.connect
connector = connect  # zc.ngi.async's other name for it
listener = _default.listener
udp = _default.udp
udp_listener = _default.udp_listener
wait = _default.wait
call_from_thread = _default.call_from_thread
call_later = _default.call_later
start_thread = _default.start_thread
