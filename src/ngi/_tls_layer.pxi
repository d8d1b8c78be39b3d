# TLS inside a stream connection.  Included by _core.pyx; declarations in
# _tls_layer.pxd.
#
# A TLS connection is a `Connection` with a `TLS` layer between its socket
# and its handler, over the `ssl` module's memory BIOs (what pip-installed
# wheels can carry: the interpreter's own OpenSSL):
#
# * The data path: `feed`, `decrypt`, `encrypt`, `drain` call OpenSSL
#   directly on the ssl module's objects (_openssl.h), or, where that is
#   not possible, the module's methods; the rest is the module's.
# * Input: `recv` lands in the loop's buffer, which `incoming.write` copies
#   into the SSL object; the records it decrypts are read back into the
#   same buffer, several at once, and handed over as one `bytes`.  A read
#   is tried only when `incoming.pending` says there is something to
#   decrypt, so a pass costs no `SSLWantReadError`, except when a record
#   arrives in pieces.  Every read leaves room for a whole record
#   (RECORD_BYTES), so none is left half read in the SSL object, and its
#   `pending()` need not be asked.
# * Output: the handler's writes wait, as plaintext, in the connection's
#   queue; after the call (or in the next pass, for writes from elsewhere)
#   they are encrypted together, small ones into one record, and leave in
#   one `send`.  `out` holds ciphertext the kernel has not taken yet;
#   `write_buffer_size` still counts the plaintext behind it (`batch`)
#   until it has all left.
# * Closing: `send_fin` first sends our close_notify, then the FIN, then
#   lingers for the peer's close_notify (or EOF), `shutdown_timeout` at
#   most.  A peer's close_notify is its EOF: `handle_close(c, 'closed')`;
#   an EOF without one is `handle_close(c, _tls.truncated())`.
# * The handshake: nothing reaches the application before it completes;
#   then `then` says who hears: the server callable, the connect handler,
#   or (start_tls) the handler's optional `handle_handshake`.  It is
#   bounded by `handshake_timeout`.

cdef Py_ssize_t SEAL_BYTES = 131072  # plaintext encrypted per round
cdef Py_ssize_t RECORD_BYTES = 16384  # writes up to this much share a record

cdef Py_ssize_t NOGIL_BYTES = 16384  # direct calls this big let other threads run

cdef object SSLSocketType = _ssl._SSLSocket
cdef object SSLWantReadError = ssl.SSLWantReadError
cdef object SSLZeroReturnError = ssl.SSLZeroReturnError
cdef object SSLEOFError = ssl.SSLEOFError
cdef object SSLError = ssl.SSLError
cdef object MemoryBIO = ssl.MemoryBIO


def _find_openssl():
    """True if the functions of _openssl.h were found in `_ssl`'s image."""
    path = getattr(_ssl, "__file__", None)  # None: built into the interpreter
    return path is not None and ngi_openssl_load(os.fsencode(path)) == 0


cdef bint openssl_found = _find_openssl()
cdef bint tls_direct = openssl_found and os.environ.get("NGI_TLS_DIRECT") != "0"


def tls_direct_calls(enable=None):
    """Whether new TLS connections call OpenSSL directly (True) or through
    the ssl module's methods (False: where OpenSSL cannot be found in the
    ssl module, or with NGI_TLS_DIRECT=0).  `enable` sets it, for tests
    of both paths; direct calls are only enabled where they were found."""
    global tls_direct
    if enable is not None:
        tls_direct = bool(enable) and openssl_found
    return tls_direct


cdef Py_ssize_t openssl_failed(void *session) except -2:
    """After a failed direct call: -1 if OpenSSL wants more input, 0 for
    the peer's close_notify; else raise the failure as the ssl module would."""
    cdef int kind = ngi_openssl.SSL_get_error(session, 0)
    cdef unsigned long code
    cdef char text[256]
    cdef const char *reason = NULL
    if kind == NGI_SSL_ERROR_WANT_READ:
        return -1
    if kind == NGI_SSL_ERROR_ZERO_RETURN:
        return 0
    text[0] = 0
    code = ngi_openssl.ERR_peek_last_error()
    if code:
        ngi_openssl.ERR_error_string_n(code, text, sizeof(text))
        reason = ngi_openssl.ERR_reason_error_string(code)
    ngi_openssl.ERR_clear_error()
    raise _tls.openssl_error(kind, text.decode("ascii", "replace"),
                             None if reason == NULL else
                             reason.decode("ascii", "replace"))


