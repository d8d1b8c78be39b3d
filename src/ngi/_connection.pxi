# The stream connection.  Included by _core.pyx; declarations, states and
# flags in _connection.pxd.


cdef int keep_peer(Connection c, sockaddr *sa, socklen_t length) except -1:
    """Keep a peer's address in the connection (before it is shared): raw
    if it fits (IP does), else as the Python object."""
    if 0 < length <= sizeof(c.peer_raw):
        memcpy(c.peer_raw, sa, length)
        c.peer_len = <unsigned char>length
    else:
        c.peer = sockaddr_to_py(sa, length)
    return 0


cdef Connection new_connection(Loop loop, int fd, bint nodelay):
    """A Connection owning `fd`; the caller counts and registers it."""
    cdef Connection c = Connection.__new__(Connection)
    c.fd = fd
    c.loop = loop
    ngi_socket_setup(fd)
    if nodelay:
        set_nodelay(fd)
    return c


cdef int log_close(Connection c, object reason) except -1:
    """At DEBUG, log a connection's close and why (`lose`'s `reason`, or
    what the state says when it is None); one check when DEBUG is off."""
    logger = _server_log if c.control is not None else _client_log
    if not logger.isEnabledFor(DEBUG):
        return 0
    if reason is None:
        if atomic_load_int(&c.close_asked):
            reason = "closed by the application"
        elif c.state == OPEN:
            reason = "dropped after a failure"
        else:
            reason = "closed"  # the peer's EOF, and the queue was sent since
    logger.debug("connection from %r closed: %s", c.peer_address, reason)
    return 0


