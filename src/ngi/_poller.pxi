# The readiness poller and the waker.  Included by _core.pyx; the platform
# code, and kqueue's pitfalls, are in _platform.h.
#
# The pitfalls of readiness polling that shape the rest of the core:
#
# * Edge-triggered registration (EPOLLET, kqueue's EV_CLEAR) reports a
#   readiness change once.  A socket not read (or written) until EAGAIN
#   gets no second event, so the loop keeps its own list of connections
#   that may still have work (Loop.ready).  Level-triggered registration
#   would re-report every ready socket on every pass instead.
# * A descriptor closed while still registered stays in an epoll set if it
#   was duplicated (fork, dup), and leaves stale state in libkqueue: remove
#   it before closing it.  The core always does (Loop.detach).
# * An event may name a watcher closed earlier in the same batch: tokens
#   are pointers, so the loop keeps such watchers alive until the pass ends
#   (Loop.graveyard) and skips those whose fd is -1.
# * The poller's descriptor is shared with a forked child: a child must
#   make its own loop (ngi.net does, at fork).

POLLER = NGI_POLLER_NAME.decode("ascii")


cdef class Poller:
    """The platform's readiness poller, with a preallocated event array;
    each registration says itself whether it is edge-triggered (NGI_ET) or
    level-triggered."""

    def __cinit__(self, int capacity=1024):
        self.p.fd = -1
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if ngi_poller_open(&self.p, capacity) < 0:
            err = errno
            ngi_poller_free(&self.p)
            if err == ENOMEM:
                raise MemoryError()
            raise os_error(err)

    def __dealloc__(self):
        ngi_poller_free(&self.p)

    cdef int check_open(self) except -1:
        if self.p.fd < 0:
            raise ValueError("the poller is closed")
        return 0

    cdef int add(self, int fd, uint32_t events, uint64_t token) except -1:
        self.check_open()
        if ngi_poller_add(&self.p, fd, events, token) < 0:
            raise os_error(errno)
        return 0

    cdef int modify(self, int fd, uint32_t old, uint32_t events, uint64_t token) except -1:
        """Watch for `events` instead of `old` (NGI_UNKNOWN: not known)."""
        self.check_open()
        if ngi_poller_modify(&self.p, fd, old, events, token) < 0:
            raise os_error(errno)
        return 0

    cdef int remove(self, int fd) except -1:
        self.check_open()
        if ngi_poller_remove(&self.p, fd) < 0:
            raise os_error(errno)
        return 0

    cdef int wait(self, int timeout_ms) except -1:
        cdef int n
        self.check_open()
        with nogil:
            n = ngi_poller_wait(&self.p, timeout_ms)
        if n < 0:
            if errno == EINTR:
                return 0
            raise os_error(errno)
        return n

    cdef inline uint64_t token_at(self, int i) noexcept:
        return ngi_event_token(&self.p, i)

    cdef inline uint32_t events_at(self, int i) noexcept:
        return ngi_event_bits(&self.p, i)

    cdef inline int error_at(self, int i) noexcept:
        """The error the i-th event reports (kqueue), else 0."""
        return ngi_event_error(&self.p, i)

    cdef int close_poller(self) except -1:
        ngi_poller_close(&self.p)
        return 0

    # Python-level access, for tests and tools.

    def register(self, int fd, uint32_t events, token=None):
        """Watch `fd` for `events`; `poll` reports `token` (default: fd)."""
        self.add(fd, events, fd if token is None else token)

    def reregister(self, int fd, uint32_t events, token=None):
        self.modify(fd, NGI_UNKNOWN, events, fd if token is None else token)

    def unregister(self, int fd):
        self.remove(fd)

    def poll(self, timeout=None):
        """Wait up to `timeout` seconds (None: forever); [(token, events)]."""
        cdef int ms = -1 if timeout is None else max(0, <int>(timeout * 1000 + 0.999))
        cdef double end = monotonic() + ms / 1000.0
        cdef int n
        while True:
            n = self.wait(ms)  # 0 after a signal (EINTR) too
            if n or ms == 0:
                break
            PyErr_CheckSignals()  # a handler that raises ends the wait
            if ms > 0:
                ms = <int>((end - monotonic()) * 1000 + 0.999)
                if ms <= 0:
                    break
        return [(self.token_at(i), self.events_at(i)) for i in range(n)]

    def close(self):
        self.close_poller()

    def fileno(self):
        return self.p.fd


cdef class Waker:
    """Wakes a loop out of `Poller.wait`, from any thread.

    ``Waker(poller)`` registers itself with `poller` as token 0 (with
    kqueue, as a user event that needs no descriptor); ``Waker()`` alone is
    a descriptor (`fileno`) to register by hand.
    """

    def __cinit__(self, Poller poller=None):
        self.w.rfd = self.w.wfd = self.w.kq = -1
        if poller is not None:
            poller.check_open()
        if ngi_waker_open(&self.w, NULL if poller is None else &poller.p) < 0:
            raise os_error(errno)

    def __dealloc__(self):
        ngi_waker_close(&self.w)

    def fileno(self):
        """The descriptor a poller watches (-1 for a kqueue user event)."""
        return self.w.rfd

    cdef inline void signal(self) noexcept nogil:
        ngi_waker_wake(&self.w)

    def wake(self):
        """Set the waker; safe from any thread, never blocks."""
        if self.w.rfd < 0 and self.w.kq < 0:
            raise ValueError("the waker is closed")
        with nogil:
            self.signal()

    cdef int drain(self) except -1:
        return ngi_waker_drain(&self.w)

    def clear(self):
        """Reset the waker; True if it had been woken."""
        return bool(self.drain())

    def close(self):
        ngi_waker_close(&self.w)