cdef int begin_tls(Connection c, object context, bint server_side,
                   object hostname, int then, object target,
                   double handshake_timeout, double shutdown_timeout) except -1:
    """Put a TLS layer on `c` and start the handshake (loop thread).

    Plaintext still queued leaves first, as it is: it was written before
    TLS was asked for (start_tls); a writelines iterator in the queue is
    drained at once for that.
    """
    cdef TLS t = TLS.__new__(TLS)
    cdef bytes raw = None
    if c.state == CLOSED:
        return 0
    if c.tls is not None:
        c.loop.report("start_tls()", ValueError(
            "start_tls() on a connection that is already TLS"))
        return 0
    t.incoming = MemoryBIO()
    t.outgoing = MemoryBIO()
    t.then = then
    t.target = target
    t.handshake_timeout = handshake_timeout
    t.shutdown_timeout = shutdown_timeout
    try:
        t.sslobj = context.wrap_bio(t.incoming, t.outgoing,
                                    server_side=server_side,
                                    server_hostname=hostname)
        if c.queue is not None or c.held is not None:
            raw = plaintext_left(c)
    except Exception as e:
        c.tls = t
        return t.handshake_failed(c, e)
    t.ssl = t.sslobj._sslobj
    if tls_direct and type(t.ssl) is SSLSocketType:
        t.session = ngi_openssl_session(t.ssl, t.incoming, t.outgoing,
                                        &t.bio_in, &t.bio_out)
    if t.session == NULL:
        t.bio_write = t.incoming.write
        t.ssl_read = t.ssl.read
        t.ssl_write = t.ssl.write
        t.bio_read = t.outgoing.read
    if raw is not None and PyBytes_GET_SIZE(raw):
        t.out = raw
        t.batch = PyBytes_GET_SIZE(raw)
    c.tls = t
    t.timer = c.loop.new_timer(handshake_timeout, OP_TLS_TIMEOUT, c, None)
    c.loop.push_timer(t.timer)  # the socket keeps the loop running
    return t.handshake(c)


cdef bytes plaintext_left(Connection c):
    """Empty the queue into one bytes (what is still counted as queued)."""
    cdef list parts = []
    cdef Py_ssize_t pulled = 0
    cdef object item, piece
    cdef bint first = True
    if c.held is not None:  # the queue is empty then
        parts.append(c.held)
        c.held = None
        return b"".join(parts)
    for item in c.queue[c.head:]:
        if type(item) is bytes:
            parts.append(item[c.offset:] if first else item)
        else:
            for piece in item:
                piece = _rules.as_bytes(piece, "writelines()", "items")
                parts.append(piece)
                pulled += PyBytes_GET_SIZE(piece)
        first = False
    c.queue = None
    c.head = c.offset = 0
    c.add_queued(pulled)
    return b"".join(parts)


