# cython: language_level=3
"""ngi's Cython core: the poller, the loop, and the sockets' hot paths.

Choices, and why:

* **Connections are edge-triggered, registered once.**  A connection is
  added to epoll when it is created, for input, output and hang-up, with
  EPOLLET, and never modified: no epoll_ctl when a write has to wait, and
  no re-poll of every socket that was ready in the previous pass, as level
  triggering does.  The price is that an edge, once reported, never comes
  back, so the core keeps its own list of connections that may still have
  work (`Loop.ready`): one that stopped reading at the per-pass bound (so
  one busy peer cannot starve the rest), one that just got its handler or
  resumed reading (input may have arrived while nobody read), one whose
  queue holds an iterator to pull.  A read shorter than the buffer means
  the socket was drained, since anything arriving later makes a new edge;
  after a hang-up edge the reader goes on to EOF.  Listeners, connectors
  and UDP sockets stay level-triggered: they are few and not hot.
* **Tokens, not lookups.**  Each registration carries a pointer to its
  `Watcher` in the event's data, so dispatch needs no dict lookup.  The loop
  holds a strong reference to every registered watcher, and one removed
  during a pass is kept alive until the pass ends, because a later event of
  the same batch may still point to it (its `fd` is then -1 and it is
  skipped).
* **Write at once, queue the rest.**  On the loop thread a `write` with
  nothing queued goes straight to `send`; only the unsent remainder is
  queued, and queued chunks leave together through `sendmsg`.
* **One receive buffer per loop.**  `recv` lands in a loop-owned buffer and
  the `bytes` handed to `handle_input` is the only object built per read.
* **Other threads only enqueue.**  They append to a lock-protected list and
  wake the loop through an eventfd; the wake-up is written only when the
  list goes from "seen" to "unseen", and the loop drains the eventfd before
  it takes the list, so no wake-up is lost.  Nothing relies on the GIL for
  the atomicity of shared structures.
* **SIGPIPE.**  Every send uses MSG_NOSIGNAL; a broken pipe is an EPIPE that
  becomes a `handle_close`.
* **Nothing written is lost to a close.**  The peer's EOF ends input, not
  output: what was queued is still sent.  Our own close sends a FIN, then,
  if a TCP reset could still destroy data on its way (input unread, data
  unacknowledged), lingers, dropping input until the peer's EOF, as web
  servers do.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.pythread cimport (
    NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock,
    PyThread_free_lock, PyThread_get_thread_ident, PyThread_release_lock)
from libc.errno cimport (
    EAGAIN, ECONNABORTED, EINPROGRESS, EINTR, EMFILE, ENFILE, ENOBUFS, ENOMEM,
    EPROTO, errno)
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy, memset, strerror, strlen
from posix.fcntl cimport F_GETFL, F_SETFL, O_NONBLOCK, fcntl
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.uio cimport iovec
from posix.unistd cimport close as c_close, read as c_read, write as c_write

import heapq
import logging
import os

from ngi.interfaces import ConnectionClosed


cdef extern from *:
    """
    /* What other threads change in a connection, they change atomically:
       correct without the GIL too (free-threaded CPython). */
    #define NGI_ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
    #define NGI_LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
    #define NGI_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
    """
    Py_ssize_t atomic_add "NGI_ADD"(Py_ssize_t *p, Py_ssize_t v) nogil
    Py_ssize_t atomic_load "NGI_LOAD"(Py_ssize_t *p) nogil
    int atomic_load_int "NGI_LOAD"(int *p) nogil
    void atomic_store_int "NGI_STORE"(int *p, int v) nogil


cdef extern from "<sys/epoll.h>" nogil:
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)
    enum:
        EPOLL_CLOEXEC
        EPOLL_CTL_ADD
        EPOLL_CTL_MOD
        EPOLL_CTL_DEL
        EPOLLIN
        EPOLLOUT
        EPOLLERR
        EPOLLHUP
        EPOLLRDHUP
        EPOLLET


cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int initval, int flags)
    enum:
        EFD_NONBLOCK
        EFD_CLOEXEC


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t

    cdef struct sockaddr:
        sa_family_t sa_family

    cdef struct sockaddr_storage:
        sa_family_t ss_family

    cdef struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags

    ssize_t send(int fd, const void *buf, size_t n, int flags)
    ssize_t sendmsg(int fd, const msghdr *msg, int flags)
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
                     sockaddr *addr, socklen_t *addrlen)
    int accept4(int fd, sockaddr *addr, socklen_t *addrlen, int flags)
    int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
    int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
    int getpeername(int fd, sockaddr *addr, socklen_t *len)
    int shutdown(int fd, int how)
    enum:
        AF_INET
        AF_INET6
        AF_UNIX
        SOL_SOCKET
        SO_ERROR
        SO_DOMAIN
        SHUT_WR
        MSG_NOSIGNAL
        SOCK_NONBLOCK
        SOCK_CLOEXEC


cdef extern from "<sys/ioctl.h>" nogil:
    int ioctl(int fd, unsigned long request, ...)

cdef extern from "<linux/sockios.h>" nogil:
    enum:
        SIOCINQ   # bytes received and not yet read
        SIOCOUTQ  # bytes sent and not yet acknowledged, or not yet sent

cdef extern from "<netinet/in.h>" nogil:
    cdef struct in_addr:
        pass

    cdef struct in6_addr:
        pass

    cdef struct sockaddr_in:
        sa_family_t sin_family
        unsigned short sin_port
        in_addr sin_addr

    cdef struct sockaddr_in6:
        sa_family_t sin6_family
        unsigned short sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id

    unsigned short ntohs(unsigned short)
    uint32_t ntohl(uint32_t)
    enum:
        IPPROTO_TCP
        INET6_ADDRSTRLEN


cdef extern from "<netinet/tcp.h>" nogil:
    enum:
        TCP_NODELAY


cdef extern from "<arpa/inet.h>" nogil:
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)


cdef extern from "<sys/un.h>" nogil:
    cdef struct sockaddr_un:
        sa_family_t sun_family
        char sun_path[108]


cdef extern from "<stddef.h>" nogil:
    size_t offsetof_sun_path "offsetof(struct sockaddr_un, sun_path)"


# Events, in the loop's vocabulary (epoll's values; a kqueue poller maps them).
EVENT_READ = EPOLLIN
EVENT_WRITE = EPOLLOUT
EVENT_ERROR = EPOLLERR
EVENT_HANGUP = EPOLLHUP

cdef enum:
    MAX_IOV = 64              # buffers gathered into one sendmsg
    READS_PER_EVENT = 4       # recv calls one socket gets per pass
    ACCEPTS_PER_EVENT = 64    # accept calls one listener gets per pass
    DATAGRAMS_PER_EVENT = 32  # recvfrom calls one UDP socket gets per pass
    PULL_BYTES = 262144       # bytes pulled from a writelines iterator per round
    PULL_ITEMS = 1024         # items pulled from a writelines iterator per round
    FLUSH_ROUNDS = 16         # sendmsg rounds per writable event

cdef enum:  # Connection flags
    F_CLOSING = 1    # closed by the application or at EOF: no more writes; flush, then close
    F_CLOSED = 2     # the socket is closed
    F_WPAUSED = 8    # above the high-water mark: the handler was told to pause
    F_READY = 16     # in Loop.ready
    F_HUNGUP = 32    # a hang-up was reported: read on to EOF
    F_MISSED = 64    # an input edge came while not reading: read when resumed
    F_LINGER = 128   # sent our FIN: dropping input until the peer's EOF

cdef enum:  # write-buffer marks, as asyncio's defaults
    DEFAULT_HIGH = 65536
    DEFAULT_LOW = 16384

# How a connection is registered, once, for its whole life.
cdef uint32_t CONNECTION_EVENTS = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET

cdef double ACCEPT_PAUSE = 0.5  # seconds an out-of-descriptors listener rests
cdef double LINGER_SECONDS = 5.0  # longest wait for the peer's EOF after ours

cdef object _NOARG = object()
cdef object _log = logging.getLogger("ngi.net")


cdef inline double monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef inline int wait_ms(double seconds) noexcept:
    """A poll timeout in whole milliseconds, rounded up, at most a minute."""
    if seconds <= 0:
        return 0
    if seconds >= 60:
        return 60000
    return <int>(seconds * 1000.0) + 1


cdef inline void lock_acquire(PyThread_type_lock lock) noexcept:
    # Try without releasing the GIL first: the sections are a few
    # instructions long, so the lock is almost always free.
    if not PyThread_acquire_lock(lock, NOWAIT_LOCK):
        with nogil:
            PyThread_acquire_lock(lock, WAIT_LOCK)


cdef int set_nodelay(int fd) except -1:
    cdef int one = 1
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))
    return 0


cdef inline object call(object func, object arg):
    """Call a queued (func, arg): no argument, one, or a tuple of them."""
    if arg is _NOARG:
        return func()
    if type(arg) is tuple:
        return func(*arg)
    return func(arg)


cdef inline void keep_peer(Connection c, sockaddr *sa, socklen_t length) noexcept:
    """Keep a peer's raw address in the connection, if it fits (IP does)."""
    if 0 < length <= sizeof(c.peer_raw):
        memcpy(c.peer_raw, sa, length)
        c.peer_len = <unsigned char>length


