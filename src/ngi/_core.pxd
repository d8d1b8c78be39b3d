# Declarations of ngi's Cython core.  The implementation and the reasons
# behind each choice are in _core.pyx.

from libc.stdint cimport uint32_t, uint64_t
from cpython.pythread cimport PyThread_type_lock


cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        void *ptr
        int fd
        uint32_t u32
        uint64_t u64

    cdef struct epoll_event:
        uint32_t events
        epoll_data_t data


cdef class Poller:
    """What the loop needs from a readiness poller (epoll now, kqueue later)."""
    cdef int add(self, int fd, uint32_t events, uint64_t token) except -1
    cdef int modify(self, int fd, uint32_t events, uint64_t token) except -1
    cdef int remove(self, int fd) except -1
    cdef int wait(self, int timeout_ms) except -1
    cdef uint64_t token_at(self, int i) noexcept
    cdef uint32_t events_at(self, int i) noexcept
    cdef int close_poller(self) except -1


cdef class EpollPoller(Poller):
    cdef int epfd
    cdef int capacity
    cdef epoll_event *events
    cdef int ctl(self, int op, int fd, uint32_t events, uint64_t token) except -1


cdef class Waker:
    cdef int fd
    cdef int drain(self) except -1


cdef class Watcher:
    """Something registered with the loop's poller: a socket and its role."""
    cdef int fd
    cdef uint32_t mask
    cdef Loop loop
    cdef int on_event(self, uint32_t events) except -1


cdef class Timer:
    cdef readonly double when
    cdef object func
    cdef tuple args
    cdef readonly bint cancelled
    cdef bint counted
    cdef Loop loop


cdef class Loop:
    cdef Poller poller
    cdef Waker waker
    cdef PyThread_type_lock lock
    cdef list pending           # cross-thread calls, (func, arg) pairs
    cdef list ready             # connections that may have work without an edge
    cdef bint wake_pending
    cdef long thread_id         # ident of the thread running the loop, or 0
    cdef readonly Py_ssize_t active
    cdef set watchers           # registered watchers, kept alive by the loop
    cdef list graveyard         # watchers removed during this pass
    cdef list timers            # heap of (when, seq, Timer)
    cdef unsigned long timer_seq
    cdef char *buf
    cdef Py_ssize_t bufsize
    cdef public bint propagate  # Inline mode: handler errors leave run()
    cdef object failure
    cdef public object logger

    cdef int set_interest(self, Watcher w, uint32_t mask) except -1
    cdef int submit(self, object func, object arg) except -1
    cdef int here_or_soon(self, object func, object arg) except -1
    cdef int run_pending(self) except -1
    cdef int run_timers(self) except -1
    cdef Timer unref_timer(self, double delay, object func)
    cdef Timer new_timer(self, double delay, object func, tuple args)
    cdef int push_timer(self, Timer t) except -1
    cdef int run_ready(self) except -1
    cdef int report(self, str what, object exc) except -1
    cdef int detach(self, Watcher w) except -1
    cdef inline bint on_loop_thread(self) noexcept


cdef class Connection(Watcher):
    cdef object handler
    cdef object on_input         # handler.handle_input, bound once
    cdef list queue              # None until data must wait
    cdef Py_ssize_t head         # index of the first unsent item in queue
    cdef Py_ssize_t offset       # bytes of queue[head] already sent
    cdef Py_ssize_t queued       # bytes accepted and not yet sent
    cdef Py_ssize_t high, low    # write-buffer marks
    cdef Py_ssize_t transit      # written from other threads, not yet queued
    cdef int close_asked         # close() or abort() was called (any thread)
    cdef int paused              # pause_reading() is in force (any thread)
    cdef unsigned int flags
    cdef object peer             # the peer's address, once asked for
    cdef char peer_raw[28]       # its raw sockaddr (sockaddr_in6 at most)
    cdef unsigned char peer_len
    cdef public object control

    cdef int send_now(self, bytes data) except -1
    cdef int enqueue(self, object item) except -1
    cdef int flush(self) except -1
    cdef int pull(self, object iterator) except -1
    cdef int read(self) except -1
    cdef int mark_ready(self) except -1
    cdef inline bint reading_now(self) noexcept
    cdef inline bint closed_for_writes(self) noexcept
    cdef int finish_close(self) except -1
    cdef bint at_risk(self) noexcept
    cdef int linger(self) except -1
    cdef int discard_input(self) except -1
    cdef int forget_control(self) except -1
    cdef int lost(self, object reason) except -1
    cdef int end_of_input(self) except -1
    cdef int tell_closed(self, object reason) except -1
    cdef int teardown(self) except -1
    cdef int check_limits(self) except -1
    cdef int handler_failed(self, str what, object exc) except -1


cdef class Listener(Watcher):
    cdef object server
    cdef set conns
    cdef object drained
    cdef bint accepting
    cdef bint starved            # accept ran out of descriptors; resting
    cdef bint nodelay
    cdef public object address
    cdef public object unix_path
    cdef public object adopt

    cdef int accept_some(self) except -1
    cdef int forget(self, Connection conn) except -1


cdef class Connector(Watcher):
    cdef object handler
    cdef bint nodelay


cdef class UDPListener(Watcher):
    cdef object handler
    cdef Py_ssize_t buffer_size
    cdef public object address
    cdef public object unix_path
    cdef public object sender    # a socket on the same descriptor, for replies