@cython.final
cdef class TLS:
    """The TLS state of one connection (see the notes above)."""

    # -- the handshake ------------------------------------------------------

    cdef int handshake(self, Connection c) except -1:
        try:
            self.ssl.do_handshake()
        except SSLWantReadError:
            self.take_output()
            return self.flush(c)
        except Exception as e:  # SSLError, or a certificate check's error
            return self.handshake_failed(c, e)
        return self.handshake_done(c)

    cdef int handshake_done(self, Connection c) except -1:
        cdef object target = self.target
        self.phase = TLS_OPEN
        self.target = None
        self.cancel_timer(c)
        self.take_output()
        if self.has_input():
            # Application data that came with the handshake's last flight.
            self.held = True
            c.flags |= F_MISSED
        # What the callback writes leaves with the handshake's last bytes.
        c.flags |= F_INSIDE
        try:
            if self.then == THEN_SERVE:
                serve_connection(target, c)
            elif self.then == THEN_CONNECT:
                tell_connected(target, c)
            else:
                method = getattr(c.handler, "handle_handshake", None)
                if method is not None:
                    try:
                        method(c)
                    except Exception as e:
                        c.handler_failed("handle_handshake", e)
        finally:
            c.flags &= ~F_INSIDE
        if c.state != CLOSED:
            self.flush(c)
        return 0

    cdef int handshake_failed(self, Connection c, object error) except -1:
        """The handshake failed or timed out: tell whoever waited for it,
        and close, after one try at sending the alert that says why."""
        cdef object target = self.target
        if self.phase == TLS_FAILED or c.state == CLOSED:
            return 0
        self.phase = TLS_FAILED
        self.target = None
        self.cancel_timer(c)
        if self.outgoing is not None and self.has_output():
            self.take_output()
            send(c.fd, PyBytes_AS_STRING(self.out) + self.out_offset,
                 PyBytes_GET_SIZE(self.out) - self.out_offset, NGI_SEND_FLAGS)
        if self.then == THEN_SERVE:
            _tls.log_failed_handshake(_server_log, c.peer_address, error)
            return c.lose(None)
        if self.then == THEN_CONNECT:
            c.lose(None)
            try:
                target.failed_connect(error)
            except Exception as e:
                c.loop.report("failed_connect", e, _client_log)
            return 0
        return c.lose(error)

    cdef int cancel_timer(self, Connection c) except -1:
        cdef Timer t = self.timer
        if t is not None:
            self.timer = None
            if atomic_cas_int(&t.state, TIMER_PENDING, TIMER_CANCELLED):
                c.loop.cancel_timer(t)  # releases the connection at once
        return 0

    # -- input ----------------------------------------------------------------

    cdef int on_event(self, Connection c, uint32_t events) except -1:
        if self.out is not None or c.queue is not None:
            self.flush(c)
            if c.fd < 0:
                return 0
        if events & (NGI_IN | NGI_RDHUP | NGI_HUP | NGI_ERR):
            if self.phase == TLS_HANDSHAKING or c.reading_now():
                self.read(c)
            else:
                c.flags |= F_MISSED  # no handler yet, or paused
        return 0

    cdef int read(self, Connection c) except -1:
        cdef ssize_t n
        cdef int i
        cdef Loop loop = c.loop
        c.flags &= ~F_MISSED
        if self.held and self.phase == TLS_OPEN:
            self.held = False
            self.deliver(c, False)
            if not c.reading_now():
                return 0
        for i in range(READS_PER_EVENT):
            n = recv(c.fd, loop.buf, loop.bufsize, 0)
            if n > 0:
                self.feed(loop, n)
            elif n == 0:
                self.eof = True
                self.incoming.write_eof()
            else:
                if errno == EINTR:
                    continue
                if errno == EAGAIN:
                    return 0
                return c.lose(os_error(errno))
            if self.phase == TLS_HANDSHAKING:
                self.handshake(c)
                if self.phase == TLS_OPEN and c.reading_now():
                    self.held = False
                    self.deliver(c, False)
            elif self.phase == TLS_OPEN:
                self.deliver(c, n > 0)
            if c.state != OPEN or self.eof:
                return 0
            if self.phase == TLS_OPEN and not c.reading_now():
                c.flags |= F_MISSED  # maybe more: read when resumed
                return 0
            if n < loop.bufsize and not (c.flags & F_HUNGUP):
                return 0  # drained: more input makes a new edge
        return c.mark_ready()

    cdef int deliver(self, Connection c, bint fed) except -1:
        """Decrypt what the SSL object holds and hand it over, several
        records to one `handle_input`, for as long as the handler reads."""
        cdef Loop loop = c.loop
        cdef Py_ssize_t filled, got, room
        cdef object error = None
        cdef bint more = True
        while more and c.reading_now():
            filled = 0
            while filled < loop.bufsize:
                room = loop.bufsize - filled
                if room < RECORD_BYTES:
                    if filled:
                        break  # hand this over, then read on
                    if self.ssl.pending():  # a small buffer: part of a record left
                        pass
                    elif not (self.has_input() or self.eof):
                        more = False
                        break
                elif fed:
                    fed = False  # bytes were just fed: no need to ask
                elif not (self.has_input() or self.eof):
                    more = False
                    break
                try:
                    got = self.decrypt(loop, filled, room)
                except SSLEOFError:
                    error = _tls.truncated()
                    break
                except SSLError as e:
                    error = e
                    break
                if got < 0:  # a record not all here yet
                    more = False
                    break
                if got == 0:  # the peer's close_notify (the ssl module returns 0)
                    self.notify_seen = True
                    error = "closed"
                    break
                filled += got
            if filled:
                c.flags |= F_INSIDE
                try:
                    c.give(loop.buf, filled)
                except Exception as e:
                    c.flags &= ~F_INSIDE
                    return c.handler_failed("handle_input", e)
                c.flags &= ~F_INSIDE
            if error is not None:
                break
        else:
            if more:  # stopped reading with records maybe left: hold them
                self.held = True
                c.flags |= F_MISSED
        if error is not None and c.state == OPEN:
            if isinstance(error, SSLError) and not isinstance(error, SSLEOFError):
                return c.lose(error)  # a broken record: nothing more can be read
            c.begin_close(error)  # the peer's end, clean or not
        if c.state == CLOSED:
            return 0
        if c.queue is None and self.out is None:
            self.take_output()  # what reading wrote: a key update's answer
        if c.queue is not None or self.out is not None:
            self.flush(c)  # the replies of this pass, together
        return 0

    cdef bint close_notified(self, Connection c, Py_ssize_t n) except -1:
        """LINGERING: feed `n` bytes of the loop's buffer and drop what they
        decrypt to; True once the peer's close_notify (or an error) came."""
        cdef Loop loop = c.loop
        cdef Py_ssize_t got
        self.feed(loop, n)
        while self.has_input() or self.ssl.pending():
            try:
                got = self.decrypt(loop, 0, loop.bufsize)
            except SSLError:
                return True
            if got < 0:
                return False
            if got == 0:
                self.notify_seen = True
                return True
        return False

    # -- the data path: direct calls, or the ssl module's methods -----------

    cdef int feed(self, Loop loop, Py_ssize_t n) except -1:
        """Give OpenSSL `n` bytes of ciphertext from the loop's buffer."""
        if self.session == NULL:
            self.bio_write(loop.window.at(loop.buf, n))
        elif ngi_openssl.BIO_write(self.bio_in, loop.buf, <int>n) != n:
            raise MemoryError("TLS: no memory for the input")
        return 0

    cdef bint has_input(self) except -1:
        """Ciphertext waits to be decrypted (a whole record or not)."""
        if self.session == NULL:
            return self.incoming.pending != 0
        return ngi_openssl.BIO_ctrl_pending(self.bio_in) != 0

    cdef bint has_output(self) except -1:
        """Ciphertext for the peer waits to be taken."""
        if self.session == NULL:
            return self.outgoing.pending != 0
        return ngi_openssl.BIO_ctrl_pending(self.bio_out) != 0

    cdef Py_ssize_t decrypt(self, Loop loop, Py_ssize_t at, Py_ssize_t room) except -2:
        """Decrypt into the loop's buffer at `at`, `room` bytes at most:
        how many came, 0 for the peer's close_notify, -1 if no whole
        record is here; a broken record or an EOF raises (ssl.SSLError,
        ssl.SSLEOFError)."""
        cdef void *session = self.session
        cdef char *into = loop.buf + at
        cdef size_t size = room, got = 0
        cdef int ok
        if session == NULL:
            try:
                if at == 0 and room == loop.bufsize:
                    return self.ssl_read(loop.bufsize_obj, loop.window.at(into, room))
                return self.ssl_read(room, loop.window.at(into, room))
            except SSLWantReadError:
                return -1
            except SSLZeroReturnError:
                return 0
        openssl_fresh_errors()
        if ngi_openssl.BIO_ctrl_pending(self.bio_in) >= <size_t>NOGIL_BYTES:
            with nogil:
                ok = ngi_openssl.SSL_read_ex(session, into, size, &got)
        else:
            ok = ngi_openssl.SSL_read_ex(session, into, size, &got)
        if ok:
            return <Py_ssize_t>got
        return openssl_failed(session)

    cdef int encrypt(self, bytes data) except -1:
        """Encrypt `data` (all of it: the BIO takes any amount)."""
        cdef void *session = self.session
        cdef const char *start = PyBytes_AS_STRING(data)
        cdef size_t size = PyBytes_GET_SIZE(data), written = 0
        cdef int ok
        if session == NULL:
            self.ssl_write(data)
            return 0
        if size == 0:
            return 0
        openssl_fresh_errors()
        if size >= <size_t>NOGIL_BYTES:
            with nogil:
                ok = ngi_openssl.SSL_write_ex(session, start, size, &written)
        else:
            ok = ngi_openssl.SSL_write_ex(session, start, size, &written)
        if not ok or written != size:
            openssl_failed(session)
            raise SSLError("TLS: a write could not be encrypted")
        return 0

    cdef bytes drain(self):
        """All the ciphertext waiting for the peer, as one bytes."""
        cdef size_t size
        cdef bytes data
        if self.session == NULL:
            return self.bio_read()
        size = ngi_openssl.BIO_ctrl_pending(self.bio_out)
        data = PyBytes_FromStringAndSize(NULL, size)
        if size and ngi_openssl.BIO_read(self.bio_out, PyBytes_AS_STRING(data),
                                         <int>size) != <int>size:
            raise SSLError("TLS: the output could not be read")
        return data

    # -- output -------------------------------------------------------------

    cdef int write(self, Connection c, bytes data) except -1:
        """Queue plaintext; it is encrypted after the handler's call (when
        written inside one) or in the next pass, by `flush`."""
        if c.queue is None:
            c.queue = [data]
            c.head = c.offset = 0
        else:
            c.queue.append(data)
        c.add_queued(PyBytes_GET_SIZE(data))
        if not (c.flags & F_INSIDE):
            c.mark_ready()
        elif c.queued > atomic_get(&c.high):
            self.flush(c)  # a call writing a lot: paused while it writes
        # Otherwise the marks are checked by the flush that follows in this
        # pass, once the kernel has taken what it will: checked here, a
        # burst the kernel takes at once would pause and resume the writer
        # for nothing.
        return 0

    cdef int flush(self, Connection c) except -1:
        """Send `out`, then encrypt and send the queue, a bounded number of
        rounds; the FIN follows once everything is out (FLUSHING)."""
        cdef ssize_t n
        cdef Py_ssize_t size
        cdef int rounds
        cdef bint blocked = False
        for rounds in range(FLUSH_ROUNDS):
            if self.out is not None:
                size = PyBytes_GET_SIZE(self.out) - self.out_offset
                n = send(c.fd, PyBytes_AS_STRING(self.out) + self.out_offset,
                         size, NGI_SEND_FLAGS)
                if n < 0:
                    if errno == EINTR:
                        continue
                    if errno == EAGAIN:
                        blocked = True
                        break
                    return c.lose(os_error(errno))
                if n < size:
                    self.out_offset += n
                    blocked = True
                    break
                self.out = None
                self.out_offset = 0
                if self.batch:
                    c.add_queued(-self.batch)
                    self.batch = 0
            if c.queue is None or self.phase != TLS_OPEN or self.notify_sent:
                break
            self.seal(c)
            if c.state == CLOSED:
                return 0
        if self.out is None and (c.queue is None or self.phase != TLS_OPEN):
            c.watch_writable(False)
            if c.state == FLUSHING and c.queue is None:
                return c.send_fin()
        elif blocked:
            c.watch_writable(True)
        if c.flags & F_WPAUSED or c.queued > atomic_get(&c.high):
            c.check_limits()
            if c.fd < 0:
                return 0
        if not blocked and (self.out is not None or
                            (c.queue is not None and self.phase == TLS_OPEN)):
            c.mark_ready()  # stopped at the per-pass bound
        return 0

    cdef int seal(self, Connection c) except -1:
        """Encrypt the next round of the queue into `out`: consecutive
        writes up to RECORD_BYTES share one record."""
        cdef list queue = c.queue
        cdef Py_ssize_t end = len(queue), start = c.head, i = c.head, total = 0
        cdef object item
        while i < end and total < SEAL_BYTES:
            item = queue[i]
            if type(item) is not bytes:
                break
            total += PyBytes_GET_SIZE(<bytes>item)
            i += 1
        if i == start:
            if start >= end:
                c.queue = None
                c.head = 0
                return 0
            return c.pull(queue[start])  # an iterator: its next round of items
        try:
            if i - start == 1:
                self.encrypt(<bytes>queue[start])
            elif total <= RECORD_BYTES:
                self.encrypt(b"".join(queue[start:i]))
            else:
                for item in queue[start:i]:
                    self.encrypt(<bytes>item)
        except SSLError as e:
            return c.lose(e)
        while start < i:
            queue[start] = None
            start += 1
        if i >= end:
            c.queue = None
            c.head = 0
        else:
            c.head = i
            if i >= 64 and i * 2 >= end:
                del queue[:i]
                c.head = 0
        self.batch += total
        # `out` is empty here (flush sends it first), and there is output.
        self.out = self.drain()
        self.out_offset = 0
        return 0

    cdef int take_output(self) except -1:
        """Move what the SSL object wrote for the peer into `out`."""
        cdef bytes data
        if not self.has_output():
            return 0
        data = self.drain()
        if self.out is None:
            self.out = data
        else:
            self.out = self.out[self.out_offset:] + data
        self.out_offset = 0
        return 0

    # -- closing --------------------------------------------------------------

    cdef bint notify(self, Connection c) except -1:
        """Before the FIN: send our close_notify; True once it is out (or
        there is no session to close)."""
        if self.phase == TLS_OPEN and not self.notify_sent:
            self.notify_sent = True
            try:
                self.ssl.shutdown()
            except SSLError:
                pass  # SSLWantReadError: the peer's close_notify is to come
            self.take_output()
            if self.out is not None:
                self.flush(c)  # calls send_fin again once it has left
                return False
        return self.out is None

    cdef inline bint awaits_notify(self) noexcept:
        """Lingering waits for the peer's close_notify (shutdown_timeout)."""
        return (self.phase == TLS_OPEN and self.notify_sent
                and not self.notify_seen and not self.eof)