cdef Connection new_connection(Loop loop, int fd, bint nodelay):
    """A Connection owning `fd`; the caller counts and registers it."""
    cdef Connection c = Connection.__new__(Connection)
    c.fd = fd
    c.loop = loop
    if nodelay:
        set_nodelay(fd)
    return c


cdef object os_error(int err):
    return OSError(err, strerror(err).decode("utf-8", "replace"))


cdef object sockaddr_to_py(sockaddr *sa, socklen_t length):
    """Convert a socket address the way Python's socket module does."""
    cdef char host[INET6_ADDRSTRLEN + 1]
    cdef sockaddr_in *sin
    cdef sockaddr_in6 *sin6
    cdef sockaddr_un *sun
    cdef Py_ssize_t n
    if length == 0:
        return None
    if sa.sa_family == AF_INET:
        sin = <sockaddr_in *>sa
        inet_ntop(AF_INET, &sin.sin_addr, host, sizeof(host))
        return (host.decode("ascii"), ntohs(sin.sin_port))
    if sa.sa_family == AF_INET6:
        sin6 = <sockaddr_in6 *>sa
        inet_ntop(AF_INET6, &sin6.sin6_addr, host, sizeof(host))
        return (host.decode("ascii"), ntohs(sin6.sin6_port),
                ntohl(sin6.sin6_flowinfo), sin6.sin6_scope_id)
    if sa.sa_family == AF_UNIX:
        sun = <sockaddr_un *>sa
        n = <Py_ssize_t>length - <Py_ssize_t>offsetof_sun_path
        if n <= 0:
            return ""
        if sun.sun_path[0] == 0:  # Linux abstract namespace: keep the bytes
            return PyBytes_FromStringAndSize(sun.sun_path, n)
        n = strlen(sun.sun_path) if strlen(sun.sun_path) < <size_t>n else n
        return PyBytes_FromStringAndSize(sun.sun_path, n).decode(
            "utf-8", "surrogateescape")
    return None


cdef bytes as_bytes(object data, str where):
    """`data` as bytes (copying a bytearray or memoryview), or TypeError."""
    if isinstance(data, (str, int)) or data is None:
        raise TypeError(
            f"{where} expects bytes-like data (bytes, bytearray or "
            f"memoryview), got {type(data).__name__}")
    try:
        return bytes(memoryview(data))
    except TypeError:
        raise TypeError(
            f"{where} expects bytes-like data (bytes, bytearray or "
            f"memoryview), got {type(data).__name__}") from None


# ---------------------------------------------------------------------------
# Poller

cdef class Poller:
    """The loop's view of readiness polling.

    `add`/`modify`/`remove` take a 64-bit token the poller hands back with
    each event; `wait` fills an internal array and returns how many events
    it holds.  A kqueue poller can implement the same methods.
    """

    cdef int add(self, int fd, uint32_t events, uint64_t token) except -1:
        raise NotImplementedError

    cdef int modify(self, int fd, uint32_t events, uint64_t token) except -1:
        raise NotImplementedError

    cdef int remove(self, int fd) except -1:
        raise NotImplementedError

    cdef int wait(self, int timeout_ms) except -1:
        raise NotImplementedError

    cdef uint64_t token_at(self, int i) noexcept:
        return 0

    cdef uint32_t events_at(self, int i) noexcept:
        return 0

    cdef int close_poller(self) except -1:
        return 0

    # Python-level access, for tests and tools.

    def register(self, int fd, uint32_t events, token=None):
        """Watch `fd` for `events`; `poll` reports `token` (default: fd)."""
        self.add(fd, events, fd if token is None else token)

    def reregister(self, int fd, uint32_t events, token=None):
        self.modify(fd, events, fd if token is None else token)

    def unregister(self, int fd):
        self.remove(fd)

    def poll(self, timeout=None):
        """Wait up to `timeout` seconds (None: forever); [(token, events)]."""
        cdef int ms = -1 if timeout is None else max(0, <int>(timeout * 1000 + 0.999))
        cdef int n = self.wait(ms)
        return [(self.token_at(i), self.events_at(i)) for i in range(n)]

    def close(self):
        self.close_poller()


