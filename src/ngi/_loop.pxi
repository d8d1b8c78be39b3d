# The loop: watchers, timers and calls from other threads.  Included by
# _core.pyx; declarations in _loop.pxd.
#
# Other threads only enqueue.  They append (op, receiver, arg) to a
# lock-protected list and wake the loop through the waker; the wake-up is
# written only when the list goes from "seen" to "unseen" (wake_pending),
# and the loop drains the waker before it takes the list, so no wake-up is
# lost.  On the loop thread the same operations run at once
# (here_or_soon).  Everything is performed by one method, Loop.perform, so
# a queued call names a core operation, not a Python closure.


@cython.final
cdef class Window:

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, self.start, self.length, 0, flags)

    def __releasebuffer__(self, Py_buffer *view):
        pass


cdef class Watcher:
    """A socket registered with a loop; `on_event` is its reaction to the
    poller, `perform` to the operations queued for it (Op)."""

    def __cinit__(self):
        self.fd = -1

    cdef int on_event(self, uint32_t events) except -1:
        return 0

    cdef int on_error(self, uint32_t events, int err) except -1:
        """An event that carries the socket's error (kqueue's EV_EOF or
        EV_ERROR), which a later call on the socket may no longer see."""
        return self.on_event(events)

    cdef int perform(self, int op, object arg) except -1:
        raise AssertionError(f"{type(self).__name__} cannot perform op {op}")

    def fileno(self):
        return self.fd


@cython.final
cdef class Timer:
    """A pending `call_later`; `cancel()` is safe from any thread."""

    def cancel(self):
        """Do not fire; a no-op once fired or cancelled."""
        if atomic_cas_int(&self.state, TIMER_PENDING, TIMER_CANCELLED):
            self.loop.here_or_soon(OP_CANCEL_TIMER, self, None)

    @property
    def cancelled(self):
        return atomic_load_int(&self.state) == TIMER_CANCELLED


