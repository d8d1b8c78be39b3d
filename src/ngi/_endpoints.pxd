# Listeners, connectors and UDP endpoints (declarations; code in
# _endpoints.pxi).  Included by _core.pxd.  They are level-triggered: few,
# and not on the hot path.


cdef class Listener(Watcher):
    # Set before the listener is shared, then read-only.
    cdef object server
    cdef bint nodelay
    cdef readonly object address
    cdef readonly object unix_path  # the socket file its close removes, or None
    cdef object adopt               # adopt(fd) takes each accept instead, or None
    cdef object ssl_context         # TLS: the server's ssl.SSLContext, or None
    cdef double handshake_timeout, shutdown_timeout
    # Any thread (atomic).
    cdef int close_asked            # close() was called
    # Loop thread only.
    cdef set conns                  # the connections it accepted, still open
    cdef object drained             # the drain handler of close(handler)
    cdef bint accepting
    cdef bint starved               # accept ran out of descriptors; resting

    cdef int accept_some(self) except -1
    cdef int forget(self, Connection conn) except -1
    cdef int stop_all(self) except -1
    cdef int stop_accepting(self, object handler) except -1


cdef class Connector(Watcher):
    # Loop thread only, once shared.
    cdef object handler
    cdef bint nodelay
    cdef object ssl_context         # TLS: the client's ssl.SSLContext, or None
    cdef object server_hostname
    cdef double handshake_timeout, shutdown_timeout


cdef class UDPListener(Watcher):
    # Set before the listener is shared, then read-only.
    cdef object handler
    cdef Py_ssize_t buffer_size
    cdef readonly object address
    cdef readonly object unix_path  # the socket file its close removes, or None
    cdef readonly object sender     # a socket on the same port, for replies
    # Any thread (atomic).
    cdef int close_asked            # close() was called