cdef class EpollPoller(Poller):
    """Level-triggered epoll, with a preallocated event array."""

    def __cinit__(self, int capacity=1024):
        self.epfd = -1
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.events = <epoll_event *>PyMem_Malloc(capacity * sizeof(epoll_event))
        if self.events == NULL:
            raise MemoryError()
        self.capacity = capacity
        self.epfd = epoll_create1(EPOLL_CLOEXEC)
        if self.epfd < 0:
            raise os_error(errno)

    def __dealloc__(self):
        if self.epfd >= 0:
            c_close(self.epfd)
        PyMem_Free(self.events)

    cdef int ctl(self, int op, int fd, uint32_t events, uint64_t token) except -1:
        cdef epoll_event ev
        if self.epfd < 0:
            raise ValueError("the poller is closed")
        memset(&ev, 0, sizeof(ev))
        ev.events = events
        ev.data.u64 = token
        if epoll_ctl(self.epfd, op, fd, &ev) < 0:
            raise os_error(errno)
        return 0

    cdef int add(self, int fd, uint32_t events, uint64_t token) except -1:
        return self.ctl(EPOLL_CTL_ADD, fd, events, token)

    cdef int modify(self, int fd, uint32_t events, uint64_t token) except -1:
        return self.ctl(EPOLL_CTL_MOD, fd, events, token)

    cdef int remove(self, int fd) except -1:
        return self.ctl(EPOLL_CTL_DEL, fd, 0, 0)

    cdef int wait(self, int timeout_ms) except -1:
        cdef int n
        if self.epfd < 0:
            raise ValueError("the poller is closed")
        with nogil:
            n = epoll_wait(self.epfd, self.events, self.capacity, timeout_ms)
        if n < 0:
            if errno == EINTR:
                return 0
            raise os_error(errno)
        return n

    cdef uint64_t token_at(self, int i) noexcept:
        return self.events[i].data.u64

    cdef uint32_t events_at(self, int i) noexcept:
        return self.events[i].events

    cdef int close_poller(self) except -1:
        if self.epfd >= 0:
            c_close(self.epfd)
            self.epfd = -1
        return 0

    def fileno(self):
        return self.epfd


cdef class Waker:
    """An eventfd that any thread can set to wake a loop out of `wait`."""

    def __cinit__(self):
        self.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if self.fd < 0:
            raise os_error(errno)

    def __dealloc__(self):
        if self.fd >= 0:
            c_close(self.fd)

    def fileno(self):
        return self.fd

    def wake(self):
        """Make the eventfd readable; safe from any thread, never blocks."""
        cdef uint64_t one = 1
        cdef int fd = self.fd
        if fd < 0:
            raise ValueError("the waker is closed")
        with nogil:
            # EAGAIN means the counter is saturated: it is readable already.
            c_write(fd, &one, sizeof(one))

    cdef int drain(self) except -1:
        cdef uint64_t value = 0
        if c_read(self.fd, &value, sizeof(value)) < 0:
            return 0
        return 1 if value else 0

    def clear(self):
        """Reset the eventfd; True if it had been woken."""
        return bool(self.drain())

    def close(self):
        if self.fd >= 0:
            c_close(self.fd)
            self.fd = -1


# ---------------------------------------------------------------------------
# Loop

cdef class Watcher:
    """A socket registered with a loop; `on_event` is its reaction."""

    def __cinit__(self):
        self.fd = -1

    cdef int on_event(self, uint32_t events) except -1:
        return 0

    def fileno(self):
        return self.fd


@cython.final
cdef class Timer:
    """A pending `call_later`; `cancel()` is safe from any thread."""

    def cancel(self):
        if self.cancelled or self.loop is None:
            return
        self.cancelled = True
        self.loop.here_or_soon(self._forget, _NOARG)

    def _forget(self):
        if self.counted:
            self.loop.active -= 1
            self.counted = False
        self.loop = None
        self.func = self.args = None


