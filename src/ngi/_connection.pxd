# The stream connection (declarations; code and the state table in
# _connection.pxi).  Included by _core.pxd.


cdef enum State:
    # Connection.state: the connection's life.  The loop thread writes it
    # (in the transition methods only); any thread reads it (atomic).
    OPEN = 0         # reading and writing
    FLUSHING = 1     # closed for the application (its close(), or the peer's
                     # EOF): input ends, writes raise; the queue is still sent,
                     # then our FIN
    LINGERING = 2    # our FIN is sent: input is dropped until the peer's EOF
                     # or its acknowledgement of all we sent (LINGER_SECONDS
                     # at most), so that a reset cannot destroy the reply
    CLOSED = 3       # the socket is closed and the queue dropped


cdef enum:
    # Connection.flags: facts beside the state; loop thread only.
    F_WPAUSED = 1    # above the high-water mark: the handler was told to pause
    F_READY = 2      # in Loop.ready
    F_HUNGUP = 4     # a hang-up was reported: read on to EOF
    F_MISSED = 8     # an input edge came while not reading: read when resumed
    F_INSIDE = 16    # a handle_input call is under way: its writes are held
                     # and leave together once it returns (TLS: encrypted
                     # together)
    F_HELD = 32      # that call wrote something (in `held` or the queue)


cdef class TLS
cdef class Framer


cdef class Connection(Watcher):
    # Loop thread only.
    cdef object handler
    cdef object on_input          # handler.handle_input, bound once
    cdef Framer framer            # the handler's framer when the handler is a
    cdef object framed            # framed adapter of this connection (then
                                  # `framed`), else None: see `give`
    cdef list queue               # bytes and iterators waiting; None when empty
    cdef bytes held               # the one write of a handle_input call so far,
                                  # or None; set only while `queue` is None
    cdef Py_ssize_t head          # index of the first unsent item in queue
    cdef Py_ssize_t offset        # bytes of queue[head] already sent
    cdef readonly object control  # the Listener that accepted it, or None
    cdef TLS tls                  # its TLS layer, or None for plaintext
    # The loop thread writes, any thread reads (atomic).
    cdef Py_ssize_t queued        # bytes accepted and not yet sent
    cdef int state                # a State
    # Any thread (atomic).
    cdef int close_asked          # close() or abort() was called
    cdef int paused               # pause_reading() is in force
    cdef Py_ssize_t transit       # written from other threads, not yet queued
    cdef Py_ssize_t high, low     # the write-buffer marks
    # Set before the connection is shared, then read-only.
    cdef object peer              # the peer's address, when peer_raw cannot hold it
    cdef char peer_raw[28]        # its raw sockaddr (sockaddr_in6 at most)
    cdef unsigned char peer_len
    # Loop thread only (after the fields above, to pack with peer_len).
    cdef unsigned char flags

    # Reading.
    cdef int read(self) except -1
    cdef inline bint reading_now(self) noexcept
    cdef int mark_ready(self) except -1
    cdef int give(self, const char *data, Py_ssize_t n) except -1
    cdef int end_of_input(self) except -1
    # Writing.
    cdef int send_now(self, bytes data) except -1
    cdef int hold(self, bytes data) except -1
    cdef int write_parts(self, list parts, Py_ssize_t total) except -1
    cdef int send_held(self) except -1
    cdef bytes joined_held(self)
    cdef int enqueue(self, object item) except -1
    cdef int flush(self) except -1
    cdef int pull(self, object iterator) except -1
    cdef inline void add_queued(self, Py_ssize_t delta) noexcept
    cdef inline int watch_writable(self, bint on) except -1
    # Flow control.
    cdef int check_limits(self) except -1
    # Telling the application.
    cdef inline bint app_open(self) noexcept
    cdef int tell_closed(self, object reason) except -1
    cdef int handler_failed(self, str what, object exc) except -1
    cdef int writelines_failed(self, object error) except -1
    # Closing: the transitions of the state table, and what they use.
    cdef inline void set_state(self, int state) noexcept
    cdef int begin_close(self, object reason) except -1
    cdef int send_fin(self) except -1
    cdef int discard_input(self) except -1
    cdef int lose(self, object reason) except -1
    cdef bint at_risk(self) noexcept
    cdef int forget_control(self) except -1
