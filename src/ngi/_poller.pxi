# The readiness poller and the waker.  Included by _core.pyx.
#
# The pitfalls of epoll that shape the rest of the core:
#
# * Edge-triggered registration (EPOLLET) reports a readiness change once.
#   A socket not read (or written) until EAGAIN gets no second event, so
#   the loop keeps its own list of connections that may still have work
#   (Loop.ready).  Level-triggered registration would re-report every
#   ready socket on every pass instead.
# * A descriptor closed while still registered stays in the epoll set if
#   it was duplicated (fork, dup): remove it before closing it.  The core
#   always does (Loop.detach).
# * An event may name a watcher closed earlier in the same batch: tokens
#   are pointers, so the loop keeps such watchers alive until the pass ends
#   (Loop.graveyard) and skips those whose fd is -1.
# * The epoll descriptor is shared with a forked child: a child must make
#   its own loop (ngi.net does, at fork).


cdef class Poller:
    """The loop's view of readiness polling; see _poller.pxd."""

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
    """epoll with a preallocated event array; each registration says itself
    whether it is edge-triggered (EPOLLET) or level-triggered."""

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