cdef class Loop:
    """One event loop: a poller, a waker, cross-thread calls and timers.

    `run()` runs it in the calling thread until nothing is active (no open
    socket, no pending call or timer).  Everything else may be called from
    any thread.
    """

    def __cinit__(self, Py_ssize_t bufsize=262144, int capacity=1024):
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError()
        if bufsize < 1:
            raise ValueError(f"bufsize must be positive, got {bufsize}")
        self.buf = <char *>PyMem_Malloc(bufsize)
        if self.buf == NULL:
            raise MemoryError()
        self.bufsize = bufsize
        self.poller = EpollPoller(capacity)
        self.waker = Waker()
        self.poller.add(self.waker.fd, EPOLLIN, 0)
        self.pending = []
        self.ready = []
        self.watchers = set()
        self.graveyard = []
        self.timers = []
        self.logger = _log

    def __dealloc__(self):
        if self.lock != NULL:
            PyThread_free_lock(self.lock)
        PyMem_Free(self.buf)

    cdef inline bint on_loop_thread(self) noexcept:
        return self.thread_id == PyThread_get_thread_ident()

    @property
    def running(self):
        """True while some thread is inside `run()`."""
        return self.thread_id != 0

    def in_loop_thread(self):
        """True when called from the thread running the loop."""
        return self.on_loop_thread()

    def idle(self):
        """Nothing active and nothing pending: `run()` would return."""
        return self.active == 0 and not self.pending

    cdef int set_interest(self, Watcher w, uint32_t mask) except -1:
        if mask == w.mask or w.fd < 0:
            return 0
        if mask == 0:
            self.poller.remove(w.fd)
            self.watchers.discard(w)
            self.graveyard.append(w)
        elif w.mask == 0:
            self.poller.add(w.fd, mask, <uint64_t><void *>w)
            self.watchers.add(w)
        else:
            self.poller.modify(w.fd, mask, <uint64_t><void *>w)
        w.mask = mask
        return 0

    cdef int submit(self, object func, object arg) except -1:
        cdef bint wake
        cdef tuple item = (func, arg)
        lock_acquire(self.lock)
        self.pending.append(item)
        wake = not self.wake_pending
        self.wake_pending = True
        PyThread_release_lock(self.lock)
        if wake:
            self.waker.wake()
        return 0

    cdef int here_or_soon(self, object func, object arg) except -1:
        """Call `func(arg)` now on the loop thread, else queue it for there."""
        if not self.on_loop_thread():
            return self.submit(func, arg)
        call(func, arg)
        return 0

    def call_soon(self, func, *args):
        """Run `func(*args)` on the loop thread, after what is queued."""
        self.submit(func, args if args else _NOARG)

    cdef int run_pending(self) except -1:
        cdef list batch
        lock_acquire(self.lock)
        batch = self.pending
        self.pending = []
        self.wake_pending = False
        PyThread_release_lock(self.lock)
        for func, arg in batch:
            try:
                call(func, arg)
            except Exception as e:
                self.report(f"call {func!r}", e)
        return 0

    def call_later(self, double delay, func, *args):
        """Call `func(*args)` on the loop thread after `delay` seconds."""
        if not callable(func):
            raise TypeError(f"call_later() expects a callable, got {func!r}")
        if delay != delay:
            raise ValueError("call_later() expects a number of seconds, got nan")
        cdef Timer t = self.new_timer(delay, func, args)
        self.here_or_soon(self._push_timer, t)
        return t

    cdef Timer unref_timer(self, double delay, object func):
        """A timer that does not keep the loop running, on the loop thread:
        the bound on something that keeps it running by itself."""
        cdef Timer t = self.new_timer(delay, func, ())
        self.push_timer(t)
        return t

    cdef Timer new_timer(self, double delay, object func, tuple args):
        cdef Timer t = Timer.__new__(Timer)
        t.when = monotonic() + max(delay, 0.0)
        t.func = func
        t.args = args
        t.loop = self
        return t

    def _push_timer(self, Timer t):
        if t.cancelled:
            return
        t.counted = True  # a pending timer keeps the loop running
        self.active += 1
        self.push_timer(t)

    cdef int push_timer(self, Timer t) except -1:
        self.timer_seq += 1
        heapq.heappush(self.timers, (t.when, self.timer_seq, t))
        return 0

    cdef int run_ready(self) except -1:
        """Give connections that may still have work their turn."""
        cdef list batch = self.ready
        cdef Connection c
        self.ready = []
        for c in batch:
            c.flags &= ~F_READY
            if c.fd >= 0:
                c.on_event(EPOLLIN | EPOLLOUT)  # whatever it may have to do
            if self.failure is not None:
                break
        return 0

    cdef int run_timers(self) except -1:
        cdef Timer t
        cdef double now = monotonic()
        while self.timers and self.timers[0][0] <= now:
            t = heapq.heappop(self.timers)[2]
            if t.cancelled:
                continue
            func, args = t.func, t.args
            # Fired: loop is None from here, so a late cancel() is a no-op.
            t._forget()
            try:
                func(*args)
            except Exception as e:
                self.report(f"timer {func!r}", e)
        return 0

    cdef int report(self, str what, object exc) except -1:
        """Log a failed application call; in Inline mode, re-raise it later."""
        self.logger.error("%s failed", what, exc_info=exc)
        if self.propagate and self.failure is None:
            self.failure = exc
        return 0

    def run(self, timeout=None):
        """Run until idle (returns True) or `timeout` seconds (False)."""
        cdef double deadline = -1.0, wait_s
        cdef unsigned long me = PyThread_get_thread_ident()
        cdef int n, i, ms
        cdef uint64_t token
        cdef Watcher w
        if self.thread_id != 0:
            raise RuntimeError("this loop is already running")
        if timeout is not None:
            deadline = monotonic() + timeout
        self.thread_id = me
        try:
            while True:
                if self.pending:
                    self.run_pending()
                self.raise_failure()
                if self.active == 0 and not self.pending:
                    return True
                ms = -1
                if self.pending or self.ready:
                    ms = 0
                else:
                    if self.timers:
                        ms = wait_ms(self.timers[0][0] - monotonic())
                    if deadline >= 0:
                        i = wait_ms(deadline - monotonic())
                        if ms < 0 or i < ms:
                            ms = i
                n = self.poller.wait(ms)
                for i in range(n):
                    token = self.poller.token_at(i)
                    if token == 0:
                        self.waker.drain()
                        continue
                    w = <Watcher><void *>token
                    if w.fd >= 0:
                        w.on_event(self.poller.events_at(i))
                    if self.failure is not None:
                        break
                if self.ready and self.failure is None:
                    self.run_ready()
                if self.graveyard:
                    self.graveyard = []
                if self.timers:
                    self.run_timers()
                self.raise_failure()
                if deadline >= 0 and monotonic() >= deadline:
                    return self.active == 0 and not self.pending
        finally:
            self.thread_id = 0

    def raise_failure(self):
        if self.failure is not None:
            exc, self.failure = self.failure, None
            raise exc

    def close(self):
        """Release the poller and the waker; the loop cannot run again."""
        self.poller.close_poller()
        self.waker.close()

    # Attaching sockets: the descriptor is the loop's from here on, and
    # non-blocking (the loop reads and accepts until EAGAIN).

    def connection(self, int fd, bint nodelay=False):
        """Adopt a connected socket as a `Connection` (no handler yet)."""
        set_nonblocking(fd)
        cdef Connection c = new_connection(self, fd, nodelay)
        self.attach(c, CONNECTION_EVENTS)
        return c

    def listener(self, int fd, server, address=None, unix_path=None,
                 bint nodelay=False):
        """Adopt a listening socket; `server(connection)` gets each accept."""
        set_nonblocking(fd)
        cdef Listener l = Listener.__new__(Listener)
        l.fd = fd
        l.loop = self
        l.server = server
        l.conns = set()
        l.accepting = True
        l.nodelay = nodelay
        l.address = address
        l.unix_path = unix_path
        self.attach(l, EPOLLIN)
        return l

    def connector(self, int fd, handler, bint nodelay=False):
        """Adopt a socket whose non-blocking connect is under way."""
        set_nonblocking(fd)
        cdef Connector c = Connector.__new__(Connector)
        c.fd = fd
        c.loop = self
        c.handler = handler
        c.nodelay = nodelay
        self.attach(c, EPOLLOUT)
        return c

    def udp_listener(self, int fd, handler, Py_ssize_t buffer_size,
                     address=None, unix_path=None):
        """Adopt a bound datagram socket; `handler(address, data)` per datagram."""
        cdef UDPListener u = UDPListener.__new__(UDPListener)
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be positive, got {buffer_size}")
        set_nonblocking(fd)
        u.fd = fd
        u.loop = self
        u.handler = handler
        u.buffer_size = buffer_size
        u.address = address
        u.unix_path = unix_path
        self.attach(u, EPOLLIN)
        return u

    def attach(self, Watcher w, uint32_t mask):
        # Counted active at once, so the loop is not idle in between.
        self.active += 1
        self.here_or_soon(self._register, (w, mask))

    def _register(self, Watcher w, uint32_t mask):
        if w.fd >= 0:
            self.set_interest(w, mask)

    cdef int detach(self, Watcher w) except -1:
        """Stop watching `w` and close its descriptor."""
        cdef int fd = w.fd
        if fd < 0:
            return 0
        self.set_interest(w, 0)
        w.fd = -1
        c_close(fd)
        self.active -= 1
        return 0