@cython.final
cdef class Connection(Watcher):
    """A connected stream socket: NGI's `IConnection` over the core.

    Its life is `state` (OPEN, FLUSHING, LINGERING, CLOSED), changed only
    by three transition methods, on the loop thread: `begin_close`,
    `send_fin` and `lose` (`discard_input`, which reads while LINGERING,
    ends it through `lose`).

    ========= ============================ =========== ========= ========= ========= ==============
    from      event                        method      to        sent      dropped   handle_close
    ========= ============================ =========== ========= ========= ========= ==============
    OPEN      the application's close()    begin_close FLUSHING  the queue           no
    OPEN      the peer's EOF, nothing      lose        CLOSED                        ``'closed'``
              queued
    OPEN      the peer's EOF, data queued  begin_close FLUSHING  the queue           ``'closed'``
    FLUSHING  the queue is sent            send_fin    LINGERING our FIN             no
                                                       or CLOSED
    LINGERING the peer's EOF, or it has    lose        CLOSED              input     no
              acknowledged everything, or                                  read
              an error, or LINGER_SECONDS
    OPEN      a send or recv error, the    lose        CLOSED              the queue the error,
              handler raised, or the                                                 ``'stopped'``
              listener stopped it
    FLUSHING  a send error                 lose        CLOSED              the queue no
    any       abort()                      lose        CLOSED              the queue no
    ========= ============================ =========== ========= ========= ========= ==============

    `send_fin` goes to CLOSED at once, without lingering, when nothing is
    at risk (`at_risk`): the usual case.  `handle_close` is called only on
    leaving OPEN while the application has not asked for a close
    (`app_open`), so it comes at most once and never after the
    application's own `close()` or `abort()`; from any other thread those
    set `close_asked` at once and queue the transition for the loop.
    Leaving OPEN also ends input and callbacks: nothing reaches the
    handler afterwards but that one `handle_close`.
    """

    def __cinit__(self):
        self.high = DEFAULT_HIGH
        self.low = DEFAULT_LOW

    def __repr__(self):
        return (f"<ngi connection fd={self.fd} "
                f"{STATE_NAMES[atomic_load_int(&self.state)]}>")

    def __bool__(self):
        return self.app_open()

    cdef inline bint app_open(self) noexcept:
        """Open for the application: OPEN, and no close asked for."""
        return (atomic_load_int(&self.state) == OPEN
                and not atomic_load_int(&self.close_asked))

    cdef inline void set_state(self, int state) noexcept:
        atomic_store_int(&self.state, state)

    @property
    def peer_address(self):
        """The peer's address, as getpeername() gave it; kept after close."""
        if self.peer_len:
            return sockaddr_to_py(<sockaddr *>self.peer_raw, self.peer_len)
        return self.peer

    cdef int perform(self, int op, object arg) except -1:
        """An operation queued by another thread, a timer, or here_or_soon."""
        if op == OP_WRITE:
            atomic_add(&self.transit, -PyBytes_GET_SIZE(<bytes>arg))
            if self.state == CLOSED:
                return 0
            if self.tls is not None:
                return self.tls.write(self, <bytes>arg)
            if self.queue is None:
                return self.send_now(<bytes>arg)
            return self.enqueue(arg)
        if op == OP_WRITEV:
            total = sum([PyBytes_GET_SIZE(<bytes>b) for b in <list>arg])
            atomic_add(&self.transit, -total)
            if self.state != CLOSED:
                self.write_parts(<list>arg, total)
            return 0
        if op == OP_WRITELINES:
            if self.state != CLOSED:
                self.enqueue(arg)
        elif op == OP_SET_HANDLER:
            self.handler = arg
            self.on_input = arg.handle_input
            framer = getattr(arg, "_framer", None)
            if type(framer) is Framer and getattr(arg, "connection", None) is self:
                self.framer = <Framer>framer
                self.framed = arg
            else:
                self.framer = None
                self.framed = None
            if self.flags & F_MISSED:
                self.mark_ready()  # input arrived while nobody read
        elif op == OP_CHECK_LIMITS:
            self.check_limits()
        elif op == OP_RESUME_READING:
            if self.flags & F_MISSED:
                self.mark_ready()  # what arrived meanwhile makes no new edge
        elif op == OP_CLOSE:
            if self.state == OPEN:
                self.begin_close(None)
        elif op == OP_ABORT:
            self.lose(None)
        elif op == OP_STOP:
            self.lose("stopped")
        elif op == OP_LINGER_OVER:
            if self.state == LINGERING:
                self.lose(None)
        elif op == OP_SERVE:
            if self.state != CLOSED:
                serve_connection(arg, self)
        elif op == OP_START_TLS:
            begin_tls(self, arg[0], arg[1], arg[2], arg[3], arg[4], arg[5],
                      arg[6])
        elif op == OP_TLS_TIMEOUT:
            if self.tls is not None and self.tls.phase == TLS_HANDSHAKING:
                self.tls.handshake_failed(
                    self, _tls.handshake_timed_out(self.tls.handshake_timeout))
        else:
            Watcher.perform(self, op, arg)
        return 0

    # -- handler ------------------------------------------------------------

    def set_handler(self, handler):
        _rules.check_handler(handler, "set_handler()", "handle_input")
        self.loop.here_or_soon(OP_SET_HANDLER, self, handler)

    cdef int mark_ready(self) except -1:
        """Give this connection a turn in the loop's next pass."""
        if not (self.flags & F_READY) and self.state != CLOSED:
            self.flags |= F_READY
            self.loop.ready.append(self)
        return 0

    # -- reading ------------------------------------------------------------

    cdef int give(self, const char *data, Py_ssize_t n) except -1:
        """Hand input (in the loop's buffer) to the handler, inside its
        F_INSIDE call: as one `bytes`, or, when the handler is a framed
        adapter of this connection (``ngi.adapters``: it has `_framer`,
        `_handler` and `_refuse`), as records cut here straight from the
        buffer, each to the adapter's handler of the moment.

        What the records get is what `_Framed.handle_input` gives them on
        any other connection (ngi.testing): every record of this input,
        until the application closes; then the framer's limit, if broken.
        A handler's exception propagates to the caller.
        """
        cdef Framer framer = self.framer
        cdef Py_ssize_t pos = 0
        if framer is None:
            self.on_input(self, PyBytes_FromStringAndSize(data, n))
            return 0
        adapter = self.framed
        while True:
            record = framer.next_record(data, n, &pos)
            if record is None:
                break
            if not self.app_open():
                return 0  # the application closed it; it wants no more
            adapter._handler.handle_input(adapter, record)
        if framer.error is not None and self.app_open():
            adapter._refuse(framer.error)
        return 0

    cdef inline bint reading_now(self) noexcept:
        return (self.on_input is not None and self.state == OPEN
                and not atomic_load_int(&self.paused))

    cdef int on_event(self, uint32_t events) except -1:
        # Edge-triggered: an event, or a turn from Loop.ready, is the only
        # chance to act on it.  Errors surface in send or recv.
        if self.state == LINGERING:
            return self.discard_input()
        if events & (NGI_RDHUP | NGI_HUP | NGI_ERR):
            self.flags |= F_HUNGUP
        if self.tls is not None:
            return self.tls.on_event(self, events)
        if self.queue is not None:
            self.flush()
            if self.fd < 0:
                return 0
        if events & (NGI_IN | NGI_RDHUP | NGI_HUP | NGI_ERR):
            # Not on a writable-only edge: that recv would find nothing.
            if self.reading_now():
                self.read()
            else:
                self.flags |= F_MISSED  # no handler yet, or paused
        return 0

    cdef int on_error(self, uint32_t events, int err) except -1:
        # The reset or error itself: the recv that follows would only see
        # EOF once the poller has taken the error out of the socket.
        if self.state == LINGERING:
            return self.lose(None)
        return self.lose(os_error(err))

    cdef int read(self) except -1:
        cdef ssize_t n
        cdef int i
        cdef Loop loop = self.loop
        self.flags &= ~F_MISSED
        for i in range(READS_PER_EVENT):
            n = recv(self.fd, loop.buf, loop.bufsize, 0)
            if n > 0:
                self.flags |= F_INSIDE
                try:
                    self.give(loop.buf, n)
                except Exception as e:
                    self.flags &= ~(F_INSIDE | F_HELD)
                    self.handler_failed("handle_input", e)
                    return 0
                self.flags &= ~F_INSIDE
                if self.flags & F_HELD:
                    self.send_held()  # what the call wrote, together
                if self.tls is not None:
                    return self.mark_ready()  # start_tls(): what follows is TLS
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
                return self.lose(os_error(errno))
        return self.mark_ready()  # more may be waiting: read again next pass

    cdef int end_of_input(self) except -1:
        """The peer shut down its sending side.

        It may still be reading (a client that half-closes after its
        request), so what the application wrote before is still sent, as
        asyncio does: the handler hears `handle_close` now, and the socket
        closes once the queue drains, or at once when nothing is queued.
        """
        if self.queue is None:
            return self.lose("closed")
        return self.begin_close("closed")

    def pause_reading(self):
        """Stop delivering input until `resume_reading()`; idempotent.

        Takes effect at once, from any thread: the loop checks before each
        delivery.
        """
        atomic_store_int(&self.paused, 1)

    def resume_reading(self):
        if atomic_exchange_int(&self.paused, 0):
            self.loop.here_or_soon(OP_RESUME_READING, self, None)

    @property
    def reading(self):
        return not atomic_load_int(&self.paused) and self.app_open()

    # -- TLS ----------------------------------------------------------------

    @property
    def ssl_object(self):
        """The `ssl.SSLObject` of a TLS connection, None for plaintext."""
        return self.tls.sslobj if self.tls is not None else None

    @property
    def _tls_direct(self):
        """For tests: True if this TLS connection's data path calls OpenSSL
        directly, False if it goes through the ssl module, None: plaintext."""
        return None if self.tls is None else self.tls.session != NULL

    def start_tls(self, context, server_side=False, server_hostname=None, *,
                  handshake_timeout=_tls.HANDSHAKE_TIMEOUT,
                  shutdown_timeout=_tls.SHUTDOWN_TIMEOUT):
        """Upgrade this plaintext connection to TLS, in place (STARTTLS).

        What was written before leaves first, in plaintext; what is written
        after is encrypted once the handshake is done.  Input delivered
        before stays delivered; what arrives after the call is TLS.  The
        handler's `handle_handshake(connection)`, if it has one, hears of
        success; a failure is `handle_close(connection, error)`.
        """
        context, server_side, server_hostname = _tls.start_tls_args(
            context, server_side, server_hostname)
        hs, sd = _tls.timeouts(handshake_timeout, shutdown_timeout,
                               "start_tls()")
        if not self.app_open():
            raise ConnectionClosed("start_tls() on a closed connection")
        if self.tls is not None:
            raise ValueError("start_tls() on a connection that is already TLS")
        self.loop.here_or_soon(OP_START_TLS, self, (
            context, server_side, server_hostname, THEN_TELL, None, hs, sd))

    # -- writing ------------------------------------------------------------

    def write(self, data):
        cdef bytes b
        if type(data) is bytes:
            b = <bytes>data
        else:
            b = _rules.as_bytes(data, "write()")
        if not self.app_open():
            raise ConnectionClosed("write() on a closed connection")
        if PyBytes_GET_SIZE(b) == 0:
            return
        if self.loop.on_loop_thread():
            if self.tls is not None:
                self.tls.write(self, b)
            elif self.flags & F_INSIDE:
                self.hold(b)
            elif self.queue is None:
                self.send_now(b)
            else:
                self.enqueue(b)
        else:
            # Counted at once: write_buffer_size includes what is in transit.
            atomic_add(&self.transit, PyBytes_GET_SIZE(b))
            self.loop.submit(OP_WRITE, self, b)

    def writev(self, parts):
        """Write the bytes-like objects in `parts` as one write: in order,
        with no other write between them, from any thread, and in one
        sendmsg when the kernel takes them all.  For a header and a body
        that should not be joined into a new bytes first."""
        cdef list items = []
        cdef Py_ssize_t total = 0
        _rules.check_writelines(parts, "writev()")
        for part in parts:
            b = part if type(part) is bytes else _rules.as_bytes(part, "writev()")
            if PyBytes_GET_SIZE(b):
                items.append(b)
                total += PyBytes_GET_SIZE(b)
        if not self.app_open():
            raise ConnectionClosed("writev() on a closed connection")
        if not items:
            return
        if self.loop.on_loop_thread():
            self.write_parts(items, total)
        else:
            atomic_add(&self.transit, total)
            self.loop.submit(OP_WRITEV, self, items)

    cdef int write_parts(self, list parts, Py_ssize_t total) except -1:
        """writev() on the loop thread: `parts`, non-empty bytes, as one."""
        if self.tls is not None:
            for b in parts:
                self.tls.write(self, <bytes>b)
        elif self.flags & F_INSIDE:
            for b in parts:
                self.hold(<bytes>b)
        elif self.queue is None and self.held is None:
            # What send_now does for one: straight to the kernel, in one go.
            self.queue = parts
            self.head = self.offset = 0
            self.add_queued(total)
            self.flush()
            if self.queue is not None and self.queued > atomic_get(&self.high):
                self.check_limits()
        else:
            for b in parts:
                self.enqueue(b)
        return 0

    def writelines(self, data):
        _rules.check_writelines(data)
        iterator = iter(data)
        if not self.app_open():
            raise ConnectionClosed("writelines() on a closed connection")
        self.loop.here_or_soon(OP_WRITELINES, self, iterator)

    @property
    def write_buffer_size(self):
        """Bytes written and not yet handed to the kernel."""
        return atomic_get(&self.queued) + atomic_get(&self.transit)

    cdef inline void add_queued(self, Py_ssize_t delta) noexcept:
        # Only the loop thread writes `queued`; others read it.
        atomic_set(&self.queued, self.queued + delta)

    cdef int send_now(self, bytes data) except -1:
        """Send at once (nothing is queued); queue whatever the kernel refused."""
        cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
        cdef ssize_t n = send(self.fd, PyBytes_AS_STRING(data), size,
                              NGI_SEND_FLAGS)
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
        self.watch_writable(True)
        self.queue = [data]
        self.head = 0
        self.offset = n
        self.add_queued(size - n)
        if self.queued > atomic_get(&self.high):
            self.check_limits()
        return 0

    cdef int hold(self, bytes data) except -1:
        """A write inside handle_input: kept until the call returns, so
        that the call's writes leave in one system call.  The first is
        kept on its own (no list), and then sent as `send_now` would."""
        if self.queue is None:
            if self.held is None:
                self.held = data
            else:
                self.queue = [self.held, data]
                self.head = self.offset = 0
                self.held = None
        else:
            self.queue.append(data)
        self.flags |= F_HELD
        # Counted now; the marks are checked once the call's writes have
        # met the kernel (send_held), not for bytes it would take at once.
        # Past the high-water mark, what is held goes now, so that a call
        # writing a lot is told to pause while it writes, as before.
        self.add_queued(PyBytes_GET_SIZE(data))
        if self.queued > atomic_get(&self.high):
            self.send_held()
        return 0

    cdef int send_held(self) except -1:
        """After handle_input: send what it wrote."""
        cdef bytes data = self.held
        self.flags &= ~F_HELD
        if self.state == CLOSED or self.tls is not None:
            return 0  # (start_tls() took what was held: TLS sends the rest)
        if data is not None:  # one write, or one and a close()
            self.held = None
            self.add_queued(-PyBytes_GET_SIZE(data))
            self.send_now(data)
            if self.queue is None and self.state == FLUSHING:
                return self.send_fin()
        elif self.queue is not None:
            data = self.joined_held()
            if data is not None:  # small parts, joined: one plain send
                self.queue = None
                self.add_queued(-PyBytes_GET_SIZE(data))
                self.send_now(data)
                if self.queue is None and self.state == FLUSHING:
                    return self.send_fin()
            else:
                self.flush()
        if self.queued > atomic_get(&self.high) and self.state != CLOSED:
            self.check_limits()
        return 0

    cdef bytes joined_held(self):
        """The queue as one bytes, when it holds only what a handler call
        wrote (bytes, none sent yet) and no more than JOIN_HELD of it;
        else None."""
        cdef list queue = self.queue
        cdef Py_ssize_t i, total = 0, n = len(queue)
        cdef bytes out
        cdef char *p
        if self.head or self.offset or n > MAX_IOV:
            return None
        for i in range(n):
            item = queue[i]
            if type(item) is not bytes:
                return None
            total += PyBytes_GET_SIZE(<bytes>item)
            if total > JOIN_HELD:
                return None
        out = PyBytes_FromStringAndSize(NULL, total)
        p = PyBytes_AS_STRING(out)
        for i in range(n):
            item = queue[i]
            memcpy(p, PyBytes_AS_STRING(<bytes>item), PyBytes_GET_SIZE(<bytes>item))
            p += PyBytes_GET_SIZE(<bytes>item)
        return out

    cdef inline int watch_writable(self, bint on) except -1:
        """Where the poller watches writability only on demand (kqueue),
        watch it while data waits for the kernel; a no-op with epoll."""
        if NGI_WRITE_ON_DEMAND and self.fd >= 0 and on != ((self.mask & NGI_OUT) != 0):
            self.loop.set_interest(self, (self.mask | NGI_OUT) if on
                                   else (self.mask & ~NGI_OUT))
        return 0

    cdef int enqueue(self, object item) except -1:
        if self.queue is None:
            # Nothing was waiting for an edge: flush in the next pass.
            if self.held is None:
                self.queue = [item]
            else:  # after what handle_input wrote so far
                self.queue = [self.held, item]
                self.held = None
            self.head = 0
            self.offset = 0
            self.mark_ready()
        else:
            self.queue.append(item)
        if type(item) is bytes:
            self.add_queued(PyBytes_GET_SIZE(<bytes>item))
            if self.queued > atomic_get(&self.high):
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
                if self.state == CLOSED:
                    return 0
                continue
            memset(&msg, 0, sizeof(msg))
            msg.msg_iov = iov
            msg.msg_iovlen = cnt
            n = sendmsg(self.fd, &msg, NGI_SEND_FLAGS)
            if n < 0:
                if errno == EINTR:
                    continue
                if errno == EAGAIN:
                    blocked = True
                    break
                return self.lose(os_error(errno))
            self.add_queued(-n)
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
            self.watch_writable(False)
            if self.state == FLUSHING:
                return self.send_fin()
        elif blocked:
            self.watch_writable(True)
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
        cdef Py_ssize_t budget = min(max(atomic_get(&self.high), 1), PULL_BYTES)
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
                    item = _rules.as_bytes(item, "writelines()", "items")
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
        self.add_queued(total)
        if error is not None:
            self.writelines_failed(error)
        elif self.queued > atomic_get(&self.high):
            self.check_limits()
        return 0

    # -- flow control -------------------------------------------------------

    def set_write_limits(self, high=None, low=None):
        """Set the write buffer's marks (asyncio's rules and defaults)."""
        high, low = _rules.write_limits(high, low)
        # Each mark is written atomically; the loop re-checks both after.
        atomic_set(&self.high, high)
        atomic_set(&self.low, low)
        self.loop.here_or_soon(OP_CHECK_LIMITS, self, None)

    def get_write_limits(self):
        """(high, low): the marks in force."""
        return (atomic_get(&self.high), atomic_get(&self.low))

    cdef int check_limits(self) except -1:
        """Tell the handler when the buffer crosses a mark, once a crossing."""
        cdef str name
        if not self.app_open():
            return 0  # closed for the application: no more callbacks
        if self.queued > atomic_get(&self.high):
            if self.flags & F_WPAUSED:
                return 0
            self.flags |= F_WPAUSED
            name = "handle_pause_writing"
        elif self.queued <= atomic_get(&self.low) and self.flags & F_WPAUSED:
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

    # -- telling the application --------------------------------------------

    cdef int tell_closed(self, object reason) except -1:
        if self.handler is not None:
            on_close = getattr(self.handler, "handle_close", None)
            if on_close is not None:
                try:
                    on_close(self, reason)
                except Exception as e:
                    self.loop.report("handle_close", e)
        return 0

    cdef int handler_failed(self, str what, object exc) except -1:
        self.loop.report(what, exc)
        return self.lose(exc)

    cdef int writelines_failed(self, object error) except -1:
        """Report a writelines failure to the handler's handle_exception."""
        on_exception = getattr(self.handler, "handle_exception", None)
        if on_exception is None:
            return self.handler_failed("writelines", error)
        try:
            on_exception(self, error)
        except Exception as e:
            self.handler_failed("handle_exception", e)
        return 0

    # -- closing: the transitions -------------------------------------------

    def close(self):
        """Close once everything written is sent; no handle_close follows."""
        if not self.app_open():
            return
        # Seen at once by every thread; the state changes on the loop thread.
        atomic_store_int(&self.close_asked, 1)
        self.loop.here_or_soon(OP_CLOSE, self, None)

    def abort(self):
        """Close now, dropping what is not yet sent; no handle_close follows.

        For a peer that stopped reading: its queue is freed at once.
        """
        if atomic_load_int(&self.state) == CLOSED:
            return
        atomic_store_int(&self.close_asked, 1)
        self.loop.here_or_soon(OP_ABORT, self, None)

    cdef int begin_close(self, object reason) except -1:
        """OPEN -> FLUSHING: input ends and writes raise; the queue is still
        sent.  `reason`, if the close came from the peer, goes to the
        handler; None for the application's own close."""
        cdef bint tell = reason is not None and self.app_open()
        self.set_state(FLUSHING)
        if tell:
            self.tell_closed(reason)
        if (self.queue is None and self.held is None and self.state == FLUSHING
                and (self.tls is None or self.tls.out is None)):
            return self.send_fin()
        return 0

    cdef int send_fin(self) except -1:
        """FLUSHING -> LINGERING or CLOSED: everything written is in the
        kernel's hands, so send our FIN; linger if a reset could still
        destroy it.  TLS sends its close_notify first, and lingers for the
        peer's (`shutdown_timeout` at most)."""
        cdef double bound = LINGER_SECONDS
        if self.tls is not None:
            if not self.tls.notify(self):
                return 0  # flushing the close_notify: this comes back after
            if self.state != FLUSHING:
                return 0
        shutdown(self.fd, SHUT_WR)
        if self.tls is not None and self.tls.awaits_notify():
            bound = self.tls.shutdown_timeout
        elif not self.at_risk():
            return self.lose(None)
        self.set_state(LINGERING)
        self.watch_writable(True)  # the peer's acknowledgements end it
        self.forget_control()  # the listener is done with it
        self.discard_input()
        if self.state == LINGERING:
            # The open socket keeps the loop running; this only bounds it.
            self.loop.push_timer(self.loop.new_timer(
                bound, OP_LINGER_OVER, self, None))
        return 0

    cdef bint at_risk(self) noexcept:
        """Would closing now let a TCP reset destroy what we sent?

        Closing a socket with unread input, or one that input reaches
        later, makes the kernel answer with a reset, and a reset throws
        away what was still on its way: a reply to a client that is still
        uploading would be lost (asyncio loses it).  Nothing is at risk
        once the peer has acknowledged all we sent and no input waits, nor
        on Unix sockets, where the data is already in the peer's queue.
        Where the platform cannot count unacknowledged bytes
        (`ngi_unsent` is -1), only unread input puts a reply at risk.
        """
        cdef sockaddr_storage ss
        cdef socklen_t length = sizeof(ss)
        cdef int unsent = ngi_unsent(self.fd)
        if unsent <= 0 and ngi_unread(self.fd) == 0:
            return False
        if getsockname(self.fd, <sockaddr *>&ss, &length) == 0:
            return ss.ss_family == AF_INET or ss.ss_family == AF_INET6
        return True

    cdef int discard_input(self) except -1:
        """LINGERING: drop input; -> CLOSED at the peer's EOF, an error, or
        once the peer has acknowledged everything."""
        cdef ssize_t n
        cdef int i
        cdef bint notify = self.tls is not None and self.tls.awaits_notify()
        for i in range(READS_PER_EVENT):
            n = recv(self.fd, self.loop.buf, self.loop.bufsize, 0)
            if n > 0 and notify and self.tls.close_notified(self, n):
                return self.lose(None)  # the peer's close_notify: done
            if n > 0 or (n < 0 and errno == EINTR):
                continue
            if n < 0 and errno == EAGAIN:
                if notify:
                    return 0  # TLS waits for the close_notify itself
                if ngi_unsent(self.fd) == 0:
                    return self.lose(None)  # the peer has all of it
                return 0
            return self.lose(None)  # the peer's EOF, or an error: done
        return self.mark_ready()

    cdef int lose(self, object reason) except -1:
        """Any state -> CLOSED: close the socket now, dropping anything
        queued; the handler hears `reason` if it came from outside while
        the connection was open for it (None: tell nobody)."""
        cdef bint tell = reason is not None and self.app_open()
        if self.state == CLOSED:
            return 0
        log_close(self, reason)
        self.set_state(CLOSED)
        self.flags &= ~F_WPAUSED
        self.queue = None
        self.held = None
        if self.tls is not None:
            self.tls.cancel_timer(self)
            self.tls.out = None
            self.tls.target = None
        self.add_queued(-self.queued)
        self.loop.detach(self)
        self.forget_control()
        if tell:
            self.tell_closed(reason)
        return 0

    cdef int forget_control(self) except -1:
        """Tell the listener this connection is gone (again is harmless)."""
        if self.control is not None:
            ctrl = <Listener>self.control
            if ctrl.loop is self.loop:
                ctrl.forget(self)
            else:  # a thready connection: its listener lives on another loop
                ctrl.loop.submit(OP_FORGET, ctrl, self)
        return 0
