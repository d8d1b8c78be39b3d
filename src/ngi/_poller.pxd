# The readiness poller and the waker (declarations; code in _poller.pxi).
#
# Included by _core.pxd.  Only the loop thread calls a poller, except
# Waker.wake(), which any thread may call.


cdef class Poller:
    """The platform's readiness poller (POLLER: epoll or kqueue).

    `add`/`modify`/`remove` take a 64-bit token that `wait` hands back
    with each event (`token_at`, `events_at`); events are in the loop's
    vocabulary, epoll's bits (NGI_IN, NGI_OUT, NGI_RDHUP, NGI_HUP, NGI_ERR,
    NGI_ET), which _platform.h maps to kqueue's filters and flags.
    """
    cdef ngi_poller p            # p.fd is -1 once closed
    cdef int add(self, int fd, uint32_t events, uint64_t token) except -1
    cdef int modify(self, int fd, uint32_t old, uint32_t events, uint64_t token) except -1
    cdef int remove(self, int fd) except -1
    cdef int wait(self, int timeout_ms) except -1
    cdef inline uint64_t token_at(self, int i) noexcept
    cdef inline uint32_t events_at(self, int i) noexcept
    cdef inline int error_at(self, int i) noexcept
    cdef int close_poller(self) except -1
    cdef int check_open(self) except -1


cdef class Waker:
    """Any thread sets it; the loop's poller sees token 0 (an eventfd, a
    kqueue user event, or a pipe)."""
    cdef ngi_waker w
    cdef inline void signal(self) noexcept nogil
    cdef int drain(self) except -1