cdef int set_nonblocking(int fd) except -1:
    cdef int flags = fcntl(fd, F_GETFL)
    if flags < 0 or (not (flags & O_NONBLOCK)
                     and fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0):
        raise OSError(errno, strerror(errno).decode(), f"descriptor {fd}")
    return 0


# ---------------------------------------------------------------------------
# Connections

@cython.final
cdef class Connection(Watcher):
    """A connected stream socket: NGI's `IConnection` over the core."""

    def __cinit__(self):
        self.high = DEFAULT_HIGH
        self.low = DEFAULT_LOW

    def __repr__(self):
        state = "closed" if self.flags & F_CLOSED else (
            "closing" if self.flags & F_CLOSING else "open")
        return f"<ngi connection fd={self.fd} {state}>"

    def __bool__(self):
        return not self.closed_for_writes()

    cdef inline bint closed_for_writes(self) noexcept:
        """Closed, or closing: by the loop's flags or another thread's call."""
        return (self.flags & (F_CLOSING | F_CLOSED)) != 0 or atomic_load_int(&self.close_asked) != 0

    @property
    def peer_address(self):
        """What getpeername() returns for the socket, also after the close.

        The raw address comes with accept (or is read once on connect) and
        is turned into a Python object only when asked for.
        """
        cdef sockaddr_storage ss
        cdef socklen_t length = sizeof(ss)
        if self.peer is None:
            if self.peer_len:
                self.peer = sockaddr_to_py(<sockaddr *>self.peer_raw, self.peer_len)
            elif self.fd >= 0 and getpeername(self.fd, <sockaddr *>&ss, &length) == 0:
                self.peer = sockaddr_to_py(<sockaddr *>&ss, length)
        return self.peer

    @property
    def write_buffer_size(self):
        """Bytes written and not yet handed to the kernel."""
        return self.queued + atomic_load(&self.transit)

    # -- handler ------------------------------------------------------------

    def set_handler(self, handler):
        on_input = getattr(handler, "handle_input", None)
        if on_input is None or not callable(on_input):
            raise TypeError(
                "set_handler() expects a handler with a "
                f"handle_input(connection, data) method, got {handler!r}")
        self.loop.here_or_soon(self._set_handler, (handler, on_input))

    def _set_handler(self, handler, on_input):
        self.handler = handler
        self.on_input = on_input
        if self.flags & F_MISSED:
            self.mark_ready()  # input arrived while nobody read

    cdef inline bint reading_now(self) noexcept:
        return (self.on_input is not None
                and not (self.flags & (F_CLOSING | F_CLOSED))
                and not atomic_load_int(&self.paused))

    cdef int mark_ready(self) except -1:
        """Give this connection a turn in the loop's next pass."""
        if not (self.flags & (F_READY | F_CLOSED)):
            self.flags |= F_READY
            self.loop.ready.append(self)
        return 0

    # -- writing ------------------------------------------------------------

    def write(self, data):
        cdef bytes b
        if type(data) is bytes:
            b = <bytes>data
        else:
            b = as_bytes(data, "write()")
        if self.closed_for_writes():
            raise ConnectionClosed("write() on a closed connection")
        if PyBytes_GET_SIZE(b) == 0:
            return
        if self.loop.on_loop_thread():
            if self.queue is None:
                self.send_now(b)
            else:
                self.enqueue(b)
        else:
            # Counted at once: write_buffer_size includes what is in transit.
            atomic_add(&self.transit, PyBytes_GET_SIZE(b))
            self.loop.submit(self._write, b)

    def _write(self, bytes b):
        atomic_add(&self.transit, -PyBytes_GET_SIZE(b))
        if self.flags & F_CLOSED:
            return
        if self.queue is None:
            self.send_now(b)
        else:
            self.enqueue(b)

    def writelines(self, data):
        if isinstance(data, (bytes, bytearray, str, memoryview)):
            raise TypeError(
                "writelines() expects an iterable of bytes-like items, got "
                f"{type(data).__name__} itself (use write() for one buffer)")
        iterator = iter(data)
        if self.closed_for_writes():
            raise ConnectionClosed("writelines() on a closed connection")
        if self.loop.on_loop_thread():
            self.enqueue(iterator)
        else:
            self.loop.submit(self._writelines, iterator)

    def _writelines(self, iterator):
        if not (self.flags & F_CLOSED):
            self.enqueue(iterator)

    cdef int send_now(self, bytes data) except -1:
        """Send at once (nothing is queued); queue whatever the kernel refused."""
        cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
        cdef ssize_t n = send(self.fd, PyBytes_AS_STRING(data), size,
                              MSG_NOSIGNAL)
        if n == size:
            return 0
        # Queue the rest.  When the kernel is full (a short send, EAGAIN) an
        # edge comes once it takes more; any other failure gets a turn in
        # the next pass, where flush() meets the error outside the
        # handler's call and reports it as a close.
        if n < 0:
            if errno != EAGAIN:
                self.mark_ready()
            n = 0
        self.queue = [data]
        self.head = 0
        self.offset = n
        self.queued += size - n
        if self.queued > self.high:
            self.check_limits()
        return 0

    cdef int check_limits(self) except -1:
        """Tell the handler when the buffer crosses a mark, once a crossing."""
        cdef str name
        if self.closed_for_writes():
            return 0  # closed for the application: no more callbacks
        if self.queued > self.high:
            if self.flags & F_WPAUSED:
                return 0
            self.flags |= F_WPAUSED
            name = "handle_pause_writing"
        elif self.queued <= self.low and self.flags & F_WPAUSED:
            self.flags &= ~F_WPAUSED
            name = "handle_resume_writing"
        else:
            return 0
        method = getattr(self.handler, name, None)
        if method is not None:
            try:
                method(self)
            except Exception as e:
                self.handler_failed(name, e)
        return 0

    def set_write_limits(self, high=None, low=None):
        """Set the write buffer's marks (asyncio's rules and defaults)."""
        for name, value in (("high", high), ("low", low)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if high is None:
            high = DEFAULT_HIGH if low is None else 4 * low
        if low is None:
            low = high // 4
        if low > high:
            raise ValueError(f"low ({low}) must not be above high ({high})")
        self.high = high
        self.low = low
        self.loop.here_or_soon(self._check_limits, _NOARG)

    def _check_limits(self):
        self.check_limits()

    def get_write_limits(self):
        """(high, low): the marks in force."""
        return (self.high, self.low)

    cdef int enqueue(self, object item) except -1:
        if self.queue is None:
            # Nothing was waiting for an edge: flush in the next pass.
            self.queue = [item]
            self.head = 0
            self.offset = 0
            self.mark_ready()
        else:
            self.queue.append(item)
        if type(item) is bytes:
            self.queued += PyBytes_GET_SIZE(<bytes>item)
            if self.queued > self.high:
                self.check_limits()
        return 0

    cdef int flush(self) except -1:
        cdef iovec iov[MAX_IOV]
        cdef int cnt, rounds
        cdef Py_ssize_t i, end, total, size
        cdef ssize_t n, written
        cdef msghdr msg
        cdef list queue
        cdef object item
        cdef bint blocked = False  # the kernel is full: an edge will come
        for rounds in range(FLUSH_ROUNDS):
            queue = self.queue
            if queue is None:
                break
            end = len(queue)
            cnt = 0
            total = 0
            i = self.head
            while i < end and cnt < MAX_IOV:
                item = queue[i]
                if type(item) is not bytes:
                    break
                size = PyBytes_GET_SIZE(<bytes>item)
                iov[cnt].iov_base = PyBytes_AS_STRING(<bytes>item)
                iov[cnt].iov_len = size
                if cnt == 0:
                    iov[0].iov_base = <char *>iov[0].iov_base + self.offset
                    iov[0].iov_len -= self.offset
                total += iov[cnt].iov_len
                cnt += 1
                i += 1
            if cnt == 0:
                if self.head >= end:
                    self.queue = None
                    break
                self.pull(queue[self.head])
                if self.flags & F_CLOSED:
                    return 0
                continue
            memset(&msg, 0, sizeof(msg))
            msg.msg_iov = iov
            msg.msg_iovlen = cnt
            n = sendmsg(self.fd, &msg, MSG_NOSIGNAL)
            if n < 0:
                if errno == EINTR:
                    continue
                if errno == EAGAIN:
                    blocked = True
                    break
                self.lost(os_error(errno))
                return 0
            self.queued -= n
            written = n
            # Drop what was sent, releasing each bytes object at once.
            n += self.offset
            i = self.head
            while i < end:
                item = queue[i]
                if type(item) is not bytes:
                    break
                size = PyBytes_GET_SIZE(<bytes>item)
                if n < size:
                    break
                n -= size
                queue[i] = None
                i += 1
            self.head = i
            self.offset = n
            if self.head >= end:
                self.queue = None
            elif self.head >= 64 and self.head * 2 >= end:
                del queue[:self.head]
                self.head = 0
            if written < total:
                blocked = True  # the kernel's buffer is full
                break
        if self.queue is None:
            self.head = self.offset = 0
            if self.flags & F_CLOSING:
                return self.finish_close()
        if self.flags & F_WPAUSED:
            self.check_limits()
            if self.fd < 0:
                return 0
        if self.queue is not None and not blocked:
            self.mark_ready()  # stopped at the per-pass bound
        return 0

    cdef int pull(self, object iterator) except -1:
        """Pull a bounded round of items from the iterator at the queue head."""
        cdef list items = []
        cdef Py_ssize_t total = 0, count = 0
        # Pull about `high` bytes at a time: a generator streaming a large
        # body then holds memory to about the high-water mark.
        cdef Py_ssize_t budget = min(max(self.high, 1), PULL_BYTES)
        cdef bint done = False
        cdef object error = None, item
        try:
            while total < budget and count < PULL_ITEMS:
                try:
                    item = next(iterator)
                except StopIteration:
                    done = True
                    break
                count += 1
                if type(item) is not bytes:
                    item = as_bytes(item, "writelines()")
                if PyBytes_GET_SIZE(<bytes>item):
                    items.append(item)
                    total += PyBytes_GET_SIZE(<bytes>item)
        except Exception as e:
            error = e
            done = True
        if done:
            self.queue[self.head:self.head + 1] = items
        else:
            self.queue[self.head:self.head] = items
        self.queued += total
        if error is not None:
            self._exception(error)
        elif self.queued > self.high:
            self.check_limits()
        return 0

    def _exception(self, error):
        """Report a writelines failure to the handler's handle_exception."""
        on_exception = getattr(self.handler, "handle_exception", None)
        if on_exception is None:
            self.handler_failed("writelines", error)
            return
        try:
            on_exception(self, error)
        except Exception as e:
            self.handler_failed("handle_exception", e)

    # -- reading ------------------------------------------------------------

    cdef int read(self) except -1:
        cdef ssize_t n
        cdef int i
        cdef Loop loop = self.loop
        self.flags &= ~F_MISSED
        for i in range(READS_PER_EVENT):
            n = recv(self.fd, loop.buf, loop.bufsize, 0)
            if n > 0:
                data = PyBytes_FromStringAndSize(loop.buf, n)
                try:
                    self.on_input(self, data)
                except Exception as e:
                    self.handler_failed("handle_input", e)
                    return 0
                if not self.reading_now():
                    self.flags |= F_MISSED  # maybe more: read when resumed
                    return 0
                if n < loop.bufsize and not (self.flags & F_HUNGUP):
                    return 0  # drained: more input makes a new edge
            elif n == 0:
                return self.end_of_input()
            else:
                if errno == EINTR:
                    continue
                if errno == EAGAIN:
                    return 0
                return self.lost(os_error(errno))
        return self.mark_ready()  # more may be waiting: read again next pass

    def pause_reading(self):
        """Stop delivering input until `resume_reading()`; idempotent.

        Takes effect at once, from any thread: the loop checks before each
        delivery.
        """
        atomic_store_int(&self.paused, 1)

    def resume_reading(self):
        if atomic_load_int(&self.paused):
            atomic_store_int(&self.paused, 0)
            self.loop.here_or_soon(self._resumed, _NOARG)

    @property
    def reading(self):
        return not (atomic_load_int(&self.paused) or self.closed_for_writes())

    def _resumed(self):
        if self.flags & F_MISSED:
            self.mark_ready()  # what arrived meanwhile makes no new edge

    cdef int on_event(self, uint32_t events) except -1:
        # Edge-triggered: an event, or a turn from Loop.ready, is the only
        # chance to act on it.  Errors surface in send or recv.
        if self.flags & F_LINGER:
            return self.discard_input()
        if events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR):
            self.flags |= F_HUNGUP
        if self.queue is not None:
            self.flush()
            if self.fd < 0:
                return 0
        if events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR):
            # Not on a writable-only edge: that recv would find nothing.
            if self.reading_now():
                self.read()
            else:
                self.flags |= F_MISSED  # no handler yet, or paused
        return 0

    def socket_error(self):
        cdef int err = 0
        cdef socklen_t length = sizeof(err)
        if self.fd >= 0 and getsockopt(self.fd, SOL_SOCKET, SO_ERROR, &err, &length) == 0 and err:
            return os_error(err)
        return "closed"

    # -- closing ------------------------------------------------------------

    def close(self):
        if self.closed_for_writes():
            return
        # Seen at once by every thread; the loop's own flags change there.
        atomic_store_int(&self.close_asked, 1)
        self.loop.here_or_soon(self._close, _NOARG)

    def _close(self):
        if self.flags & F_CLOSED:
            return
        self.flags |= F_CLOSING
        if self.queue is None:
            self.finish_close()

    cdef int finish_close(self) except -1:
        """Everything written is in the kernel's hands: send our FIN."""
        if self.fd < 0:
            return self.teardown()
        shutdown(self.fd, SHUT_WR)
        if self.at_risk():
            return self.linger()
        return self.teardown()

    cdef bint at_risk(self) noexcept:
        """Would closing now let a TCP reset destroy what we sent?

        Closing a socket with unread input, or one that input reaches
        later, makes the kernel answer with a reset, and a reset throws
        away what was still on its way: a reply to a client that is still
        uploading would be lost (asyncio loses it).  Nothing is at risk
        once the peer has acknowledged all we sent and no input waits, nor
        on Unix sockets, where the data is already in the peer's queue.
        """
        cdef int n = 0, domain = 0
        cdef socklen_t length = sizeof(domain)
        if (ioctl(self.fd, SIOCOUTQ, &n) == 0 and n == 0
                and ioctl(self.fd, SIOCINQ, &n) == 0 and n == 0):
            return False
        if getsockopt(self.fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) == 0:
            return domain == AF_INET or domain == AF_INET6
        return True

    cdef int linger(self) except -1:
        """Drop the peer's input until its EOF, or until it has acknowledged
        all we sent, before closing the socket: a web server's lingering
        close, LINGER_SECONDS at most.  The listener is done with the
        connection.
        """
        self.flags |= F_LINGER
        self.forget_control()
        self.discard_input()
        if not (self.flags & F_CLOSED):
            # The open socket keeps the loop running; this only bounds it.
            # Firing after an earlier teardown is a no-op.
            self.loop.unref_timer(LINGER_SECONDS, self._teardown)
        return 0

    cdef int discard_input(self) except -1:
        cdef ssize_t n
        cdef int i, unacked = 0
        for i in range(READS_PER_EVENT):
            n = recv(self.fd, self.loop.buf, self.loop.bufsize, 0)
            if n > 0 or (n < 0 and errno == EINTR):
                continue
            if n < 0 and errno == EAGAIN:
                if ioctl(self.fd, SIOCOUTQ, &unacked) == 0 and unacked == 0:
                    return self.teardown()  # the peer has all of it
                return 0
            return self.teardown()  # the peer's EOF, or an error: done
        return self.mark_ready()

    def abort(self):
        """Close now, dropping what is not yet sent; no handle_close follows.

        For a peer that stopped reading: its queue is freed at once.
        """
        if self.flags & F_CLOSED:
            return
        atomic_store_int(&self.close_asked, 1)
        self.loop.here_or_soon(self._teardown, _NOARG)

    def _teardown(self):
        self.teardown()

    cdef int teardown(self) except -1:
        """Close the socket now, dropping anything queued."""
        if self.flags & F_CLOSED:
            return 0
        self.flags = (self.flags | F_CLOSED | F_CLOSING) & ~F_WPAUSED
        self.queue = None
        self.queued = 0
        self.loop.detach(self)
        return self.forget_control()

    cdef int forget_control(self) except -1:
        """Tell the listener this connection is gone (again is harmless)."""
        if self.control is not None:
            ctrl = <Listener>self.control
            if ctrl.loop is self.loop:
                ctrl.forget(self)
            else:  # a thready connection: its listener lives on another loop
                ctrl.loop.submit(ctrl._forget, self)
        return 0

    cdef int lost(self, object reason) except -1:
        """The connection ended from outside: tell the handler why."""
        cdef bint notify = not self.closed_for_writes()
        self.teardown()
        if notify:
            self.tell_closed(reason)
        return 0

    cdef int tell_closed(self, object reason) except -1:
        if self.handler is not None:
            on_close = getattr(self.handler, "handle_close", None)
            if on_close is not None:
                try:
                    on_close(self, reason)
                except Exception as e:
                    self.loop.report("handle_close", e)
        return 0

    cdef int end_of_input(self) except -1:
        """The peer shut down its sending side.

        It may still be reading (a client that half-closes after its
        request), so what the application wrote before is still sent, as
        asyncio does: the handler hears `handle_close` now, and the socket
        closes once the queue drains, or at once when nothing is queued.
        """
        cdef bint notify
        if self.queue is None:
            return self.lost("closed")
        notify = not self.closed_for_writes()
        self.flags |= F_CLOSING  # no more input; writes raise; flush closes
        if notify:
            self.tell_closed("closed")
        return 0

    def _lost(self, reason):
        self.lost(reason)

    cdef int handler_failed(self, str what, object exc) except -1:
        self.loop.report(what, exc)
        return self.lost(exc)


