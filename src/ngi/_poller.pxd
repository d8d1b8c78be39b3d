# The readiness poller and the waker (declarations; code in _poller.pxi).
#
# Included by _core.pxd.  Only the loop thread calls a poller, except
# Waker.wake(), which any thread may call.


cdef class Poller:
    """What the loop needs from a readiness poller (epoll now, kqueue later).

    `add`/`modify`/`remove` take a 64-bit token that `wait` hands back
    with each event (`token_at`, `events_at`); events are in epoll's
    vocabulary (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR,
    EPOLLET), which another poller maps to its own.
    """
    cdef int add(self, int fd, uint32_t events, uint64_t token) except -1
    cdef int modify(self, int fd, uint32_t events, uint64_t token) except -1
    cdef int remove(self, int fd) except -1
    cdef int wait(self, int timeout_ms) except -1
    cdef uint64_t token_at(self, int i) noexcept
    cdef uint32_t events_at(self, int i) noexcept
    cdef int close_poller(self) except -1


cdef class EpollPoller(Poller):
    cdef int epfd                # -1 once closed
    cdef int capacity            # events one wait can return
    cdef epoll_event *events
    cdef int ctl(self, int op, int fd, uint32_t events, uint64_t token) except -1


cdef class Waker:
    """An eventfd: any thread sets it, the loop's poller sees it readable."""
    cdef int fd                  # -1 once closed
    cdef int drain(self) except -1
