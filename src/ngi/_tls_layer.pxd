# TLS inside a stream connection (declarations; code in _tls_layer.pxi).
# Included by _core.pxd.  Everything here is loop thread only, except
# `sslobj`, set before the connection is shared (or by start_tls on the
# loop thread) and then read-only.


cdef enum TLSPhase:
    TLS_HANDSHAKING = 0  # nothing reaches the application yet
    TLS_OPEN = 1         # established: plaintext in and out
    TLS_FAILED = 2       # the handshake failed or timed out: closing


cdef enum TLSThen:
    # What the end of the handshake does.
    THEN_SERVE = 0       # an accepted connection: call the server callable
    THEN_CONNECT = 1     # connect(): the handler's connected() or failed_connect()
    THEN_TELL = 2        # start_tls(): handle_handshake(), or handle_close(error)


cdef class TLS:
    cdef readonly object sslobj   # the ssl.SSLObject the application sees
    cdef object ssl               # its C object (_ssl._SSLSocket): the hot path
    cdef object incoming          # ssl.MemoryBIO: ciphertext from the peer
    cdef object outgoing          # ssl.MemoryBIO: ciphertext for the peer
    # The data path: OpenSSL called directly on those objects (`session`,
    # `bio_in`, `bio_out`: see _openssl.h), or, when that is not possible
    # here, the ssl module's methods, bound once.
    cdef void *session            # the SSL *, or NULL: use the methods
    cdef void *bio_in             # incoming's BIO *
    cdef void *bio_out            # outgoing's BIO *
    cdef object bio_write         # incoming.write
    cdef object ssl_read          # ssl.read
    cdef object ssl_write         # ssl.write
    cdef object bio_read          # outgoing.read
    cdef bytes out                # bytes for the kernel as they are, or None
    cdef Py_ssize_t out_offset    # bytes of `out` already sent
    cdef Py_ssize_t batch         # plaintext bytes whose ciphertext is in `out`
    cdef int phase                # a TLSPhase
    cdef int then                 # a TLSThen
    cdef object target            # server callable or connect handler, until the handshake ends
    cdef Timer timer              # the handshake's bound, until it ends
    cdef double handshake_timeout
    cdef double shutdown_timeout
    cdef bint held                # input may wait in the SSL buffers (paused, or it came
                                  # with the handshake's last flight)
    cdef bint eof                 # the peer's EOF was fed to `incoming`
    cdef bint notify_sent         # our close_notify is in `out`, or sent
    cdef bint notify_seen         # the peer's close_notify has arrived

    # The handshake.
    cdef int handshake(self, Connection c) except -1
    cdef int handshake_done(self, Connection c) except -1
    cdef int handshake_failed(self, Connection c, object error) except -1
    cdef int cancel_timer(self, Connection c) except -1
    # Input.
    cdef int on_event(self, Connection c, uint32_t events) except -1
    cdef int read(self, Connection c) except -1
    cdef int deliver(self, Connection c, bint fed) except -1
    cdef bint close_notified(self, Connection c, Py_ssize_t n) except -1
    # The data path, either way.
    cdef int feed(self, Loop loop, Py_ssize_t n) except -1
    cdef bint has_input(self) except -1
    cdef bint has_output(self) except -1
    cdef Py_ssize_t decrypt(self, Loop loop, Py_ssize_t at, Py_ssize_t room) except -2
    cdef int encrypt(self, bytes data) except -1
    cdef bytes drain(self)
    # Output.
    cdef int write(self, Connection c, bytes data) except -1
    cdef int flush(self, Connection c) except -1
    cdef int seal(self, Connection c) except -1
    cdef int take_output(self) except -1
    # Closing.
    cdef bint notify(self, Connection c) except -1
    cdef inline bint awaits_notify(self) noexcept