# ---------------------------------------------------------------------------
# Listeners and connectors

@cython.final
cdef class Listener(Watcher):
    """A listening socket: NGI's `IListener` over the core."""

    def __repr__(self):
        return f"<ngi listener {self.address!r}>"

    cdef int on_event(self, uint32_t events) except -1:
        return self.accept_some()

    cdef int accept_some(self) except -1:
        cdef int fd, i, err
        cdef Loop loop = self.loop
        cdef Connection c
        cdef sockaddr_storage ss
        cdef socklen_t length
        for i in range(ACCEPTS_PER_EVENT):
            if not self.accepting:
                return 0
            length = sizeof(ss)
            fd = accept4(self.fd, <sockaddr *>&ss, &length,
                         SOCK_NONBLOCK | SOCK_CLOEXEC)
            if fd < 0:
                err = errno
                if err == EAGAIN:
                    return 0
                if err == EINTR or err == ECONNABORTED or err == EPROTO:
                    continue
                if err in (EMFILE, ENFILE, ENOBUFS, ENOMEM):
                    # Out of descriptors or memory: the pending connection
                    # stays readable, so rest instead of spinning, and say
                    # so once per episode, not once per try.
                    if not self.starved:
                        self.starved = True
                        loop.logger.warning(
                            "%r: accept failed (%s); retrying every %ss",
                            self, strerror(err).decode(), ACCEPT_PAUSE)
                    loop.set_interest(self, 0)
                    loop.call_later(ACCEPT_PAUSE, self._resume)
                    return 0
                loop.report(f"accept on {self!r}", os_error(err))
                return 0
            if self.starved:
                self.starved = False
                loop.logger.warning("%r: accepting again", self)
            if self.nodelay:
                set_nodelay(fd)
            if self.adopt is not None:
                try:
                    self.adopt(fd)
                except Exception as e:
                    c_close(fd)
                    loop.report(f"adopting a connection of {self!r}", e)
                continue
            c = new_connection(loop, fd, False)  # TCP_NODELAY set above
            c.control = self
            keep_peer(c, <sockaddr *>&ss, length)
            loop.active += 1
            loop.set_interest(c, CONNECTION_EVENTS)
            self.conns.add(c)
            try:
                self.server(c)
            except Exception as e:
                c.teardown()
                loop.report(f"server {self.server!r}", e)
        return 0

    def _resume(self):
        if self.accepting and self.fd >= 0:
            self.loop.set_interest(self, EPOLLIN)

    def track(self, Connection conn):
        """Count a connection accepted for this listener on another loop."""
        conn.control = self
        self.conns.add(conn)

    def _forget(self, Connection conn):
        self.forget(conn)

    cdef int forget(self, Connection conn) except -1:
        self.conns.discard(conn)
        if not self.conns and self.drained is not None:
            handler, self.drained = self.drained, None
            self.loop.active -= 1
            try:
                handler(self)
            except Exception as e:
                self.loop.report(f"listener close handler {handler!r}", e)
        return 0

    def connections(self):
        """The open connections this listener accepted."""
        return [c for c in list(self.conns) if c]

    def close(self, handler=None):
        """Close now (connections get 'stopped'), or drain, then `handler`.

        A close without a handler after a draining one stops the
        connections still open; the drain handler then runs as they go.
        """
        if not self.accepting:
            if handler is None:
                self.loop.here_or_soon(self._stop_all, _NOARG)
            return
        self.accepting = False
        if self.unix_path is not None:
            path, self.unix_path = self.unix_path, None
            try:
                os.unlink(path)
            except OSError:
                pass
        self.loop.here_or_soon(self._close, (handler,))

    def _stop_all(self):
        cdef Connection c
        for c in list(self.conns):
            if c.loop is self.loop:
                c.lost("stopped")
            else:
                c.loop.submit(c._lost, "stopped")

    def _close(self, handler):
        self.loop.detach(self)
        if handler is None:
            self._stop_all()
        elif self.conns:
            self.drained = handler
            self.loop.active += 1  # the loop waits for the drain
        else:
            try:
                handler(self)
            except Exception as e:
                self.loop.report(f"listener close handler {handler!r}", e)