cdef class Loop:
    """One event loop: a poller, a waker, cross-thread calls and timers.

    `run()` runs it in the calling thread until nothing is active (no open
    socket, no pending call or counted timer).  Everything else may be
    called from any thread.
    """

    def __cinit__(self, Py_ssize_t bufsize=262144, int capacity=1024):
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError()
        if bufsize < 1:
            raise ValueError(f"bufsize must be positive, got {bufsize}")
        self.buf = <char *>PyMem_Malloc(bufsize)
        if self.buf == NULL:
            raise MemoryError()
        self.bufsize = bufsize
        self.window = Window.__new__(Window)
        self.window.owner = self
        self.bufsize_obj = bufsize
        self.poller = Poller(capacity)
        self.waker = Waker(self.poller)
        self.pending = []
        self.ready = []
        self.watchers = set()
        self.graveyard = []
        self.timers = []
        self.logger = _log

    def __dealloc__(self):
        if self.lock != NULL:
            PyThread_free_lock(self.lock)
        PyMem_Free(self.buf)

    cdef inline bint on_loop_thread(self) noexcept:
        return atomic_get(&self.thread_id) == <Py_ssize_t>PyThread_get_thread_ident()

    @property
    def running(self):
        """True while some thread is inside `run()`."""
        return atomic_get(&self.thread_id) != 0

    @property
    def active(self):
        """Open watchers and pending counted timers."""
        return atomic_get(&self.active)

    def in_loop_thread(self):
        """True when called from the thread running the loop."""
        return self.on_loop_thread()

    def idle(self):
        """Nothing active and nothing pending: `run()` would return."""
        return self.is_idle()

    cdef inline bint is_idle(self) noexcept:
        return atomic_get(&self.active) == 0 and not atomic_load_int(&self.wake_pending)

    # -- calls from other threads ----------------------------------------

    cdef int submit(self, int op, object receiver, object arg) except -1:
        """Queue an operation for the loop thread and wake it if needed."""
        cdef bint wake
        cdef tuple item = (op, receiver, arg)
        lock_acquire(self.lock)
        self.pending.append(item)
        wake = not self.wake_pending
        atomic_store_int(&self.wake_pending, 1)
        PyThread_release_lock(self.lock)
        if wake:
            self.waker.signal()
        return 0

    cdef int here_or_soon(self, int op, object receiver, object arg) except -1:
        """Perform now on the loop thread, else queue it for there."""
        if not self.on_loop_thread():
            return self.submit(op, receiver, arg)
        return self.perform(op, receiver, arg)

    cdef int perform(self, int op, object receiver, object arg) except -1:
        """Run one operation (Op) on the loop thread."""
        cdef Timer t
        if op == OP_CALL:
            receiver(*<tuple>arg)
        elif op == OP_START_TIMER:
            self.start_timer(<Timer>receiver)
        elif op == OP_CANCEL_TIMER:
            self.cancel_timer(<Timer>receiver)
        elif op == OP_REGISTER:
            if (<Watcher>receiver).fd >= 0:
                self.set_interest(<Watcher>receiver, <uint32_t>arg)
        else:
            (<Watcher>receiver).perform(op, arg)
        return 0

    cdef int run_pending(self) except -1:
        cdef list batch
        cdef int op
        lock_acquire(self.lock)
        batch = self.pending
        self.pending = []
        atomic_store_int(&self.wake_pending, 0)
        PyThread_release_lock(self.lock)
        for op, receiver, arg in batch:
            try:
                self.perform(op, receiver, arg)
            except Exception as e:
                self.report(f"call {receiver!r}" if op == OP_CALL
                            else f"operation {op} on {receiver!r}", e)
        return 0

    def call_soon(self, func, *args):
        """Run `func(*args)` on the loop thread, after what is queued."""
        self.submit(OP_CALL, func, args)

    # -- timers -------------------------------------------------------------

    def call_later(self, delay, func, *args):
        """Call `func(*args)` on the loop thread after `delay` seconds."""
        if not callable(func):
            raise TypeError(f"call_later() expects a callable, got {func!r}")
        cdef Timer t = self.new_timer(
            _rules.seconds("call_later()", delay, negative_ok=True),
            OP_CALL, func, args)
        self.here_or_soon(OP_START_TIMER, t, None)
        return t

    cdef Timer new_timer(self, double delay, int op, object target, object arg):
        """A timer that will perform (op, target, arg); not started yet.

        `start_timer` makes it keep the loop running until it fires; one
        only pushed (`push_timer`) is the bound on something that keeps the
        loop running by itself.
        """
        cdef Timer t = Timer.__new__(Timer)
        t.when = monotonic() + max(delay, 0.0)
        t.op = op
        t.target = target
        t.arg = arg
        t.loop = self
        return t

    cdef int start_timer(self, Timer t) except -1:
        if atomic_load_int(&t.state) != TIMER_PENDING:
            return 0  # cancelled before it reached the loop
        t.counted = True
        self.count(1)
        return self.push_timer(t)

    cdef int push_timer(self, Timer t) except -1:
        self.timer_seq += 1
        heapq.heappush(self.timers, (t.when, self.timer_seq, t))
        return 0

    cdef int cancel_timer(self, Timer t) except -1:
        """Release a cancelled or fired timer (a cancelled one stays in the
        heap until its time: when those are most of a large heap, as with
        a TLS handshake bound for every connection, it is rebuilt without
        them, as asyncio does)."""
        if t.counted:
            t.counted = False
            self.count(-1)
        t.target = t.arg = None
        if atomic_load_int(&t.state) == TIMER_CANCELLED:
            self.dead_timers += 1
            if self.dead_timers > 1024 and self.dead_timers * 2 > len(self.timers):
                self.timers = [entry for entry in self.timers
                               if atomic_load_int(&(<Timer>entry[2]).state)
                               == TIMER_PENDING]
                heapq.heapify(self.timers)
                self.dead_timers = 0
        return 0

    cdef int run_timers(self) except -1:
        cdef Timer t
        cdef double now = monotonic()
        cdef int op
        while self.timers and self.timers[0][0] <= now:
            t = heapq.heappop(self.timers)[2]
            if not atomic_cas_int(&t.state, TIMER_PENDING, TIMER_FIRED):
                if self.dead_timers > 0:
                    self.dead_timers -= 1
                continue  # cancelled
            op, target, arg = t.op, t.target, t.arg
            self.cancel_timer(t)
            try:
                self.perform(op, target, arg)
            except Exception as e:
                self.report(f"timer {target!r}", e)
        return 0

    # -- watchers -----------------------------------------------------------

    cdef int count(self, Py_ssize_t delta) except -1:
        """Change how many things keep the loop running (any thread)."""
        atomic_add(&self.active, delta)
        return 0

    cdef int set_interest(self, Watcher w, uint32_t mask) except -1:
        if mask == w.mask or w.fd < 0:
            return 0
        if mask == 0:
            self.poller.remove(w.fd)
            self.watchers.discard(w)
            self.graveyard.append(w)
        elif w.mask == 0:
            self.poller.add(w.fd, mask, <uint64_t><void *>w)
            self.watchers.add(w)
        else:
            self.poller.modify(w.fd, w.mask, mask, <uint64_t><void *>w)
        w.mask = mask
        return 0

    cdef int hand_over(self, Watcher old, Watcher new, uint32_t mask) except -1:
        """Give `old`'s registered descriptor to `new`, watched for `mask`:
        one change of the registration instead of a removal and an add
        (which libkqueue does not survive for a descriptor it has just
        forgotten: later events of the new one are dropped as stale)."""
        self.poller.modify(old.fd, old.mask, mask, <uint64_t><void *>new)
        self.watchers.discard(old)
        self.graveyard.append(old)  # this pass's events may still name it
        new.fd, new.mask = old.fd, mask
        old.fd, old.mask = -1, 0
        self.watchers.add(new)
        return 0

    cdef int attach(self, Watcher w, uint32_t mask) except -1:
        """Take `w` on, from any thread: counted at once, so the loop is not
        idle in between, and registered on the loop thread."""
        self.count(1)
        return self.here_or_soon(OP_REGISTER, w, mask)

    cdef int detach(self, Watcher w) except -1:
        """Stop watching `w` and close its descriptor."""
        cdef int fd = w.fd
        if fd < 0:
            return 0
        self.set_interest(w, 0)
        w.fd = -1
        c_close(fd)
        self.count(-1)
        return 0

    cdef int run_ready(self) except -1:
        """Give connections that may still have work their turn."""
        cdef list batch = self.ready
        cdef Connection c
        self.ready = []
        for c in batch:
            c.flags &= ~F_READY
            if c.fd >= 0:
                c.on_event(NGI_IN | NGI_OUT)  # whatever it may have to do
            if self.failure is not None:
                break
        return 0

    # -- running ------------------------------------------------------------

    cdef int report(self, str what, object exc, object logger=None) except -1:
        """Log a failed application call (on `logger`, by default the
        loop's own); in Inline mode, re-raise it later."""
        (self.logger if logger is None else logger).error(
            "%s failed", what, exc_info=exc)
        if self.propagate and self.failure is None:
            self.failure = exc
        return 0

    def run(self, timeout=None):
        """Run until idle (returns True) or `timeout` seconds (False)."""
        cdef double deadline = -1.0
        cdef Py_ssize_t me = <Py_ssize_t>PyThread_get_thread_ident()
        cdef int n, i, ms
        cdef uint64_t token
        cdef int err
        cdef Watcher w
        if atomic_get(&self.thread_id) != 0:
            raise RuntimeError("this loop is already running")
        if timeout is not None:
            deadline = monotonic() + timeout
        atomic_set(&self.thread_id, me)
        try:
            while True:
                if atomic_load_int(&self.wake_pending):
                    self.run_pending()
                if self.failure is not None:
                    self.raise_failure()
                if self.is_idle():
                    return True
                ms = -1
                if atomic_load_int(&self.wake_pending) or self.ready:
                    ms = 0
                else:
                    if self.timers:
                        ms = wait_ms(self.timers[0][0] - monotonic())
                    if deadline >= 0:
                        i = wait_ms(deadline - monotonic())
                        if ms < 0 or i < ms:
                            ms = i
                n = self.poller.wait(ms)
                for i in range(n):
                    token = self.poller.token_at(i)
                    if token == 0:
                        self.waker.drain()
                        continue
                    w = <Watcher><void *>token
                    if w.fd < 0:
                        pass
                    elif (err := self.poller.error_at(i)) != 0:
                        w.on_error(self.poller.events_at(i), err)
                    else:
                        w.on_event(self.poller.events_at(i))
                    if self.failure is not None:
                        break
                if self.ready and self.failure is None:
                    self.run_ready()
                if self.graveyard:
                    self.graveyard = []
                if self.timers:
                    self.run_timers()
                if self.failure is not None:
                    self.raise_failure()
                if deadline >= 0 and monotonic() >= deadline:
                    return self.is_idle()
        finally:
            atomic_set(&self.thread_id, 0)

    def raise_failure(self):
        if self.failure is not None:
            exc, self.failure = self.failure, None
            raise exc

    def close(self):
        """Release the poller and the waker; the loop cannot run again."""
        self.poller.close_poller()
        self.waker.close()

    # -- adopting sockets ---------------------------------------------------
    # The descriptor is the loop's from here on, and non-blocking (the loop
    # reads and accepts until EAGAIN).  Any thread may call these.

    def connection(self, int fd, bint nodelay=False, ssl=None, server=None,
                   double handshake_timeout=_tls.HANDSHAKE_TIMEOUT,
                   double shutdown_timeout=_tls.SHUTDOWN_TIMEOUT):
        """Adopt a connected socket as a `Connection` (no handler yet).

        With `server`, it is a server's connection: `server(connection)` is
        called on this loop, at once, or with `ssl` (a server-side context)
        once its TLS handshake has completed.
        """
        set_nonblocking(fd)
        cdef Connection c = new_connection(self, fd, nodelay)
        self.attach(c, CONNECTION_EVENTS)
        if ssl is not None:
            self.here_or_soon(OP_START_TLS, c, (
                ssl, True, None, THEN_SERVE, server, handshake_timeout,
                shutdown_timeout))
        elif server is not None:
            self.here_or_soon(OP_SERVE, c, server)
        return c

    def listener(self, int fd, server, address=None, unix_path=None,
                 bint nodelay=False, adopt=None, ssl=None,
                 double handshake_timeout=_tls.HANDSHAKE_TIMEOUT,
                 double shutdown_timeout=_tls.SHUTDOWN_TIMEOUT):
        """Adopt a listening socket; `server(connection)` gets each accept.

        `unix_path` is the socket file the listener removes when it closes;
        `adopt(fd)`, if given, takes each accepted descriptor instead.
        With `ssl`, a server-side `ssl.SSLContext`, each connection is
        served once its TLS handshake has completed.
        """
        set_nonblocking(fd)
        cdef Listener l = Listener.__new__(Listener)
        l.fd = fd
        l.loop = self
        l.server = server
        l.conns = set()
        l.accepting = True
        l.nodelay = nodelay
        l.address = address
        l.unix_path = unix_path
        l.adopt = adopt
        l.ssl_context = ssl
        l.handshake_timeout = handshake_timeout
        l.shutdown_timeout = shutdown_timeout
        self.attach(l, NGI_IN)
        return l

    def connector(self, int fd, handler, bint nodelay=False, ssl=None,
                  server_hostname=None,
                  double handshake_timeout=_tls.HANDSHAKE_TIMEOUT,
                  double shutdown_timeout=_tls.SHUTDOWN_TIMEOUT):
        """Adopt a socket whose non-blocking connect is under way.

        With `ssl`, a client-side `ssl.SSLContext`, `connected` comes once
        the TLS handshake is done (checking `server_hostname`), and a
        failed handshake is a `failed_connect`.
        """
        set_nonblocking(fd)
        cdef Connector c = Connector.__new__(Connector)
        c.fd = fd
        c.loop = self
        c.handler = handler
        c.nodelay = nodelay
        c.ssl_context = ssl
        c.server_hostname = server_hostname
        c.handshake_timeout = handshake_timeout
        c.shutdown_timeout = shutdown_timeout
        self.attach(c, NGI_OUT)
        return c

    def udp_listener(self, int fd, handler, Py_ssize_t buffer_size,
                     address=None, unix_path=None, sender=None):
        """Adopt a bound datagram socket; `handler(address, data)` per datagram.

        `sender`, a socket on the same port, sends the listener's replies.
        """
        cdef UDPListener u = UDPListener.__new__(UDPListener)
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be positive, got {buffer_size}")
        set_nonblocking(fd)
        u.fd = fd
        u.loop = self
        u.handler = handler
        u.buffer_size = buffer_size
        u.address = address
        u.unix_path = unix_path
        u.sender = sender
        self.attach(u, NGI_IN)
        return u