@cython.final
cdef class Connector(Watcher):
    """A socket whose connect is under way; becomes a `Connection`."""

    cdef int on_event(self, uint32_t events) except -1:
        cdef int err = 0, fd = self.fd
        cdef socklen_t length = sizeof(err)
        cdef Loop loop = self.loop
        cdef Connection c
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &length) < 0:
            err = errno
        handler, self.handler = self.handler, None
        if err:
            loop.detach(self)
            try:
                handler.failed_connect(os_error(err))
            except Exception as e:
                loop.report("failed_connect", e)
            return 0
        # Hand the descriptor over to a Connection: still one active thing.
        loop.set_interest(self, 0)
        self.fd = -1
        c = new_connection(loop, fd, self.nodelay)
        loop.set_interest(c, CONNECTION_EVENTS)
        c.peer_address  # read it once, while the socket is surely open
        try:
            handler.connected(c)
        except Exception as e:
            c.teardown()
            loop.report("connected", e)
        return 0


@cython.final
cdef class UDPListener(Watcher):
    """A bound datagram socket calling `handler(address, data)`."""

    def __repr__(self):
        return f"<ngi udp listener {self.address!r}>"

    cdef int on_event(self, uint32_t events) except -1:
        cdef sockaddr_storage ss
        cdef socklen_t length
        cdef ssize_t n
        cdef int i
        cdef Loop loop = self.loop
        cdef Py_ssize_t size = min(self.buffer_size, loop.bufsize)
        for i in range(DATAGRAMS_PER_EVENT):
            length = sizeof(ss)
            n = recvfrom(self.fd, loop.buf, size, 0, <sockaddr *>&ss, &length)
            if n < 0:
                if errno == EINTR:
                    continue
                return 0
            try:
                self.handler(sockaddr_to_py(<sockaddr *>&ss, length),
                             PyBytes_FromStringAndSize(loop.buf, n))
            except Exception as e:
                loop.report(f"udp handler {self.handler!r}", e)
            if self.fd < 0:
                return 0
        return 0

    def udp(self, address, data):
        """Send a datagram from this listener's own address (a reply).

        ``udp(address, data)`` of the implementation sends from a socket of
        its own, so a peer that checks where replies come from needs this.
        """
        if self.sender is None:
            raise ValueError("this UDP listener has no socket to send from")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"udp() expects bytes-like data, got {type(data).__name__}")
        self.sender.sendto(data, address)

    def close(self):
        """Stop receiving; a Unix socket's file is removed."""
        if self.sender is not None:
            sender, self.sender = self.sender, None
            sender.close()
        if self.unix_path is not None:
            path, self.unix_path = self.unix_path, None
            try:
                os.unlink(path)
            except OSError:
                pass
        self.loop.here_or_soon(self._close, _NOARG)

    def _close(self):
        self.loop.detach(self)
